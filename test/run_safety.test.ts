/**
 * Safe runs and bounded resources: a run never overwrites another (named folders refused
 * without --resume/--overwrite, generated names unique), failed runs and killed checkpoint
 * writes leave nothing behind, the launcher's child dies with it, bad input gives one clear
 * line and exit 2, the composite Fourier-KArAt path refuses configurations it cannot hold,
 * huge PNGs are refused before decoding, and a KArAt layer accepts an empty batch (wasm).
 * cpu backend (wasm where it is available), tiny models, few steps.
 */
import '@tensorflow/tfjs-backend-cpu';

import * as tf from '@tensorflow/tfjs-core';
import {strict as assert} from 'assert';
import {spawn, spawnSync} from 'node:child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {deflateSync} from 'node:zlib';

import * as karat from '../src/node';
import {DataError} from '../src/data/dataset';
import {decodeImage, MAX_IMAGE_PIXELS} from '../src/data/image_folder';
import {activateBackend} from '../src/training/backend';
import {readCheckpoint, readWeights, writeCheckpoint} from '../src/training/checkpoint';
import {crc32 as karatCrc} from '../src/training/crc32';
import {ConfigError, resolveConfig, TrainConfig} from '../src/training/config';
import {buildModel, ModelSpec} from '../src/training/model';
import {prepareRunDir} from '../src/training/run_dir';
import {train} from '../src/training/trainer';
import {runCliInProcess} from './support/cli';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'karat-run-safety-'));
after(() => fs.rmSync(tmp, {recursive: true, force: true}));

const TINY = {
  dataset: 'cifar10-subset', trainLimit: 32, testLimit: 16, dim: 8, depth: 1, heads: 2, mlpRatio: 1, patchSize: 8,
  attention: 'fourier', grid: 1, rank: 2, mode: 'blockwise', batchSize: 16, evalBatchSize: 16, mixup: 0, cutmix: 0,
  seed: 5, backend: 'cpu', progress: 'none', stepsPerEpoch: 1, epochs: 1,
};
const cfgOf = (v: Record<string, unknown>): TrainConfig => resolveConfig([{from: 'test', values: {...TINY, ...v}}]);
const TINY_FLAGS = ['--train-limit', '32', '--test-limit', '16', '--dim', '8', '--depth', '1', '--heads', '2', '--mlp-ratio', '1',
  '--patch-size', '8', '--grid', '1', '--rank', '2', '--batch-size', '16', '--eval-batch-size', '16', '--backend', 'cpu',
  '--mixup', '0', '--cutmix', '0', '--progress', 'none', '--steps-per-epoch', '1'];

const cli = runCliInProcess;

/** A pid that no longer runs (a finished child's). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {encoding: 'utf8'});
  return Number(r.stdout);
}

describe('run safety: a run never destroys another', function() {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('a named run folder is refused without --resume; --overwrite replaces only its run outputs', async () => {
    const out = path.join(tmp, 'named');
    const first = await train(cfgOf({outDir: out, runName: 'r'}));
    first.model.dispose();
    const dir = path.join(out, 'r');
    const last = fs.readFileSync(path.join(dir, 'last.ckpt'));
    fs.writeFileSync(path.join(dir, 'log.jsonl'), '{"type":"start"}\n');
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'mine');
    const stale = path.join(dir, `.last.ckpt.tmp-${deadPid()}`);
    const live = path.join(dir, `.last.ckpt.tmp-${process.ppid}`);
    fs.writeFileSync(stale, 'partial');
    fs.writeFileSync(live, 'being written');
    await assert.rejects(train(cfgOf({outDir: out, runName: 'r', seed: 6})),
        (e: Error) => e instanceof ConfigError && /run folder '.*r' already holds a run; pass --resume .* --overwrite to replace it/.test(e.message));
    assert.deepEqual(fs.readFileSync(path.join(dir, 'last.ckpt')), last, 'last.ckpt untouched');
    // the next start of the run removed the dead writer's temp file, not the live one's
    assert.equal(fs.existsSync(stale), false);
    assert.equal(fs.existsSync(live), true);
    fs.unlinkSync(live);
    const second = await train(cfgOf({outDir: out, runName: 'r', seed: 6, overwrite: true}));
    second.model.dispose();
    assert.notDeepEqual(fs.readFileSync(path.join(dir, 'last.ckpt')), last);
    assert.equal(fs.existsSync(path.join(dir, 'log.jsonl')), false, 'the old log is gone, not appended to');
    assert.equal(fs.readFileSync(path.join(dir, 'notes.txt'), 'utf8'), 'mine', 'files that are not run outputs stay');
    assert.throws(() => cfgOf({runName: '../elsewhere'}), /'run-name' must be a folder name without path separators/);
  });

  it('generated run names are unique within one second (exclusive mkdir)', () => {
    const out = path.join(tmp, 'generated');
    const a = prepareRunDir(out, null, 'cifar10-subset-custom-G3B-20260101-000000', {resume: false, overwrite: false});
    const b = prepareRunDir(out, null, 'cifar10-subset-custom-G3B-20260101-000000', {resume: false, overwrite: false});
    assert.notEqual(a.dir, b.dir);
    assert.match(b.dir, /-000000-2$/);
  });

  it('a run that fails before writing anything leaves no empty folder', async () => {
    const out = path.join(tmp, 'failed');
    await assert.rejects(train(cfgOf({outDir: out, runName: 'big-batch', batchSize: 97})), DataError);
    assert.equal(fs.existsSync(path.join(out, 'big-batch')), false);
    await assert.rejects(train(cfgOf({outDir: out, batchSize: 97})), DataError);
    assert.deepEqual(fs.readdirSync(out), []);
  });

  it('the launcher\'s child exits when the launcher is killed with SIGKILL', async function() {
    if (process.platform !== 'linux') this.skip();
    this.timeout(120000);
    const out = path.join(tmp, 'orphan');
    const launcher = spawn(process.execPath, ['bin/karat.cjs', 'train', ...TINY_FLAGS, '--epochs', '100000', '--out-dir', out, '--run-name', 'o'],
        {stdio: ['ignore', 'pipe', 'pipe']});
    let stdout = '';
    launcher.stdout.on('data', (d) => stdout += d);
    launcher.stderr.on('data', () => undefined);
    const deadline = Date.now() + 90000;
    while (!/epoch 1\/100000/.test(stdout) && Date.now() < deadline && launcher.exitCode == null) await new Promise((r) => setTimeout(r, 200));
    assert.match(stdout, /epoch 1\/100000/, 'the child trains');
    const children = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
      try {
        return fs.readFileSync(`/proc/${p}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')[1] === String(launcher.pid);
      } catch {
        return false;
      }
    }).map(Number);
    assert.equal(children.length, 1, 'one tsx child');
    const child = children[0];
    const alive = () => {
      try {
        process.kill(child, 0);
        return !/^\S+ \S+ Z/.test(fs.readFileSync(`/proc/${child}/stat`, 'utf8').replace(/^\d+ \(.*\) /, 'x x '));
      } catch {
        return false;
      }
    };
    try {
      launcher.kill('SIGKILL');
      const until = Date.now() + 15000;
      while (alive() && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
      assert.equal(alive(), false, 'the child still runs after its launcher was killed');
    } finally {
      if (alive()) process.kill(child, 'SIGKILL');
    }
  });
});

describe('clear errors: one line and exit code 2', function() {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('bad patch and image sizes, an empty --lr, a divergence', async () => {
    const out = path.join(tmp, 'errors');
    const cases: Array<[string[], RegExp]> = [
      [['--patch-size', '64'], /'patch-size' 64 does not divide the image size 32x32/],
      [['--patch-size', '5'], /'patch-size' 5 does not divide the image size 32x32/],
      [['--image-size', '100000'], /'image-size' must be <= 4096, got 100000/],
      [['--lr', ''], /'lr' must be a number, got ""/],
      [['--lr', '1e30', '--clip-grad', '0', '--steps-per-epoch', '4', '--epochs', '2'], /training diverged at epoch \d, step \d: loss is (NaN|Infinity)/],
    ];
    for (const [flags, re] of cases) {
      const r = await cli(['train', ...TINY_FLAGS, '--out-dir', out, ...flags]);
      assert.equal(r.code, 2, `${flags.join(' ')}: ${r.err}`);
      assert.match(r.err, new RegExp(`^karat: error: [^\\n]*${re.source}[^\\n]*\\n$`), `${flags.join(' ')}: ${r.err}`);
    }
  });

  it('eval with a negative --test-limit or a checkpoint with null header fields', async () => {
    const spec: ModelSpec = {dim: 8, depth: 1, heads: 2, mlpRatio: 1, imageSize: 32, patchSize: 8, numClasses: 10, classifierActivation: 'linear'};
    const m = buildModel(spec, 1);
    const w = await readWeights(m);
    m.dispose();
    const header = (over: Record<string, unknown>) => ({
      format: 2 as const, createdAt: 'now', modelSpec: spec, weights: w.entries, optimizer: null,
      trainer: {epoch: 1, step: 1, seed: 1}, weightFloats: 0, optimizerFloats: 0, ...over,
    });
    const good = path.join(tmp, 'good.ckpt');
    writeCheckpoint(good, {header: header({}), weights: w.data, optimizer: null});
    let r = await cli(['eval', '--checkpoint', good, '--test-limit', '-5', '--backend', 'cpu']);
    assert.equal(r.code, 2);
    assert.match(r.err, /^karat: error: karat eval: --test-limit must be an integer >= 0, got '-5'\n$/);
    for (const [over, re] of [[{trainer: null}, /'trainer' must be an object, got null/], [{modelSpec: null}, /'modelSpec' must be an object, got null/]] as const) {
      const f = path.join(tmp, 'bad.ckpt');
      writeCheckpoint(f, {header: header(over) as never, weights: w.data, optimizer: null});
      r = await cli(['eval', '--checkpoint', f, '--backend', 'cpu']);
      assert.equal(r.code, 2, r.err);
      assert.match(r.err, new RegExp(`^karat: error: .*invalid checkpoint header: ${re.source}\\n$`));
    }
  });

  it('analyze --model: a model of another image size, a malformed model', async () => {
    const dir = path.join(tmp, 'm16');
    const m = karat.models.vit({dim: 8, depth: 1, heads: 2, imageSize: 16, patchSize: 4, numClasses: 10, mlpRatio: 1});
    await m.save(karat.io.fileSystem(dir));
    m.dispose();
    let r = await cli(['analyze', '--model', dir, '--backend', 'cpu', '--images', '1', '--out', path.join(tmp, 'an')]);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /^karat: error: karat analyze: the model takes 16x16x3 images, dataset cifar10-subset\S* has 32x32x3; give --image files or a matching --dataset\n$/);
    fs.writeFileSync(path.join(dir, 'model.json'), '{"modelTopology": {"class_name": "Nonsense"}}');
    r = await cli(['analyze', '--model', dir, '--backend', 'cpu']);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /^karat: error: karat analyze: --model '.*m16' cannot be loaded: [^\n]+\n$/);
  });
});

describe('bounded resources', function() {
  afterEach(() => {
    tf.env().reset();
  });

  it('the composite Fourier-KArAt path refuses B·h·N²·2G over the limit, only where it runs', async () => {
    await tf.setBackend('cpu');
    const scores = tf.zeros([2, 2, 5, 5]) as tf.Tensor4D;
    const coeffs = tf.zeros([2, 2, 3, 5, 4]) as tf.Tensor5D;
    tf.env().set('KARAT_COMPOSITE_MAX_FLOATS', 2 * 2 * 25 * 2 * 4 - 1);
    // cpu has a fused kernel: no limit applies
    assert.equal(karat.hasFusedKernel('FourierKArAt'), true);
    tf.dispose(karat.fourierKArAtHidden(scores, coeffs));
    tf.env().set('KARAT_FUSED', false);
    assert.throws(() => karat.fourierKArAtHidden(scores, coeffs),
        /fourierKArAtHidden: backend 'cpu' has no fused Fourier-KArAt kernel, and its composite path would materialise B·h·N²·2G = 2·2·5²·2·4 = 800 floats .* more than the limit of 799 floats\. Use a smaller grid G/);
    tf.env().set('KARAT_COMPOSITE_MAX_FLOATS', 800);
    tf.dispose(karat.fourierKArAtHidden(scores, coeffs));
    tf.dispose([scores, coeffs]);
  });

  it('karat train --grid 1000 on wasm is refused up front with the reason (composite path)', async function() {
    try {
      await activateBackend('wasm');
    } catch {
      this.skip();
    }
    if (karat.hasFusedKernel('FourierKArAt', 'wasm') && karat.hasFusedKernel('FourierKArAtGrad', 'wasm')) {
      // wasm runs fused kernels: --grid 1000 costs no B·h·N²·2G memory there
      await tf.setBackend('cpu');
      this.skip();
    }
    const out = path.join(tmp, 'grid');
    const r = await cli(['train', ...TINY_FLAGS.filter((f) => f !== 'cpu').map((f) => f === '--backend' ? '--backend=wasm' : f),
      '--grid', '1000', '--patch-size', '4', '--out-dir', out, '--run-name', 'g']);
    await tf.setBackend('cpu');
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /^karat: error: training on wasm: backend 'wasm' has no fused Fourier-KArAt kernel, and its composite path would materialise B·h·N²·2G = 16·2·65²·2·1000 = 270400000 floats/);
    assert.equal(fs.existsSync(path.join(out, 'g')), false, 'no run folder left behind');
  });

  it('a PNG declaring more than 8192x8192 pixels is refused before decoding', () => {
    const png = (w: number, h: number, withData = true) => {
      const ihdr = Buffer.alloc(13);
      ihdr.writeUInt32BE(w, 0);
      ihdr.writeUInt32BE(h, 4);
      ihdr[8] = 8;  // bit depth; colour type 0 (grey)
      const chunk = (type: string, data: Buffer) => {
        const len = Buffer.alloc(4);
        len.writeUInt32BE(data.length);
        const crc = Buffer.alloc(4);
        crc.writeUInt32BE(karatCrc(Buffer.concat([Buffer.from(type, 'latin1'), data])));
        return Buffer.concat([len, Buffer.from(type, 'latin1'), data, crc]);
      };
      const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
      if (!withData) return Buffer.concat([sig, chunk('IHDR', ihdr)]);
      return Buffer.concat([sig, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(h * (w + 1)))), chunk('IEND', Buffer.alloc(0))]);
    };
    assert.equal(MAX_IMAGE_PIXELS, 8192 * 8192);
    const small = decodeImage(png(3, 2), 'small.png');
    assert.deepEqual([small.width, small.height], [3, 2]);
    // 12000 x 12000 declared in the IHDR (no pixel data needed): refused on the header alone
    const huge = png(12000, 12000, false);
    assert.throws(() => decodeImage(huge, 'huge.png'),
        (e: Error) => e instanceof DataError && /huge\.png: 12000x12000 pixels is more than the 67108864-pixel limit/.test(e.message));
  });

  it('a KArAt layer called with batch 0 returns an empty result (cpu and wasm)', async function() {
    const backends = ['cpu'];
    try {
      await activateBackend('wasm');
      backends.push('wasm');
    } catch {
      // wasm unavailable: cpu only
    }
    for (const b of backends) {
      await tf.setBackend(b);
      const layer = new karat.KArAtMultiHeadAttention({numHeads: 2, keyDim: 4, attentionActivation: {type: 'fourier', grid: 2, rank: 2}});
      tf.dispose(layer.apply(tf.zeros([1, 5, 8])) as tf.Tensor);
      const y = layer.apply(tf.zeros([0, 5, 8])) as tf.Tensor;
      assert.deepEqual(y.shape, [0, 5, 8], b);
      const [o, s] = layer.callAndReturnAttentionScores(tf.zeros([0, 5, 8]));
      assert.deepEqual(o.shape, [0, 5, 8]);
      assert.deepEqual(s.shape, [0, 2, 5, 5]);
      tf.dispose([y, o, s]);
    }
    await tf.setBackend('cpu');
  });
});


describe('run safety: SIGTERM stops a karat train run, leaving a resumable checkpoint', function() {
  this.timeout(300000);

  it('a child process sent SIGTERM after its first epoch exits 143; --resume continues from its last.ckpt', async () => {
    const out = path.join(tmp, 'sigterm');
    const flags = ['--train-limit', '32', '--test-limit', '16', '--dim', '8', '--depth', '1', '--heads', '2', '--mlp-ratio', '1',
      '--patch-size', '8', '--grid', '1', '--rank', '2', '--batch-size', '16', '--eval-batch-size', '16', '--backend', 'cpu',
      '--mixup', '0', '--cutmix', '0', '--steps-per-epoch', '2', '--progress', 'none', '--out-dir', out, '--run-name', 'r'];
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', 'train', ...flags, '--epochs', '1000'], {stdio: ['ignore', 'pipe', 'pipe']});
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => stdout += d);
    child.stderr.on('data', (d) => stderr += d);
    const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    // safety timeout only: the run is stopped by the signal, not by the clock
    const deadline = Date.now() + 200000;
    while (!/epoch 1\/1000:/.test(stdout) && Date.now() < deadline && child.exitCode == null) await new Promise((r) => setTimeout(r, 100));
    assert.match(stdout, /epoch 1\/1000:/, `no first epoch: ${stdout}\n${stderr}`);
    child.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 60000))]);
    if (code === 'hung') child.kill('SIGKILL');
    assert.equal(code, 143, stderr);
    assert.match(stderr, /terminated\. Last complete checkpoint: .*last\.ckpt \(resume with --resume/);
    const epoch = Number(readCheckpoint(path.join(out, 'r', 'last.ckpt')).header.trainer.epoch);
    assert.ok(epoch >= 1 && epoch < 1000);
    const r = await runCliInProcess(['train', '--resume', path.join(out, 'r'), '--epochs', String(epoch + 1), '--progress', 'none']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, new RegExp(`resumed from .*last\\.ckpt at epoch ${epoch}`));
    assert.match(r.out, new RegExp(`epoch ${epoch + 1}/${epoch + 1}:`));
  });
});
