/**
 * End-to-end training with a tiny KArAt ViT on the cpu backend: exact resume
 * (2 epochs straight == 1 epoch + resume + 1 epoch), incompatible checkpoints, bad batch
 * size, atomic checkpoint writes under SIGKILL, and the `karat` CLI (train, Ctrl-C, eval,
 * info) in a child process; on wasm, and on webgpu (Dawn, skipped when unavailable) with the
 * fused kernels (LayerNorm, in-place AdamW), training follows the cpu run.
 */
import '@tensorflow/tfjs-backend-cpu';

import * as tf from '@tensorflow/tfjs-core';
import {strict as assert} from 'assert';
import {spawn, spawnSync} from 'node:child_process';
import {existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {createRequire} from 'node:module';
import {join} from 'node:path';

import '../src/node';
import {DataError} from '../src/data/dataset';
import {CheckpointError, readCheckpoint, writeFileAtomic} from '../src/training/checkpoint';
import {resolveConfig, TrainConfig} from '../src/training/config';
import {train} from '../src/training/trainer';
import {describeWithBackends} from './support/backend_suites';
import {WASM, WEBGPU} from './support/node_backends';

const tmp = mkdtempSync(join(tmpdir(), 'karat-train-test-'));
after(() => rmSync(tmp, {recursive: true, force: true}));

/** A tiny G2B ViT on 96 subset images, with every augmentation on (mixup, cutmix, erasing, drop-path). */
const TINY = {
  dataset: 'cifar10-subset', trainLimit: 96, testLimit: 40, dim: 16, depth: 2, heads: 2, mlpRatio: 1, patchSize: 8,
  attention: 'fourier', grid: 2, rank: 4, mode: 'blockwise', dropPath: 0.1, batchSize: 16, evalBatchSize: 20,
  lr: 3e-3, warmupEpochs: 0.5, mixup: 0.8, cutmix: 1.0, randomErasing: 0.25, labelSmoothing: 0.1, clipGrad: 1.0,
  seed: 7, backend: 'cpu', progress: 'none', stepsPerEpoch: 3,
};

function cfgOf(values: Record<string, unknown>): TrainConfig {
  return resolveConfig([{from: 'test', values: {...TINY, ...values}}]);
}

/** Whether the optional peer @tensorflow/tfjs-node (or -gpu) resolves here. */
function tfjsNodeInstalled(): boolean {
  const req = createRequire(__filename);
  return ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu'].some((p) => {
    try {
      req.resolve(p);
      return true;
    } catch {
      return false;
    }
  });
}

async function weightsOf(r: {model: import('@tensorflow/tfjs-layers').LayersModel}): Promise<Float32Array[]> {
  return Promise.all(r.model.weights.map(async (w) => new Float32Array(await w.read().data() as Float32Array)));
}

describe('training: resume continues identically (cpu)', function() {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('2 epochs straight == 1 epoch + resume + 1 epoch: identical weights, optimiser step and metrics', async () => {
    const out = join(tmp, 'resume');
    const straight = await train(cfgOf({epochs: 2, outDir: out}), {}, 'straight');
    const first = await train(cfgOf({epochs: 1, outDir: out}), {}, 'split');
    assert.equal(first.history.length, 1);
    const ck1 = readCheckpoint(join(out, 'split', 'last.ckpt'));
    assert.equal(ck1.header.trainer.epoch, 1);
    assert.equal(ck1.optimizer!.meta.step, 3);
    const resumed = await train(cfgOf({epochs: 2, outDir: out, resume: join(out, 'split'), seed: 999}), {}, 'split');
    // the seed comes from the checkpoint (999 is ignored on resume)
    assert.equal(readCheckpoint(resumed.lastCheckpoint).header.trainer.seed, 7);
    const a = await weightsOf(straight), b = await weightsOf(resumed);
    assert.equal(a.length, b.length);
    a.forEach((w, i) => assert.deepEqual(w, b[i], `weight ${i} (${straight.model.weights[i].name}) differs`));
    assert.deepEqual(resumed.history.map((h) => h.testTop1), straight.history.map((h) => h.testTop1));
    assert.deepEqual(resumed.history.map((h) => h.trainLoss), straight.history.map((h) => h.trainLoss));
    const ckA = readCheckpoint(straight.lastCheckpoint), ckB = readCheckpoint(resumed.lastCheckpoint);
    assert.deepEqual(ckA.optimizer!.data, ckB.optimizer!.data, 'AdamW moments identical');
    assert.ok(existsSync(join(out, 'straight', 'best.ckpt')));
    // and a fresh run with another seed differs (the comparison above is not vacuous)
    const other = await train(cfgOf({epochs: 1, outDir: out, seed: 8}), {}, 'other');
    const c = await weightsOf(other), f = await weightsOf(first);
    assert.ok(c.some((w, i) => w.some((v, k) => v !== f[i][k])));
    for (const r of [straight, first, resumed, other]) r.model.dispose();
  });

  it('--keep-epoch-checkpoints keeps one checkpoint per epoch, which karat analyze --path turns into a loss landscape', async () => {
    const out = join(tmp, 'epochs');
    const r = await train(cfgOf({epochs: 3, outDir: out, keepEpochCheckpoints: true}), {}, 'run');
    const dir = join(out, 'run', 'epochs');
    const files = readdirSync(dir).sort();
    assert.deepEqual(files, ['epoch-001.ckpt', 'epoch-002.ckpt', 'epoch-003.ckpt']);
    const steps = files.map((f) => Number((readCheckpoint(join(dir, f)).header.trainer as {step: number}).step));
    assert.deepEqual(steps, [3, 6, 9]);
    // The last epoch's snapshot holds the final weights.
    const last = readCheckpoint(join(dir, 'epoch-003.ckpt'));
    const finalWeights = await weightsOf(r);
    assert.equal(last.weights.length, finalWeights.length);
    last.weights.forEach((w, i) => assert.deepEqual(Array.from(w), Array.from(finalWeights[i]), `weight ${i}`));
    assert.equal(last.optimizer, null);
    const {cmdAnalyze} = await import('../src/cli/analyze');
    const log = console.log;
    console.log = () => {};
    let code: number;
    try {
      code = await cmdAnalyze(['--checkpoint', join(out, 'run', 'last.ckpt'), '--path', dir, '--what', 'landscape',
        '--resolution', '3', '--landscape-examples', '8', '--images', '1', '--out', join(out, 'analysis'), '--backend', 'cpu']);
    } finally {
      console.log = log;
    }
    assert.equal(code, 0);
    const summary = JSON.parse(readFileSync(join(out, 'analysis', 'summary.json'), 'utf8'));
    assert.equal(summary.landscape.checkpoints.length, 3);
    assert.ok(Number.isFinite(summary.landscape.minLoss));
  });

  it('a checkpoint of an incompatible model, a corrupt checkpoint and a too-large batch are clear errors', async () => {
    const out = join(tmp, 'bad');
    const r = await train(cfgOf({epochs: 1, outDir: out}), {}, 'run');
    r.model.dispose();
    await assert.rejects(train(cfgOf({epochs: 2, outDir: out, resume: join(out, 'run'), dim: 24}), {}, 'run'),
        (e: Error) => e instanceof CheckpointError && /incompatible model\/dataset \(dim: checkpoint 16, this run 24\)/.test(e.message));
    const bad = join(out, 'garbage.ckpt');
    writeFileSync(bad, 'PK\x03\x04 not a checkpoint');
    await assert.rejects(train(cfgOf({epochs: 2, outDir: out, resume: bad}), {}, 'run2'),
        /is not a tfjs-karat checkpoint \(wrong magic number/);
    const last = readFileSync(join(out, 'run', 'last.ckpt'));
    writeFileSync(join(out, 'cut.ckpt'), last.subarray(0, last.length - 100));
    assert.throws(() => readCheckpoint(join(out, 'cut.ckpt')), /is truncated: \d+ bytes, its header declares \d+ \(100 bytes of tensor data missing\)/);
    await assert.rejects(train(cfgOf({epochs: 1, outDir: out, batchSize: 97}), {}, 'run3'),
        (e: Error) => e instanceof DataError && /batch size 97 is larger than dataset 'cifar10-subset\/train\[:96\]' \(96 examples\)/.test(e.message));
  });
});

/** Trains TINY for one epoch on `backend` and on cpu; the losses and weights agree closely. */
async function followsCpu(backend: string, dir: string) {
  const out = join(tmp, dir);
  const cfg = (b: string) => cfgOf({epochs: 1, outDir: out, backend: b, dropPath: 0});
  const ref = await train(cfg('cpu'), {}, 'cpu');
  let got: Awaited<ReturnType<typeof train>> | null = null;
  const info = await tf.profile(async () => {
    got = await train(cfg(backend), {}, backend);
  });
  assert.equal(got!.backend, backend);
  const [a, b] = [ref.history[0].trainLoss, got!.history[0].trainLoss];
  assert.ok(Math.abs(a - b) < 1e-3 * Math.abs(a), `train loss cpu ${a} vs ${backend} ${b}`);
  const [wa, wb] = [await weightsOf(ref), await weightsOf(got!)];
  const rel = Math.max(...wa.map((w, i) => Math.max(...w.map((v, k) => Math.abs(v - wb[i][k]))) / Math.max(1e-6, ...w.map(Math.abs))));
  assert.ok(rel < 1e-3, `weights after 3 steps: max relative difference ${rel}`);
  ref.model.dispose();
  got!.model.dispose();
  return new Set(info.kernels.map((k) => k.name));
}

describeWithBackends('training follows the cpu run', {backends: [WASM.id, WEBGPU.id]}, function(env) {
  this.timeout(600000);

  if (env.id === WASM.id) {
    it('wasm trains (the patch embedding is a matmul: wasm has no Conv2DBackpropFilter) and follows cpu', async () => {
      const names = await followsCpu('wasm', 'wasm');
      assert.ok(!names.has('Conv2DBackpropFilter'));
    });
  }

  if (env.id === WEBGPU.id) {
    it('webgpu (Dawn) runs the fused kernels and the in-place AdamW, and follows cpu', async () => {
      const names = await followsCpu('webgpu', 'webgpu');
      // the layers' Fourier-KArAt attention takes the flash-style kernels (no N x N tensor)
      for (const k of ['KArAtAdamWInPlace', 'KArAtLayerNorm', 'KArAtLayerNormGrad', 'KArAtFourierAttention',
        'KArAtFourierAttentionGradQ', 'KArAtFourierAttentionGradK', 'KArAtFourierAttentionGradCoeffs', 'KArAtFourierAttentionGradProj']) {
        assert.ok(names.has(k), `${k} did not run on webgpu`);
      }
      assert.ok(!names.has('FourierKArAt'), 'the materialising FourierKArAt ran on webgpu');
    });
  }
});

describe('training: atomic checkpoint writes', function() {
  it('a failed write leaves the previous file intact and no temp file', () => {
    const dir = join(tmp, 'atomic');
    const f = join(dir, 'x.bin');
    writeFileAtomic(f, [Buffer.from('old')]);
    const boom = new Uint8Array(10);
    Object.defineProperty(boom, 'length', {get: () => { throw new Error('disk full'); }});
    assert.throws(() => writeFileAtomic(f, [Buffer.from('new'), boom]), /disk full/);
    assert.equal(readFileSync(f, 'utf8'), 'old');
    assert.deepEqual(readdirSync(dir), ['x.bin']);
  });

  it('a process killed (SIGKILL) while rewriting a checkpoint never leaves a partial file', async function() {
    const f = join(tmp, 'killed', 'last.ckpt');
    for (let round = 0; round < 3; round++) {
      const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/ckpt_writer.ts', f], {stdio: ['ignore', 'pipe', 'inherit']});
      await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
      await new Promise((r) => setTimeout(r, 150 + 170 * round));
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      const ck = readCheckpoint(f);  // throws on a partial file
      const v = ck.header.trainer.version as number;
      assert.ok(v >= 1);
      assert.ok(ck.weights[0].every((x) => x === v), 'weights belong to the header\'s version');
    }
  });
});

describe('karat CLI (child process)', function() {
  const cli = (args: string[], cwd = process.cwd()) => spawnSync(process.execPath, ['bin/karat.cjs', ...args], {cwd, encoding: 'utf8'});
  const tinyFlags = ['--train-limit', '64', '--test-limit', '20', '--dim', '16', '--depth', '1', '--heads', '2', '--mlp-ratio', '1',
    '--patch-size', '8', '--grid', '1', '--rank', '4', '--batch-size', '16', '--eval-batch-size', '20', '--backend', 'cpu', '--mixup', '0', '--cutmix', '0'];

  it('train writes logs, curves and checkpoints; Ctrl-C keeps the last complete checkpoint; eval and info read it', async function() {
    const out = join(tmp, 'cli');
    const cfgFile = join(tmp, 'cli.json');
    writeFileSync(cfgFile, JSON.stringify({'steps-per-epoch': 2, epochs: 50, seed: 3}));
    const child = spawn(process.execPath, ['bin/karat.cjs', 'train', '--config', cfgFile, ...tinyFlags, '--out-dir', out, '--run-name', 'r1'],
        {stdio: ['ignore', 'pipe', 'pipe']});
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => stdout += d);
    child.stderr.on('data', (d) => stderr += d);
    const last = join(out, 'r1', 'last.ckpt');
    const deadline = Date.now() + 150000;
    while (!/epoch 2\/50:/.test(stdout) && Date.now() < deadline && child.exitCode == null) await new Promise((r) => setTimeout(r, 200));
    assert.match(stdout, /epoch 2\/50:/, `no second epoch: ${stdout}\n${stderr}`);
    process.kill(child.pid!, 'SIGINT');
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    assert.equal(code, 130, stderr);
    assert.match(stderr, /interrupted\. Last complete checkpoint: .*last\.ckpt \(resume with --resume/);
    assert.match(stdout, /backend: cpu/);
    assert.match(stderr, /epoch 1\/50 step 2\/2 \[.*ETA.*\] loss \d\.\d{4} acc [\d.]+% lr .* img\/s/, 'plain progress lines (not a TTY)');
    const ck = readCheckpoint(last);
    assert.ok(Number(ck.header.trainer.epoch) >= 2);
    const jsonl = readFileSync(join(out, 'r1', 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(jsonl[0].type, 'start');
    assert.ok(jsonl.filter((r) => r.type === 'epoch').length >= 2);
    const csv = readFileSync(join(out, 'r1', 'log.csv'), 'utf8').trim().split('\n');
    assert.match(csv[0], /^epoch,step,lr,trainLoss,trainAcc,testLoss,testTop1,testTop5/);
    assert.match(readFileSync(join(out, 'r1', 'curves.svg'), 'utf8'), /^<svg[\s\S]*<path d="M[\s\S]*<\/svg>$/);

    const ev = cli(['eval', '--checkpoint', last, '--backend', 'cpu', '--test-limit', '20']);
    assert.equal(ev.status, 0, ev.stderr);
    assert.match(ev.stdout, /top-1 \d+\.\d\d%\s+top-5 \d+\.\d\d%/);
    assert.match(ev.stdout, /airpla\s+automo.*\(rows: true, columns: predicted\)/);
    const rows = ev.stdout.split('\n').filter((l) => /^(airpla|automo|bird|cat|deer|dog|frog|horse|ship|truck)\s/.test(l));
    assert.equal(rows.length, 10);
    const total = rows.reduce((a, l) => a + l.trim().split(/\s+/).slice(1, 11).reduce((s, v) => s + Number(v), 0), 0);
    assert.equal(total, 20, 'confusion matrix counts every test example');

    const info = cli(['info', '--checkpoint', last]);
    assert.equal(info.status, 0, info.stderr);
    assert.match(info.stdout, /checkpoint .*: epoch \d+, step \d+, seed 3/);

    // resume from the interrupted run finishes with a summary table
    const res = cli(['train', '--resume', join(out, 'r1'), '--epochs', String(Number(ck.header.trainer.epoch) + 1), '--progress', 'none']);
    assert.equal(res.status, 0, res.stderr);
    assert.match(res.stdout, /resumed from .*last\.ckpt at epoch \d+/);
    assert.match(res.stdout, /summary\nepoch\s+train loss\s+train acc\s+test loss\s+top-1\s+top-5/);
    // the final model is also exported in the tfjs layers format and loads with tf.loadLayersModel
    const tfl = await import('@tensorflow/tfjs-layers');
    const loaded = await tfl.loadLayersModel(`file://${join(out, 'r1', 'model', 'model.json')}`);
    assert.deepEqual(loaded.outputs[0].shape, [null, 10]);
    const ckFinal = readCheckpoint(join(out, 'r1', 'last.ckpt'));
    const w0 = await loaded.weights[0].read().data();
    assert.deepEqual(Array.from(w0), Array.from(ckFinal.weights[0]), 'exported weights = last checkpoint');
    loaded.dispose();
  });

  it('bad input gives one clear error line and exit code 2', function() {
    const cases: Array<[string[], RegExp]> = [
      [['train', '--preset', 'nope'], /karat: error: unknown preset 'nope'/],
      [['train', '--dataset', 'imagenet'], /karat: error: unknown dataset 'imagenet'/],
      [['train', '--backend', 'webgl'], /karat: error: backend webgl: WebGL needs a browser/],
      // where tfjs-node is installed (scripts/tfjs-node-from-wheel.sh), the tensorflow backend works:
      // test/tensorflow/backend.tftest.ts trains on it
      ...(tfjsNodeInstalled() ? [] : [[['train', '--backend', 'tensorflow', ...tinyFlags.slice(0, -6)],
        /karat: error: backend tensorflow: neither @tensorflow\/tfjs-node nor/] as [string[], RegExp]]),
      [['train', ...tinyFlags, '--batch-size', '65'], /karat: error: batch size 65 is larger than dataset/],
      [['train', '--config', join(tmp, 'missing.json')], /karat: error: --config: file .* does not exist/],
      [['eval', '--checkpoint', join(tmp, 'none.ckpt')], /karat: error: checkpoint .* does not exist/],
      [['frobnicate'], /karat: error: unknown command 'frobnicate'/],
    ];
    for (const [args, re] of cases) {
      const r = cli(args);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
    }
  });
});
