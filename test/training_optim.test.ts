/**
 * Optimiser side of the training recipe: AdamW with decoupled weight decay and
 * parameter groups against a scalar reference, serialisable state, gradient clipping,
 * the warm-up + cosine schedule, metrics, config validation and CLI flag parsing.
 */
import '@tensorflow/tfjs-backend-cpu';

import * as tf from '@tensorflow/tfjs-core';
import {strict as assert} from 'assert';

import '../src/node';
import {parseFlags, UsageError} from '../src/cli/flags';
import {AdamW, clipByGlobalNorm, Param, sumTensors} from '../src/training/adamw';
import {ConfigError, DEFAULTS, FIELD_HELP, kebab, resolveConfig} from '../src/training/config';
import {readFileSync} from 'node:fs';
import {join} from 'node:path';
import {confusionMatrix, softCrossEntropy, topKCorrect} from '../src/training/metrics';
import {paramRule} from '../src/training/model';
import {learningRate} from '../src/training/schedule';

/** Scalar AdamW as in PyTorch (decay applied to p before the Adam step). */
function refAdamW(p: number, grads: number[], lrs: number[], wd: number, b1 = 0.9, b2 = 0.999, eps = 1e-8): number {
  let m = 0, v = 0;
  grads.forEach((g, i) => {
    const t = i + 1;
    m = b1 * m + (1 - b1) * g;
    v = b2 * v + (1 - b2) * g * g;
    p = p * (1 - lrs[i] * wd);
    p = p - lrs[i] * (m / (1 - Math.pow(b1, t))) / (Math.sqrt(v / (1 - Math.pow(b2, t))) + eps);
  });
  return p;
}

describe('training: AdamW', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('matches a scalar reference, decays only the decay group, applies lrScale', async () => {
    const mk = (name: string, v: number, decay: boolean, lrScale: number): Param =>
      ({name, variable: tf.variable(tf.tensor1d([v, -v])), rule: {decay, lrScale, group: decay ? 'decay' : 'no_decay'}});
    const params = [mk('w', 1.5, true, 1), mk('b', 0.7, false, 1), mk('k', -0.3, false, 0.5)];
    const opt = new AdamW(params, {weightDecay: 0.1});
    const grads = [[0.2, -0.1, 0.4], [0.05, 0.3, -0.2], [1, 1, 1]];
    const lrs = [0.01, 0.02, 0.005];
    for (let s = 0; s < 3; s++) {
      opt.apply(params.map((_, i) => tf.tensor1d([grads[i][s], -grads[i][s]])), lrs[s]);
    }
    const got = await Promise.all(params.map((p) => p.variable.data()));
    const want = [refAdamW(1.5, grads[0], lrs, 0.1), refAdamW(0.7, grads[1], lrs, 0), refAdamW(-0.3, grads[2], lrs.map((l) => l * 0.5), 0)];
    want.forEach((w, i) => {
      assert.ok(Math.abs(got[i][0] - w) < 1e-6, `param ${i}: ${got[i][0]} vs ${w}`);
      assert.ok(Math.abs(got[i][1] + w) < 1e-6);
    });
    opt.dispose();
    tf.dispose(params.map((p) => p.variable));
  });

  it('state round-trips exactly (m, v, step) and rejects a mismatched model', async () => {
    const v1 = tf.variable(tf.tensor2d([[1, 2], [3, 4]]));
    const a = new AdamW([{name: 'x', variable: v1, rule: {decay: true, lrScale: 1, group: 'decay'}}]);
    a.apply([tf.tensor2d([[0.1, 0.2], [0.3, 0.4]])], 0.1);
    const state = await a.getState();
    assert.equal(state.meta.step, 1);
    const v2 = tf.variable(tf.tensor2d([[1, 2], [3, 4]]));
    const b = new AdamW([{name: 'x', variable: v2, rule: {decay: true, lrScale: 1, group: 'decay'}}]);
    b.setState(state);
    v2.assign(v1);
    const g = tf.tensor2d([[-0.3, 0.1], [0.2, 0.0]]);
    a.apply([g], 0.05);
    b.apply([g], 0.05);
    assert.deepEqual(await v1.data(), await v2.data());
    const c = new AdamW([{name: 'y', variable: tf.variable(tf.zeros([3])), rule: {decay: true, lrScale: 1, group: 'decay'}}]);
    assert.throws(() => c.setState(state), /parameter 0 is 'x' \[2,2\], the model has 'y' \[3\]/);
  });

  it('clips by global norm only above the threshold', async () => {
    const g = [tf.tensor1d([3, 0]), tf.tensor1d([0, 4])];
    const {grads, norm} = clipByGlobalNorm(g, 1);
    assert.ok(Math.abs((await norm.data())[0] - 5) < 1e-5);
    const c = [...await grads[0].data(), ...await grads[1].data()];
    assert.ok(Math.abs(c[0] - 0.6) < 1e-5 && Math.abs(c[3] - 0.8) < 1e-5);
    const unclipped = clipByGlobalNorm(g, 10);
    assert.deepEqual([...await unclipped.grads[1].data()], [0, 4]);
  });

  it('the global norm of many gradients sums in groups of <= 7 (WebGPU binds 8 buffers per program)', async () => {
    const g = Array.from({length: 45}, (_, i) => tf.tensor1d([i, 1]));
    const expected = Math.sqrt(g.reduce((a, _, i) => a + i * i + 1, 0));
    const {grads, norm} = clipByGlobalNorm(g, 0);
    assert.ok(Math.abs((await norm.data())[0] - expected) < 1e-4 * expected);
    assert.equal((await sumTensors([tf.scalar(2)]).data())[0], 2);
    assert.throws(() => sumTensors([]), /empty list/);
    tf.dispose([...g, ...grads, norm]);
  });

  it('groups: no decay on biases, norms, embeddings, KArAt coefficients (unless asked); KArAt lr', () => {
    const cfg = {...DEFAULTS, lr: 1e-3, karatLr: 5e-3};
    assert.equal(paramRule('block0_mlp_fc1/kernel', 2, cfg).decay, true);
    assert.equal(paramRule('patch_embed/kernel', 4, cfg).decay, true);
    for (const n of ['head/bias', 'block1_norm2/gamma', 'norm/beta', 'cls_token/token', 'pos_embed/embedding']) {
      assert.equal(paramRule(n, 3, cfg).decay, false, n);
    }
    const k = paramRule('block0_attn/karat/coeffs', 5, cfg);
    assert.deepEqual([k.decay, k.lrScale, k.group], [false, 5, 'karat']);
    assert.equal(paramRule('block0_attn/karat/coeffs', 5, {...cfg, karatDecay: true}).decay, true);
  });
});

describe('training: schedule, metrics, config', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('linear warm-up then cosine decay to minLr', () => {
    const c = {baseLr: 1, minLr: 0.1, warmupSteps: 10, totalSteps: 110, warmupStartLr: 0};
    assert.equal(learningRate(c, 0), 0);
    assert.ok(Math.abs(learningRate(c, 5) - 0.5) < 1e-12);
    assert.equal(learningRate(c, 10), 1);
    assert.ok(Math.abs(learningRate(c, 60) - 0.55) < 1e-12);
    assert.ok(Math.abs(learningRate(c, 110) - 0.1) < 1e-12);
    for (let s = 11; s <= 110; s++) assert.ok(learningRate(c, s) <= learningRate(c, s - 1) + 1e-15);
  });

  it('soft cross-entropy, top-k and the confusion matrix', async () => {
    const logits = tf.tensor2d([[2, 1, 0], [0, 0, 3]]);
    const y = tf.tensor2d([[0.5, 0.5, 0], [0, 0, 1]]);
    const ce = (await softCrossEntropy(logits, y).data())[0];
    const ls = (r: number[]) => r.map((v) => v - Math.log(r.reduce((a, b) => a + Math.exp(b), 0)));
    const want = -(0.5 * ls([2, 1, 0])[0] + 0.5 * ls([2, 1, 0])[1] + ls([0, 0, 3])[2]) / 2;
    assert.ok(Math.abs(ce - want) < 1e-5);
    const l = Float32Array.from([0.1, 0.5, 0.3, 0.2, /**/ 0.9, 0.05, 0.03, 0.02]);
    const labels = Int32Array.from([2, 3]);
    assert.equal(topKCorrect(l, labels, 4, 1), 0);
    assert.equal(topKCorrect(l, labels, 4, 2), 1);
    assert.equal(topKCorrect(l, labels, 4, 4), 2);
    assert.deepEqual(confusionMatrix(l, labels, 4), [[0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0]]);
  });

  it('config: preset < file < flags; unknown preset/dataset/backend/option are clear errors', () => {
    const c = resolveConfig([{from: 'file', values: {preset: 'quick', epochs: 5}}, {from: 'flags', values: {epochs: '7', hflip: 'false'}}]);
    assert.equal(c.epochs, 7);
    assert.equal(c.hflip, false);
    assert.equal(c.dim, 48);
    const t = resolveConfig([{from: 'flags', values: {preset: 'cifar10-paper'}}]);
    assert.deepEqual([t.dim, t.depth, t.heads, t.grid, t.mode, t.epochs, t.dataset], [192, 12, 3, 3, 'blockwise', 100, 'cifar10']);
    assert.throws(() => resolveConfig([{from: 'flags', values: {preset: 'huge'}}]), (e: Error) => e instanceof ConfigError && /unknown preset 'huge'; known presets: quick, cifar10-paper, cifar100-paper/.test(e.message));
    assert.throws(() => resolveConfig([{from: 'flags', values: {dataset: 'imagenet'}}]), /unknown dataset 'imagenet'/);
    assert.throws(() => resolveConfig([{from: 'flags', values: {backend: 'metal'}}]), /unknown backend 'metal'; expected one of auto, cpu, wasm, webgpu, webgl, tensorflow/);
    assert.throws(() => resolveConfig([{from: '--config x.json', values: {batchsize: 3}}]), /--config x\.json: unknown option 'batchsize' \(did you mean 'batch-size'\?\)/);
    assert.throws(() => resolveConfig([{from: 'flags', values: {epochs: 'many'}}]), /'epochs' must be an integer, got "many"/);
    assert.throws(() => resolveConfig([{from: 'flags', values: {dim: 30, heads: 4}}]), /'dim' \(30\) must be divisible by 'heads' \(4\)/);
  });

  it("docs/training.md's flag table has a row for every option of karat train", () => {
    const doc = readFileSync(join(__dirname, '..', 'docs', 'training.md'), 'utf8');
    const missing = Object.keys(FIELD_HELP).map((k) => `--${kebab(k)}`).filter((f) => !doc.includes(`| \`${f}\` |`));
    assert.deepEqual(missing, []);
  });

  it('CLI flags: --a b, --a=b, booleans, --no-x; a missing value is an error', () => {
    const {flags, positional} = parseFlags(['--batch-size', '8', '--lr=0.1', '--hflip', '--no-download', 'extra', '--karat-decay', 'false'],
        new Set(['hflip', 'download', 'karatDecay']));
    assert.deepEqual({...flags}, {batchSize: '8', lr: '0.1', hflip: true, download: false, karatDecay: 'false'});
    // no prototype: 'constructor' or '__proto__' are plain (unknown) keys, never inherited members
    assert.equal(Object.getPrototypeOf(flags), null);
    assert.equal('constructor' in parseFlags(['--x', '1'], new Set()).flags, false);
    assert.deepEqual(positional, ['extra']);
    assert.throws(() => parseFlags(['--epochs'], new Set()), (e: Error) => e instanceof UsageError && /--epochs needs a value/.test(e.message));
  });
});
