/**
 * Data side of the training recipe: tar + gzip reader, CIFAR-10/100 binary,
 * IDX, image folders (PNG/JPEG), the embedded-subset format, downloads against a loopback
 * HTTP server (resume, SHA-256), augmentation and the prefetching loader. No tensors.
 */
import {strict as assert} from 'assert';
import {createHash} from 'node:crypto';
import {existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs';
import * as http from 'node:http';
import {AddressInfo} from 'node:net';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {gzipSync} from 'node:zlib';

import {cropFlip, mixBatch, NO_AUGMENT, smoothOneHot} from '../src/data/augment';
import {loadCifar, parseCifarRecords} from '../src/data/cifar';
import {DataError, ImageDataset, inMemoryDataset} from '../src/data/dataset';
import {defaultCacheDir, downloadFile, RemoteFile} from '../src/data/download';
import {idxDataset, loadIdxDir, parseIdx} from '../src/data/idx';
import {decodeImage, loadImageFolder, materialise} from '../src/data/image_folder';
import {BatchLoader} from '../src/data/loader';
import {loadDatasetPair} from '../src/data/registry';
import {Rng} from '../src/data/rng';
import {decodeSubset, embeddedSubsetPath, encodeSubset, loadSubset} from '../src/data/subset';
import {readTarFiles, writeTar} from '../src/data/tar';

const tmp = mkdtempSync(join(tmpdir(), 'karat-data-test-'));
after(() => rmSync(tmp, {recursive: true, force: true}));

/** n CIFAR records with label i % classes and pixel value (i*7 + channel*50 + p) & 255. */
function cifarRecords(n: number, labelBytes: 1 | 2, classes = 10): Uint8Array {
  const rec = labelBytes + 3072;
  const b = new Uint8Array(n * rec);
  for (let i = 0; i < n; i++) {
    if (labelBytes === 1) b[i * rec] = i % classes;
    else {
      b[i * rec] = i % 20;
      b[i * rec + 1] = i % classes;
    }
    for (let c = 0; c < 3; c++) for (let p = 0; p < 1024; p++) b[i * rec + labelBytes + c * 1024 + p] = (i * 7 + c * 50 + p) & 255;
  }
  return b;
}

async function expectDataError(p: Promise<unknown> | (() => unknown), re: RegExp): Promise<void> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    assert.ok(e instanceof DataError, `expected DataError, got ${(e as Error).name}: ${(e as Error).message}`);
    assert.match((e as Error).message, re);
    return;
  }
  assert.fail(`expected a DataError matching ${re}`);
}

describe('data: seeded Rng', () => {
  it('is reproducible, restores its state exactly, and has sane moments', () => {
    const a = new Rng(123), b = new Rng(123);
    for (let i = 0; i < 100; i++) assert.equal(a.nextUint32(), b.nextUint32());
    const st = a.getState();
    const seq = [a.uniform(), a.normal(), a.beta(0.8, 0.8), a.int(10)];
    a.setState(st);
    assert.deepEqual([a.uniform(), a.normal(), a.beta(0.8, 0.8), a.int(10)], seq);
    const r = new Rng(7);
    let s = 0, s2 = 0;
    const n = 20000;
    for (let i = 0; i < n; i++) {
      const v = r.normal();
      s += v;
      s2 += v * v;
    }
    assert.ok(Math.abs(s / n) < 0.05 && Math.abs(s2 / n - 1) < 0.05, `normal moments ${s / n}, ${s2 / n}`);
    const p = new Rng(1).permutation(50);
    assert.deepEqual([...p].sort((x, y) => x - y), Array.from({length: 50}, (_, i) => i));
    assert.throws(() => a.setState([1, 2, 3] as never), /4 uint32/);
  });
});

describe('data: tar.gz reader and CIFAR binary', () => {
  it('reads CIFAR-10 from a .tar.gz (own tar reader + node:zlib) and from the extracted directory, identically', async () => {
    const train = Array.from({length: 5}, (_, k) => ({name: `cifar-10-batches-bin/data_batch_${k + 1}.bin`, data: cifarRecords(3, 1)}));
    const files = [...train, {name: 'cifar-10-batches-bin/test_batch.bin', data: cifarRecords(4, 1)},
      {name: 'cifar-10-batches-bin/batches.meta.txt', data: Buffer.from('a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n')}];
    const tgz = join(tmp, 'c10.tar.gz');
    writeFileSync(tgz, gzipSync(writeTar(files)));
    const fromTar = await loadCifar(tgz, 'cifar10', 'train');
    assert.equal(fromTar.size, 15);
    assert.deepEqual(fromTar.classNames, ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j']);
    // CHW record -> HWC: pixel 5 of image 1, channels (1*7 + c*50 + 5)
    assert.deepEqual([...fromTar.images!.subarray(3072 + 15, 3072 + 18)], [12, 62, 112]);
    const dir = join(tmp, 'c10dir', 'cifar-10-batches-bin');
    mkdirSync(dir, {recursive: true});
    for (const f of files) writeFileSync(join(tmp, 'c10dir', f.name), f.data);
    const fromDir = await loadCifar(join(tmp, 'c10dir'), 'cifar10', 'test');
    const fromTarTest = await loadCifar(tgz, 'cifar10', 'test');
    assert.deepEqual(fromDir.images, fromTarTest.images);
    assert.deepEqual([...fromDir.labels], [0, 1, 2, 3]);
  });

  it('CIFAR-100 uses the fine label (second byte) or the coarse one on request', async () => {
    const buf = cifarRecords(30, 2, 100);
    const tgz = join(tmp, 'c100.tar.gz');
    writeFileSync(tgz, gzipSync(writeTar([{name: 'cifar-100-binary/train.bin', data: buf}, {name: 'cifar-100-binary/test.bin', data: cifarRecords(5, 2, 100)},
      {name: 'cifar-100-binary/fine_label_names.txt', data: Buffer.from(Array.from({length: 100}, (_, i) => `fine${i}`).join('\n'))}])));
    const ds = await loadCifar(tgz, 'cifar100', 'train');
    assert.deepEqual([ds.size, ds.numClasses, ds.labels[25], ds.classNames[25]], [30, 100, 25, 'fine25']);
    const dsCoarse = await loadCifar(tgz, 'cifar100', 'train', {coarse: true});
    assert.deepEqual([dsCoarse.numClasses, dsCoarse.labels[25]], [20, 5]);
    const fine = parseCifarRecords(buf, 'cifar100', 'x');
    const coarse = parseCifarRecords(buf, 'cifar100', 'x', true);
    assert.equal(fine.labels[25], 25);
    assert.equal(coarse.labels[25], 5);
  });

  it('truncated records, bad labels, corrupt gzip/tar and missing members are clear errors', async () => {
    await expectDataError(() => parseCifarRecords(cifarRecords(2, 1).subarray(0, 3073 + 100), 'cifar10', 'f.bin'),
        /f\.bin: truncated record.*multiple of the cifar10 record size 3073 \(1 complete records, then 100 stray bytes\)/);
    const bad = cifarRecords(2, 1);
    bad[3073] = 12;
    await expectDataError(() => parseCifarRecords(bad, 'cifar10', 'g.bin'), /record 1 has label 12, outside \[0, 10\)/);
    const tarBytes = writeTar([{name: 'cifar-10-batches-bin/test_batch.bin', data: cifarRecords(2, 1)}]);
    const cut = join(tmp, 'cut.tar.gz');
    const gz = gzipSync(tarBytes);
    writeFileSync(cut, gz.subarray(0, Math.floor(gz.length / 2)));
    await expectDataError(loadCifar(cut, 'cifar10', 'test'), /corrupt or truncated gzip|truncated tar/);
    const corruptHeader = Buffer.from(tarBytes);
    corruptHeader[10] ^= 0xff;
    const ch = join(tmp, 'ch.tar');
    writeFileSync(ch, corruptHeader);
    await expectDataError(loadCifar(ch, 'cifar10', 'test'), /corrupt tar header \(checksum/);
    const only = join(tmp, 'only-test.tar.gz');
    writeFileSync(only, gzipSync(tarBytes));
    await expectDataError(loadCifar(only, 'cifar10', 'train'), /archive lacks cifar-10-batches-bin\/data_batch_1\.bin/);
    await expectDataError(loadCifar(join(tmp, 'nope'), 'cifar10', 'train'), /does not exist/);
    const got = await readTarFiles(only, () => true);
    assert.deepEqual([...got.keys()], ['cifar-10-batches-bin/test_batch.bin']);
  });
});

describe('data: IDX (MNIST / Fashion-MNIST)', () => {
  function idx(type: number, dims: number[], data: Uint8Array): Uint8Array {
    const h = Buffer.alloc(4 + 4 * dims.length);
    h[2] = type;
    h[3] = dims.length;
    dims.forEach((d, i) => h.writeUInt32BE(d, 4 + 4 * i));
    return Buffer.concat([h, data]);
  }

  it('parses gzipped image and label files into a dataset', () => {
    const img = Uint8Array.from({length: 3 * 4 * 5}, (_, i) => i);
    const dir = join(tmp, 'fm');
    mkdirSync(dir, {recursive: true});
    writeFileSync(join(dir, 't10k-images-idx3-ubyte.gz'), gzipSync(idx(8, [3, 4, 5], img)));
    writeFileSync(join(dir, 't10k-labels-idx1-ubyte.gz'), gzipSync(idx(8, [3], Uint8Array.from([9, 0, 4]))));
    const ds = loadIdxDir(dir, 'test', 'fashion-mnist', Array.from({length: 10}, (_, i) => String(i)));
    assert.equal(ds.size, 3);
    assert.equal(ds.height, 4);
    assert.equal(ds.width, 5);
    assert.equal(ds.channels, 1);
    assert.deepEqual([...ds.labels], [9, 0, 4]);
    assert.equal(ds.images![25], 25);
  });

  it('wrong magic number, truncated data and count mismatch are clear errors', async () => {
    await expectDataError(() => parseIdx(Uint8Array.from([0x50, 0x4b, 3, 4, 0, 0]), 'x.idx'), /x\.idx: wrong magic number 0x504b0304/);
    await expectDataError(() => parseIdx(idx(8, [2, 2, 2], new Uint8Array(5)), 'y.idx'), /y\.idx: truncated IDX data.*needs 8 bytes, file has 5/);
    await expectDataError(() => parseIdx(idx(0x0d, [2], new Uint8Array(8)), 'z.idx'), /data type 0xd is not supported/);
    await expectDataError(() => idxDataset(idx(8, [2, 1, 1], new Uint8Array(2)), idx(8, [3], new Uint8Array(3)), 'm', ['a']),
        /2 images but 3 labels/);
  });
});

describe('data: image folders (pngjs, jpeg-js)', () => {
  it('decodes PNG and JPEG class folders, resizes and labels by sorted folder name', async () => {
    const {PNG} = await import('pngjs');
    const jpeg = await import('jpeg-js');
    const root = join(tmp, 'imgs');
    const mk = (w: number, h: number, rgb: [number, number, number]) => {
      const data = Buffer.alloc(w * h * 4);
      for (let i = 0; i < w * h; i++) data.set([...rgb, 255], i * 4);
      return {w, h, data};
    };
    for (const split of ['train', 'test']) {
      mkdirSync(join(root, split, 'cat'), {recursive: true});
      mkdirSync(join(root, split, 'dog'), {recursive: true});
      const red = mk(40, 20, [200, 10, 10]);
      const png = new PNG({width: red.w, height: red.h});
      red.data.copy(png.data);
      writeFileSync(join(root, split, 'cat', 'a.png'), PNG.sync.write(png));
      const blue = mk(16, 16, [10, 10, 200]);
      writeFileSync(join(root, split, 'dog', 'b.jpg'), jpeg.encode({data: blue.data, width: 16, height: 16}, 95).data);
      writeFileSync(join(root, split, 'dog', 'notes.txt'), 'ignored');
    }
    const {train, test} = await loadDatasetPair('folder', {dataDir: root, imageSize: 8});
    assert.deepEqual(train.classNames, ['cat', 'dog']);
    assert.deepEqual([...test.labels], [0, 1]);
    const px = await materialise(train);
    assert.equal(px.length, 2 * 8 * 8 * 3);
    assert.ok(Math.abs(px[0] - 200) <= 2 && px[2] < 20, `red pixel ${px.subarray(0, 3)}`);
    assert.ok(px[8 * 8 * 3 + 2] > 180 && px[8 * 8 * 3] < 30, 'blue pixel from the JPEG');
    await expectDataError(() => decodeImage(Buffer.from('GIF89a....'), 'x.gif'), /x\.gif: not a PNG or JPEG file/);
    await expectDataError(() => loadImageFolder(join(root, 'nope')), /does not exist/);
    await expectDataError(loadDatasetPair('folder', {dataDir: join(root, 'train')}), /must contain train\/ and test\//);
  });
});

describe('data: embedded subset format and the committed CIFAR-10 subset', () => {
  function tiny(n: number, name: string): ImageDataset {
    const images = Uint8Array.from({length: n * 4 * 4 * 3}, (_, i) => (i * 37 + (i >> 4)) & 255);
    return inMemoryDataset({name, height: 4, width: 4, channels: 3, classNames: ['a', 'b', 'c'], images,
      labels: Int32Array.from({length: n}, (_, i) => i % 3)});
  }

  it('round-trips exactly and rejects wrong magic, truncation and checksum mismatches', async () => {
    const tr = tiny(10, 'toy/train'), te = tiny(4, 'toy/test');
    const bytes = encodeSubset([{name: 'train', ds: tr}, {name: 'test', ds: te}], {quality: 5});
    const {splits} = decodeSubset(bytes, 'mem');
    assert.deepEqual(splits.get('train')!.images, tr.images);
    assert.deepEqual(splits.get('test')!.labels, te.labels);
    await expectDataError(() => decodeSubset(Buffer.from('NOTKARAT....'), 'bad.kds'), /bad\.kds: wrong magic number/);
    await expectDataError(() => decodeSubset(bytes.subarray(0, bytes.length - 10), 'cut.kds'), /cut\.kds: corrupt or truncated|payload has/);
    // flip one label byte inside the header's sha256 -> checksum mismatch
    const hdrLen = Buffer.from(bytes).readUInt32LE(8);
    const header = JSON.parse(Buffer.from(bytes.subarray(12, 12 + hdrLen)).toString());
    const wrongSha = Buffer.from(JSON.stringify({...header, sha256: '0'.repeat(64)}));
    const len = Buffer.alloc(4);
    len.writeUInt32LE(wrongSha.length);
    const tampered = Buffer.concat([Buffer.from('KARATDS1'), len, wrongSha, bytes.subarray(12 + hdrLen)]);
    await expectDataError(() => decodeSubset(tampered, 't.kds'), /t\.kds: checksum mismatch/);
  });

  it('the committed packages/cifar10-subset/cifar10-subset.kds holds 5,000 + 1,000 class-balanced CIFAR-10 images', function() {
    const p = embeddedSubsetPath();
    assert.ok(statSync(p).size < 16e6, 'a few MB');
    const train = loadSubset('train', p), test = loadSubset('test', p);
    assert.equal(train.size, 5000);
    assert.equal(test.size, 1000);
    assert.equal(train.height * train.width * train.channels, 3072);
    const counts = new Array(10).fill(0);
    for (const l of train.labels) counts[l]++;
    assert.deepEqual(counts, new Array(10).fill(500));
    assert.equal(train.classNames[3], 'cat');
  });

  it('the subset matches the first test images of the source archive (when one is at hand)', async function() {
    // $KARAT_CIFAR10_ARCHIVE, else where `karat train --dataset cifar10 --download` puts it
    const src = process.env.KARAT_CIFAR10_ARCHIVE ?? join(defaultCacheDir(), 'cifar-10-binary.tar.gz');
    if (!existsSync(src)) {
      console.log(`      [skip] no CIFAR-10 archive at ${src} (set KARAT_CIFAR10_ARCHIVE)`);
      this.skip();
    }
    const full = await loadCifar(src, 'cifar10', 'test');
    const sub = loadSubset('test');
    // the subset's first test image is the archive's first test image of class full.labels[0]
    assert.equal(sub.labels[0], full.labels[0]);
    assert.deepEqual(sub.images!.subarray(0, 3072), full.images!.subarray(0, 3072));
  });
});

describe('data: --download against a loopback HTTP server', () => {
  let server: http.Server;
  let base = '';
  const payload = Buffer.from(Array.from({length: 300000}, (_, i) => (i * 31) & 255));
  const sha = createHash('sha256').update(payload).digest('hex');
  let cutNext = false;
  const requests: string[] = [];

  before(async () => {
    server = http.createServer((req, res) => {
      requests.push(`${req.url} ${req.headers.range ?? ''}`);
      if (req.url === '/missing') {
        res.writeHead(404);
        res.end();
        return;
      }
      if (req.url === '/redirect') {
        res.writeHead(302, {location: '/file'});
        res.end();
        return;
      }
      const m = /bytes=(\d+)-/.exec(req.headers.range ?? '');
      const start = m ? Number(m[1]) : 0;
      const body = payload.subarray(start);
      res.writeHead(m ? 206 : 200, {'content-length': body.length, ...(m ? {'content-range': `bytes ${start}-${payload.length - 1}/${payload.length}`} : {})});
      if (cutNext) {
        cutNext = false;
        res.write(body.subarray(0, 100000));
        setTimeout(() => res.destroy(), 50);
        return;
      }
      res.end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  it('resumes an interrupted download with a Range request and verifies SHA-256', async () => {
    const dest = join(tmp, 'dl', 'file.bin');
    const remote: RemoteFile = {url: `${base}/redirect`, file: 'file.bin', sha256: sha};
    cutNext = true;
    const progress: number[] = [];
    await expectDataError(downloadFile(remote, dest, {onProgress: (p) => progress.push(p.received)}), /interrupted|ended early/);
    assert.ok(!existsSync(dest), 'no final file after an interrupted download');
    const partSize = statSync(`${dest}.part`).size;
    assert.ok(partSize > 0 && partSize < payload.length, `partial file ${partSize}`);
    requests.length = 0;
    await downloadFile(remote, dest, {onProgress: (p) => progress.push(p.received)});
    assert.ok(requests.some((r) => r.includes(`bytes=${partSize}-`)), `resumed with a range: ${requests}`);
    assert.deepEqual(readFileSync(dest), payload);
    assert.ok(!existsSync(`${dest}.part`));
    assert.equal(progress[progress.length - 1], payload.length);
    // already present and valid: no request
    requests.length = 0;
    await downloadFile(remote, dest);
    assert.equal(requests.length, 0);
  });

  it('a checksum mismatch removes the partial file; HTTP errors are reported', async () => {
    const dest = join(tmp, 'dl2', 'file.bin');
    await expectDataError(downloadFile({url: `${base}/file`, file: 'f', sha256: 'ab'.repeat(32)}, dest), /checksum mismatch \(SHA-256 [0-9a-f]{64}, expected (ab)+\)/);
    assert.ok(!existsSync(dest) && !existsSync(`${dest}.part`));
    await expectDataError(downloadFile({url: `${base}/missing`, file: 'f', sha256: sha}, join(tmp, 'dl3', 'f')), /HTTP 404/);
  });

  it('downloads a small CIFAR-10 archive and trains-ready loads it (loadDatasetPair with download)', async () => {
    // the registry's own download path, pointed at the loopback copy of a small archive
    const files = [...Array.from({length: 5}, (_, k) => ({name: `cifar-10-batches-bin/data_batch_${k + 1}.bin`, data: cifarRecords(2, 1)})),
      {name: 'cifar-10-batches-bin/test_batch.bin', data: cifarRecords(3, 1)}];
    const tgz = gzipSync(writeTar(files));
    const s2 = http.createServer((_, res) => res.end(tgz));
    await new Promise<void>((r) => s2.listen(0, '127.0.0.1', r));
    const dir = join(tmp, 'cache');
    const {downloadDataset} = await import('../src/data/download');
    await downloadDataset('cifar10', dir, {}, [{
      url: `http://127.0.0.1:${(s2.address() as AddressInfo).port}/cifar-10-binary.tar.gz`, file: 'cifar-10-binary.tar.gz',
      sha256: createHash('sha256').update(tgz).digest('hex'),
    }]);
    s2.close();
    const {train, test} = await loadDatasetPair('cifar10', {dataDir: dir});
    assert.equal(train.size, 10);
    assert.equal(test.size, 3);
  });
});

describe('data: augmentation and the prefetching loader', () => {
  const geo = {height: 4, width: 4, channels: 1};

  it('crop with padding shifts with zero fill; flip mirrors', () => {
    const src = Uint8Array.from({length: 16}, (_, i) => i + 1);
    const out = new Uint8Array(16);
    // find a seed whose draws give a shift; check against a direct computation
    const rng = new Rng(3);
    const probe = new Rng(3);
    const dy = probe.int(5) - 2, dx = probe.int(5) - 2, mirror = probe.uniform() < 0.5;
    cropFlip(src, geo, 2, true, rng, out);
    for (let y = 0; y < 4; y++) {
      for (let x = 0; x < 4; x++) {
        const sy = y + dy, sx0 = x + dx, sx = mirror ? 3 - sx0 : sx0;
        const want = sy < 0 || sy > 3 || sx < 0 || sx > 3 ? 0 : src[sy * 4 + sx];
        assert.equal(out[y * 4 + x], want, `(${y},${x}) dy ${dy} dx ${dx} mirror ${mirror}`);
      }
    }
  });

  it('label smoothing and mixup keep targets summing to 1 and mix partner n-1-i', () => {
    const y = new Float32Array(2 * 4);
    smoothOneHot([1, 3], 4, 0.1, y);
    assert.ok(Math.abs(y[1] - 0.925) < 1e-6 && Math.abs(y[0] - 0.025) < 1e-6);
    const x = Float32Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    const info = mixBatch(x, y, 2, 4, geo, {...NO_AUGMENT, mixupAlpha: 1, mixProb: 1}, new Rng(5));
    assert.equal(info.kind, 'mixup');
    assert.ok(Math.abs(x[0] - (1 - info.lambda)) < 1e-6);
    for (let i = 0; i < 2; i++) assert.ok(Math.abs(y.subarray(i * 4, i * 4 + 4).reduce((a, b) => a + b, 0) - 1) < 1e-5);
    const yc = new Float32Array(8);
    smoothOneHot([0, 2], 4, 0, yc);
    const xc = new Float32Array(32).fill(0);
    xc.fill(1, 16);
    const ci = mixBatch(xc, yc, 2, 4, geo, {...NO_AUGMENT, cutmixAlpha: 1, mixProb: 1}, new Rng(11));
    assert.equal(ci.kind, 'cutmix');
    const pasted = xc.subarray(0, 16).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(yc[2] - pasted / 16) < 1e-6, 'cutmix target weight = pasted area fraction');
  });

  it('an epoch is reproducible from (seed, epoch), differs between epochs, and batch size is checked', async () => {
    const n = 40;
    const ds = inMemoryDataset({name: 'toy', height: 4, width: 4, channels: 1, classNames: ['a', 'b'],
      images: Uint8Array.from({length: n * 16}, (_, i) => (i * 13) & 255), labels: Int32Array.from({length: n}, (_, i) => i % 2)});
    const aug = {...NO_AUGMENT, mean: [0.5], std: [0.25], cropPadding: 1, hflip: true, mixupAlpha: 0.8, mixProb: 1, labelSmoothing: 0.1, randomErasing: 0.5};
    const collect = async (seed: number, epoch: number, prefetch: number) => {
      const out: number[] = [];
      for await (const b of new BatchLoader(ds, {batchSize: 8, train: true, augment: aug, seed, prefetch}).epoch(epoch)) out.push(...b.x, ...b.y);
      return out;
    };
    const a = await collect(1, 0, 1), b = await collect(1, 0, 4), c = await collect(1, 1, 2);
    assert.deepEqual(a, b, 'prefetch depth does not change the data');
    assert.notDeepEqual(a, c);
    const loader = new BatchLoader(ds, {batchSize: 8, train: true, augment: aug, seed: 0});
    assert.equal(loader.length, 5);
    await expectDataError(() => new BatchLoader(ds, {batchSize: 41, train: true, augment: aug, seed: 0}),
        /batch size 41 is larger than dataset 'toy' \(40 examples\)/);
  });

  it('unknown dataset names are clear errors', async () => {
    await expectDataError(loadDatasetPair('imagenet'), /unknown dataset 'imagenet'; expected one of cifar10-subset, cifar10/);
    await expectDataError(loadDatasetPair('mnist', {download: true}), /--download is available for cifar10, cifar100 and fashion-mnist/);
  });
});
