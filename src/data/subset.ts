/**
 * The compact binary format of a dataset subset (`.kds`; the CIFAR-10 subset is the data package
 * `tfjs-karat-cifar10-subset`, `packages/cifar10-subset/` in the repository):
 *
 *     "KARATDS1" | uint32 LE header length | header JSON | brotli(payload)
 *
 * payload = labels of every split (1 byte each, in split order) followed by the pixels of
 * every image as gradient-predicted residuals (per image, per channel plane:
 * x - clamp(left + up - upleft), mod 256), which brotli compresses ~35% better than raw
 * pixels. The header carries the SHA-256 of the decoded labels + NHWC pixels, so a
 * damaged file is reported instead of silently training on garbage.
 */

import {requireOptional} from '../../core/node_require';
import {DataError, ImageDataset, inMemoryDataset} from './dataset';
import * as nodeCrypto from 'node:crypto';
import * as nodeFs from 'node:fs';
import * as nodePath from 'node:path';
import * as nodeUrl from 'node:url';
import * as nodeZlib from 'node:zlib';

const MAGIC = 'KARATDS1';

export interface SubsetHeader {
  format: 1;
  name: string;
  height: number;
  width: number;
  channels: number;
  classNames: string[];
  splits: Array<{name: string, count: number}>;
  encoding: 'gradient-brotli';
  sha256: string;
  source?: string;
}

/** Gradient predictor of plane pixel (y, x) from already-known HWC pixels `px` (channel c). */
function predictPlanes(img: Uint8Array, H: number, W: number, C: number, out: Uint8Array, encode: boolean): void {
  // encode: img = HWC pixels, out = CHW residuals. decode: img = CHW residuals, out = HWC pixels.
  const px = encode ? img : out;
  const row = W * C;
  for (let c = 0; c < C; c++) {
    const plane = c * H * W;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const k = plane + y * W + x;
        const hwc = y * row + x * C + c;
        let p: number;
        if (y === 0) {
          p = x === 0 ? 0 : px[hwc - C];
        } else if (x === 0) {
          p = px[hwc - row];
        } else {
          p = px[hwc - C] + px[hwc - row] - px[hwc - row - C];
          p = p < 0 ? 0 : (p > 255 ? 255 : p);
        }
        if (encode) out[k] = (img[hwc] - p) & 255;
        else out[hwc] = (img[k] + p) & 255;
      }
    }
  }
}

function digest(labels: Uint8Array, pixels: Uint8Array): string {
  return nodeCrypto.createHash('sha256').update(labels).update(pixels).digest('hex');
}

/** Encodes splits (each an in-memory dataset with identical geometry) into the .kds format. */
export function encodeSubset(splits: Array<{name: string, ds: ImageDataset}>, opts: {quality?: number, source?: string} = {}): Uint8Array {
  const first = splits[0].ds;
  const {height: H, width: W, channels: C} = first;
  const per = H * W * C;
  const total = splits.reduce((a, s) => a + s.ds.size, 0);
  const labels = new Uint8Array(total);
  const pixels = new Uint8Array(total * per);
  const residual = new Uint8Array(total * per);
  let o = 0;
  for (const {ds} of splits) {
    if (!ds.images) throw new Error('encodeSubset: datasets must be in memory');
    if (ds.height !== H || ds.width !== W || ds.channels !== C) throw new Error('encodeSubset: splits differ in image size');
    if (ds.numClasses > 256) throw new Error('encodeSubset: at most 256 classes');
    for (let i = 0; i < ds.size; i++) {
      labels[o + i] = ds.labels[i];
      const img = ds.images.subarray(i * per, (i + 1) * per);
      pixels.set(img, (o + i) * per);
      predictPlanes(img, H, W, C, residual.subarray((o + i) * per, (o + i + 1) * per), true);
    }
    o += ds.size;
  }
  const header: SubsetHeader = {
    format: 1, name: first.name.split('/')[0], height: H, width: W, channels: C, classNames: first.classNames,
    splits: splits.map((s) => ({name: s.name, count: s.ds.size})), encoding: 'gradient-brotli',
    sha256: digest(labels, pixels), ...(opts.source ? {source: opts.source} : {}),
  };
  const payload = Buffer.concat([labels, residual]);
  const packed = nodeZlib.brotliCompressSync(payload, {
    params: {
      [nodeZlib.constants.BROTLI_PARAM_QUALITY]: opts.quality ?? 11, [nodeZlib.constants.BROTLI_PARAM_LGWIN]: 24,
      [nodeZlib.constants.BROTLI_PARAM_SIZE_HINT]: payload.length,
    },
  });
  const h = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(h.length, 0);
  return Buffer.concat([Buffer.from(MAGIC, 'ascii'), len, h, packed]);
}

/** Decodes a .kds file into one dataset per split. */
export function decodeSubset(buf: Uint8Array, source: string): {header: SubsetHeader, splits: Map<string, ImageDataset>} {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < 12 || b.subarray(0, 8).toString('ascii') !== MAGIC) {
    throw new DataError(`${source}: wrong magic number '${b.subarray(0, 8).toString('hex')}', expected '${MAGIC}' (a tfjs-karat dataset subset)`);
  }
  const hl = b.readUInt32LE(8);
  if (12 + hl > b.length) throw new DataError(`${source}: truncated header`);
  let header: SubsetHeader;
  try {
    header = JSON.parse(b.subarray(12, 12 + hl).toString('utf8')) as SubsetHeader;
  } catch (e) {
    throw new DataError(`${source}: corrupt header (${(e as Error).message})`);
  }
  if (header.format !== 1 || header.encoding !== 'gradient-brotli') {
    throw new DataError(`${source}: unsupported format ${header.format}/${header.encoding}`);
  }
  let payload: Buffer;
  try {
    payload = nodeZlib.brotliDecompressSync(b.subarray(12 + hl));
  } catch (e) {
    throw new DataError(`${source}: corrupt or truncated compressed data (${(e as Error).message})`);
  }
  const {height: H, width: W, channels: C} = header;
  const per = H * W * C;
  const total = header.splits.reduce((a, s) => a + s.count, 0);
  if (payload.length !== total * (per + 1)) {
    throw new DataError(`${source}: payload has ${payload.length} bytes, header implies ${total * (per + 1)}`);
  }
  const labels = payload.subarray(0, total);
  const residual = payload.subarray(total);
  const pixels = new Uint8Array(total * per);
  for (let i = 0; i < total; i++) {
    predictPlanes(residual.subarray(i * per, (i + 1) * per), H, W, C, pixels.subarray(i * per, (i + 1) * per), false);
  }
  const sha = digest(labels, pixels);
  if (sha !== header.sha256) {
    throw new DataError(`${source}: checksum mismatch (SHA-256 ${sha.slice(0, 16)}…, header says ${header.sha256.slice(0, 16)}…); the file is corrupt`);
  }
  const splits = new Map<string, ImageDataset>();
  let o = 0;
  for (const s of header.splits) {
    splits.set(s.name, inMemoryDataset({
      name: `${header.name}/${s.name}`, height: H, width: W, channels: C, classNames: header.classNames,
      images: pixels.slice(o * per, (o + s.count) * per), labels: Int32Array.from(labels.subarray(o, o + s.count)),
    }));
    o += s.count;
  }
  return {header, splits};
}

export const EMBEDDED_SUBSET_FILE = 'cifar10-subset.kds';
/** The npm package holding the CIFAR-10 subset (`packages/cifar10-subset/` in the repository). */
export const SUBSET_PACKAGE = 'tfjs-karat-cifar10-subset';
const IN_REPO_SUBSET = nodePath.join('packages', 'cifar10-subset', EMBEDDED_SUBSET_FILE);

/** The subset file of the installed data package, or null when it is not installed. */
function installedSubsetPath(): string | null {
  try {
    const p = requireOptional<{path?: unknown}>(SUBSET_PACKAGE).path;
    return typeof p === 'string' && nodeFs.existsSync(p) ? p : null;
  } catch {
    return null;
  }
}

/** Where the subset lies in a clone of the repository: above this module, or under the working directory. */
function inRepoSubsetCandidates(): string[] {
  const candidates: string[] = [];
  try {
    let d = nodePath.dirname(nodeUrl.fileURLToPath(import.meta.url));
    for (let i = 0; i < 5; i++) {
      candidates.push(nodePath.join(d, IN_REPO_SUBSET));
      d = nodePath.dirname(d);
    }
  } catch {
    // not an ES module URL (bundled): the working directory only
  }
  candidates.push(nodePath.join(process.cwd(), IN_REPO_SUBSET));
  return candidates;
}

/**
 * Path of the CIFAR-10 subset file: the installed data package (`tfjs-karat-cifar10-subset`),
 * else `packages/cifar10-subset/cifar10-subset.kds` of a clone of the repository.
 */
export function embeddedSubsetPath(): string {
  const installed = installedSubsetPath();
  if (installed) return installed;
  const found = inRepoSubsetCandidates().find((p) => nodeFs.existsSync(p));
  if (!found) {
    throw new DataError(`the CIFAR-10 subset (dataset 'cifar10-subset') is not installed: run \`npm install ${SUBSET_PACKAGE}\`, ` +
                        `or pass a .kds file with --data-dir, or another --dataset`);
  }
  return found;
}

/** Loads a split ('train' or 'test') of a .kds file (default: the embedded CIFAR-10 subset). */
export function loadSubset(split: string, path = embeddedSubsetPath()): ImageDataset {
  if (!nodeFs.existsSync(path)) throw new DataError(`dataset subset '${path}' does not exist`);
  const {splits} = decodeSubset(nodeFs.readFileSync(path), path);
  const ds = splits.get(split);
  if (!ds) throw new DataError(`${path}: no split '${split}' (has ${[...splits.keys()].join(', ')})`);
  return ds;
}
