/**
 * Downloads of the official dataset archives with progress, SHA-256 verification and
 * resume-safe temporary files: bytes go to `<dest>.part`; an interrupted download resumes
 * from there with an HTTP Range request (restarting if the server ignores it); only a
 * file whose SHA-256 matches is renamed to `<dest>`, so `<dest>` is always complete.
 */

import {DataError} from './dataset';
import * as nodeCrypto from 'node:crypto';
import * as nodeFs from 'node:fs';
import * as nodeFsP from 'node:fs/promises';
import * as nodeHttp from 'node:http';
import * as nodeHttps from 'node:https';
import * as nodeOs from 'node:os';
import * as nodePath from 'node:path';

export interface RemoteFile {
  url: string;
  /** File name in the cache directory. */
  file: string;
  sha256: string;
  size?: number;
}

/** Official locations; SHA-256 sums and sizes as published in TensorFlow Datasets' url_checksums. */
export const REMOTE: Record<'cifar10' | 'cifar100' | 'fashion-mnist', RemoteFile[]> = {
  'cifar10': [{
    url: 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz', file: 'cifar-10-binary.tar.gz',
    sha256: 'c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd', size: 170052171,
  }],
  'cifar100': [{
    url: 'https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz', file: 'cifar-100-binary.tar.gz',
    sha256: '58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec', size: 168513733,
  }],
  'fashion-mnist': [
    ['train-images-idx3-ubyte.gz', '3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84', 26421880],
    ['train-labels-idx1-ubyte.gz', 'a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845', 29515],
    ['t10k-images-idx3-ubyte.gz', '346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073', 4422102],
    ['t10k-labels-idx1-ubyte.gz', '67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5', 5148],
  ].map(([file, sha256, size]) => ({
    url: `http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/${file}`, file: file as string,
    sha256: sha256 as string, size: size as number,
  })),
};

/** Default cache directory: $KARAT_DATA_DIR, else ~/.cache/tfjs-karat. */
export function defaultCacheDir(): string {
  return process.env.KARAT_DATA_DIR || nodePath.join(nodeOs.homedir(), '.cache', 'tfjs-karat');
}

export interface DownloadProgress {
  file: string;
  received: number;
  total: number | null;
  resumed: boolean;
}

export interface DownloadOptions {
  onProgress?: (p: DownloadProgress) => void;
  /** Abort after this many ms without data (default 60 s). */
  idleTimeoutMs?: number;
  /** Redirects to follow (default 5). */
  maxRedirects?: number;
}

export async function sha256File(path: string): Promise<string> {
  const h = nodeCrypto.createHash('sha256');
  await new Promise<void>((resolve, reject) => {
    nodeFs.createReadStream(path).on('data', (c) => h.update(c)).on('end', () => resolve()).on('error', reject);
  });
  return h.digest('hex');
}

function request(url: string, headers: Record<string, string>, redirects: number, idleMs: number):
    Promise<import('node:http').IncomingMessage> {
  return new Promise((resolve, reject) => {
    const lib = url.startsWith('https:') ? nodeHttps : nodeHttp;
    const req = lib.get(url, {headers}, (res) => {
      const code = res.statusCode ?? 0;
      if (code >= 300 && code < 400 && res.headers.location) {
        res.resume();
        if (redirects <= 0) return reject(new DataError(`${url}: too many redirects`));
        return resolve(request(new URL(res.headers.location, url).toString(), headers, redirects - 1, idleMs));
      }
      resolve(res);
    });
    req.setTimeout(idleMs, () => req.destroy(new Error(`no data for ${idleMs} ms`)));
    req.on('error', (e) => reject(new DataError(`${url}: download failed (${e.message})`)));
  });
}

/**
 * Downloads `remote.url` to `dest` unless `dest` already exists with the right SHA-256.
 * Returns the path. Throws DataError on HTTP errors and checksum mismatches.
 */
export async function downloadFile(remote: RemoteFile, dest: string, opts: DownloadOptions = {}): Promise<string> {
  nodeFs.mkdirSync(nodePath.dirname(dest), {recursive: true});
  if (nodeFs.existsSync(dest)) {
    const sha = await sha256File(dest);
    if (sha === remote.sha256) return dest;
    throw new DataError(`${dest}: checksum mismatch (SHA-256 ${sha}, expected ${remote.sha256}); delete it to download again`);
  }
  const part = `${dest}.part`;
  let have = nodeFs.existsSync(part) ? nodeFs.statSync(part).size : 0;
  const headers: Record<string, string> = {'user-agent': 'tfjs-karat'};
  if (have > 0) headers.range = `bytes=${have}-`;
  const res = await request(remote.url, headers, opts.maxRedirects ?? 5, opts.idleTimeoutMs ?? 60000);
  const code = res.statusCode ?? 0;
  if (code === 416 && have > 0) {
    // Range not satisfiable: the part file may already be complete
    res.resume();
  } else if (code !== 200 && code !== 206) {
    res.resume();
    throw new DataError(`${remote.url}: HTTP ${code} ${res.statusMessage ?? ''}`.trim());
  }
  const resumed = code === 206;
  if (code === 200) have = 0;  // server ignored the range: start over
  if (code === 200 || code === 206) {
    const len = Number(res.headers['content-length'] ?? NaN);
    const total = Number.isFinite(len) ? have + len : (remote.size ?? null);
    const fh = await nodeFsP.open(part, resumed ? 'a' : 'w');
    let received = have;
    try {
      await new Promise<void>((resolve, reject) => {
        res.on('data', (chunk: Buffer) => {
          res.pause();
          fh.write(chunk).then(() => {
            received += chunk.length;
            opts.onProgress?.({file: remote.file, received, total, resumed});
            res.resume();
          }, reject);
        });
        res.on('end', () => resolve());
        res.on('error', reject);
        res.on('aborted', () => reject(new Error('connection aborted')));
      });
    } catch (e) {
      throw new DataError(`${remote.url}: download interrupted after ${received} bytes (${(e as Error).message}); ` +
          `run again to resume from ${part}`);
    } finally {
      await fh.close();
    }
    if (total != null && received < total) {
      throw new DataError(`${remote.url}: download ended early (${received} of ${total} bytes); run again to resume from ${part}`);
    }
  }
  const sha = await sha256File(part);
  if (sha !== remote.sha256) {
    nodeFs.unlinkSync(part);
    throw new DataError(`${remote.url}: checksum mismatch (SHA-256 ${sha}, expected ${remote.sha256}); the partial file was removed`);
  }
  nodeFs.renameSync(part, dest);
  return dest;
}

/** Downloads every file of a dataset into `dir` (default: the cache dir); returns the paths. */
export async function downloadDataset(name: keyof typeof REMOTE, dir = defaultCacheDir(), opts: DownloadOptions = {},
                                      remotes: RemoteFile[] = REMOTE[name]): Promise<string[]> {
  if (!remotes) throw new DataError(`--download: no official location for dataset '${name}' (have ${Object.keys(REMOTE).join(', ')})`);
  const out: string[] = [];
  for (const r of remotes) out.push(await downloadFile(r, nodePath.join(dir, r.file), opts));
  return out;
}
