/**
 * WebGPU kernels (kernels-webgpu/) against the CPU kernels, in Node on Dawn
 * (tfjs-backend-webgpu over Vulkan; SwiftShader here, a real GPU where there is one).
 *
 * Tolerance: max |webgpu − cpu| ≤ TOL · max(1, max |cpu|) per output, TOL = 1e-5. The
 * CPU kernel accumulates in float64; the shaders in float32 with their own range-reduced
 * sin/cos (not the WGSL builtins, which may be off by 2^-11) and the angle-addition
 * recurrence. Measured on SwiftShader: at most 3.1e-7 over all cases below, so TOL
 * leaves a 30x margin for other GPUs' rounding, while an indexing mistake gives O(1).
 */
import * as assert from 'node:assert/strict';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

import * as karat from '../src/index';
import {fourierKArAtGrad, fourierKArAtHidden} from '../src/index';
import {KARAT_WEBGPU_FUSED_LAYERS_FLAG} from '../src/ops/fused_layers';
import {FourierKArAt, FourierKArAtGrad} from '../src/ops/kernel_names';
import {forwardPlan, gradCoeffsPlan, gradScoresPlan} from '../kernels-webgpu/plan';
import {releaseWebGPUAfterAllTests, setupWebGPUNode, useWebGPUBackend} from './support/webgpu_node';

const TOL = 1e-5;

releaseWebGPUAfterAllTests();

/** Deterministic pseudo-random floats (mulberry32 + Box-Muller). */
function randn(n: number, seed: number, scale = 1): Float32Array {
  let a = seed >>> 0;
  const u = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = scale * Math.sqrt(-2 * Math.log(u() + 1e-12)) * Math.cos(2 * Math.PI * u());
  }
  return out;
}

interface Case {B: number, h: number, N: number, r: number, G: number, scale?: number}

interface Data {scores: Float32Array, coeffs: Float32Array, dy: Float32Array}

function makeData(c: Case, seed: number): Data {
  return {
    scores: randn(c.B * c.h * c.N * c.N, seed, c.scale ?? 1.5),
    coeffs: randn(c.h * 2 * c.r * c.N * c.G, seed + 1, 1 / Math.sqrt(c.N * c.G)),
    dy: randn(c.B * c.h * c.N * c.r, seed + 2),
  };
}

/** ĥ, dScores, dCoeffs of the op on the active backend. */
async function runOp(c: Case, d: Data): Promise<Float32Array[]> {
  const outs = tf.tidy(() => {
    const s = tf.tensor4d(d.scores, [c.B, c.h, c.N, c.N]);
    const k = tf.tensor5d(d.coeffs, [c.h, 2, c.r, c.N, c.G]);
    const g = tf.tensor4d(d.dy, [c.B, c.h, c.N, c.r]);
    return [fourierKArAtHidden(s, k), ...fourierKArAtGrad(g, s, k)];
  });
  const values = await Promise.all(outs.map((t) => t.data() as Promise<Float32Array>));
  tf.dispose(outs);
  return values;
}

function relErr(actual: Float32Array, expected: Float32Array): number {
  assert.equal(actual.length, expected.length);
  let maxErr = 0, maxRef = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = Math.abs(actual[i] - expected[i]);
    maxErr = Number.isNaN(e) ? Infinity : Math.max(maxErr, e);
    maxRef = Math.max(maxRef, Math.abs(expected[i]));
  }
  return maxErr / Math.max(1, maxRef);
}

// A covering subset: N = 1, 7, 65, 197 (partial q-/row-tiles), r = 1, 12 (and 20: two
// p-tiles), G = 1, 3, 5 (and 10: two harmonic blocks), B·h up to 8.
const CASES: Case[] = [
  {B: 2, h: 1, N: 1, r: 1, G: 1},
  {B: 1, h: 3, N: 1, r: 12, G: 5},
  {B: 4, h: 2, N: 7, r: 12, G: 3},
  {B: 2, h: 2, N: 7, r: 1, G: 5},
  {B: 1, h: 2, N: 65, r: 12, G: 3},
  {B: 1, h: 2, N: 65, r: 12, G: 3, scale: 15},  // |scores| up to ~60: range reduction
  {B: 2, h: 1, N: 65, r: 1, G: 1},
  {B: 1, h: 1, N: 197, r: 12, G: 3},
  {B: 1, h: 1, N: 197, r: 1, G: 5},
  {B: 1, h: 2, N: 9, r: 20, G: 2},
  {B: 2, h: 1, N: 9, r: 7, G: 10},  // dCoeffs: 2 p-tiles x 2 harmonic blocks
];

describe('webgpu kernels: registration', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('registers FourierKArAt and FourierKArAtGrad for backend webgpu', () => {
    assert.ok(tf.getKernel(FourierKArAt, 'webgpu') != null, 'FourierKArAt not registered');
    assert.ok(tf.getKernel(FourierKArAtGrad, 'webgpu') != null, 'FourierKArAtGrad not registered');
  });

  it('tiling plans stay within 16 KiB of workgroup memory and cover every p, m and row', () => {
    const LIMIT = 16384 / 4;  // floats every WebGPU adapter guarantees
    for (const G of [1, 2, 3, 5, 8, 9, 16, 33]) {
      for (const r of [1, 3, 12, 16, 17, 40, 64]) {
        const d = {batch: 3, heads: 2, tokens: 197, rank: r, grid: G};
        const f = forwardPlan(d), s = gradScoresPlan(d), c = gradCoeffsPlan(d);
        const where = `r=${r} G=${G}`;
        assert.ok(2 * f.pt * f.mb * f.qt + f.lanes * f.rows <= LIMIT, `forward ${where}`);
        assert.ok(s.rt * s.pc + 2 * s.pc * s.mb * s.qLanes <= LIMIT, `dScores ${where}`);
        assert.ok(2 * c.pt * c.mb <= 96, `dCoeffs accumulators ${where}`);
        assert.ok(f.mb <= 8 && f.mb * f.blocks >= G, `harmonic blocks ${where}`);
        assert.ok(f.pt * f.pTiles >= r && s.pc * s.pChunks >= r && c.pt * c.pTiles >= r, `p cover ${where}`);
        assert.ok(c.chunks * c.chunkRows >= 3 * 197 && (c.chunks - 1) * c.chunkRows < 3 * 197, `chunks ${where}`);
        assert.ok(c.chunks <= 64, `partial buffer bound ${where}`);
      }
    }
  });
});

describe('webgpu kernels vs cpu kernels (Dawn)', function() {
  const results = new Map<string, Float32Array[]>();

  before(async function() {
    // CPU references first, then switch to webgpu (skips here when unavailable).
    const status = await setupWebGPUNode();
    if (!status.available) {
      console.log(`      [skip] WebGPU unavailable: ${status.reason}`);
      this.skip();
    }
    await tf.setBackend('cpu');
    for (const [i, c] of CASES.entries()) results.set(JSON.stringify(c), await runOp(c, makeData(c, 100 + i)));
    await useWebGPUBackend(this);
  });

  for (const [i, c] of CASES.entries()) {
    it(`B=${c.B} h=${c.h} N=${c.N} r=${c.r} G=${c.G}${c.scale ? ` |S|~${c.scale}` : ''}: forward, dScores, dCoeffs match`, async () => {
      assert.equal(tf.getBackend(), 'webgpu');
      const ref = results.get(JSON.stringify(c))!;
      const got = await runOp(c, makeData(c, 100 + i));
      const names = ['hidden', 'dScores', 'dCoeffs'];
      for (let k = 0; k < 3; k++) {
        const err = relErr(got[k], ref[k]);
        assert.ok(err < TOL, `${names[k]}: relative error ${err.toExponential(2)} >= ${TOL}`);
      }
    });
  }
});

describe('webgpu kernels: tf.grad and memory (Dawn)', function() {
  const c: Case = {B: 2, h: 2, N: 13, r: 5, G: 3};

  async function gradsOn(backend: string): Promise<Float32Array[]> {
    await tf.setBackend(backend);
    const d = makeData(c, 7);
    const w = randn(c.B * c.h * c.N * c.r, 8);
    const outs = tf.tidy(() => {
      const s = tf.tensor4d(d.scores, [c.B, c.h, c.N, c.N]);
      const k = tf.tensor5d(d.coeffs, [c.h, 2, c.r, c.N, c.G]);
      const wt = tf.tensor4d(w, [c.B, c.h, c.N, c.r]);
      const f = (x: tf.Tensor, y: tf.Tensor) =>
          tf.sum(tf.mul(tf.square(fourierKArAtHidden(x as tf.Tensor4D, y as tf.Tensor5D)), wt));
      return tf.grads(f)([s, k]);
    });
    const vals = await Promise.all(outs.map((t) => t.data() as Promise<Float32Array>));
    tf.dispose(outs);
    return vals;
  }

  before(async function() {
    await useWebGPUBackend(this);
  });

  it('tf.grads through fourierKArAtHidden equals cpu', async () => {
    const ref = await gradsOn('cpu');
    const got = await gradsOn('webgpu');
    const e0 = relErr(got[0], ref[0]), e1 = relErr(got[1], ref[1]);
    assert.ok(e0 < TOL, `dScores: relative error ${e0.toExponential(2)}`);
    assert.ok(e1 < TOL, `dCoeffs: relative error ${e1.toExponential(2)}`);
  });

  it('leaks no tensors and no backend buffers', async () => {
    await tf.setBackend('webgpu');
    const d = makeData(c, 9);
    const s = tf.tensor4d(d.scores, [c.B, c.h, c.N, c.N]);
    const k = tf.tensor5d(d.coeffs, [c.h, 2, c.r, c.N, c.G]);
    const g = tf.tensor4d(d.dy, [c.B, c.h, c.N, c.r]);
    const run = async () => {
      const outs = tf.tidy(() => [fourierKArAtHidden(s, k), ...fourierKArAtGrad(g, s, k)]);
      await Promise.all(outs.map((t) => t.data()));
      tf.dispose(outs);
    };
    await run();  // compile pipelines first
    const tensors = tf.memory().numTensors;
    const dataIds = tf.backend().numDataIds();
    for (let i = 0; i < 3; i++) await run();
    assert.equal(tf.memory().numTensors, tensors, 'engine tensors leaked');
    assert.equal(tf.backend().numDataIds(), dataIds, 'backend buffers leaked');
    tf.dispose([s, k, g]);
  });
});

describe('webgpu kernels: KArAt ViT training steps match cpu (Dawn)', function() {
  const STEPS = 3;
  const imgs = randn(4 * 8 * 8 * 3, 21);
  const labels = [0, 2, 1, 2];

  /** Builds the same tiny G3B ViT on `backend`, runs SGD steps; returns losses, weights, kernels used. */
  async function train(backend: string, init: Float32Array[] | null) {
    await tf.setBackend(backend);
    const model = karat.models.vit({
      dim: 16, depth: 2, heads: 2, imageSize: 8, patchSize: 4, numClasses: 3,
      classifierActivation: 'linear',
      attention: {type: 'fourier', grid: 3, rank: 4, mode: 'blockwise'},
    });
    const weights = model.getWeights();
    if (init != null) model.setWeights(init.map((v, i) => tf.tensor(v, weights[i].shape)));
    // getWeights() returns the live variables: copy the initial values before training.
    const initial = init ?? await Promise.all(weights.map((w) => w.data() as Promise<Float32Array>));
    const x = tf.tensor4d(imgs, [4, 8, 8, 3]);
    const y = tf.oneHot(tf.tensor1d(labels, 'int32'), 3);
    const opt = tf.train.sgd(0.02);
    const losses: number[] = [];
    const kernels = new Set<string>();
    for (let s = 0; s < STEPS; s++) {
      const info = await tf.profile(async () => {
        const loss = opt.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x) as tf.Tensor), true)!;
        losses.push((await loss.data())[0]);
        loss.dispose();
      });
      info.kernelNames.forEach((k) => kernels.add(k));
    }
    const final = await Promise.all(model.getWeights().map((w) => w.data() as Promise<Float32Array>));
    tf.dispose([x, y]);
    opt.dispose();
    model.dispose();
    return {losses, final, initial, kernels};
  }

  before(async function() {
    await useWebGPUBackend(this);
  });

  it(`${STEPS} SGD steps of a G3B ViT give the same losses and weights as cpu, using the fused kernels`, async () => {
    // Flag off: the layers form the scores and run FourierKArAt / FourierKArAtGrad (flag on, webgpu
    // runs the flash-style attention kernels instead: test/webgpu_flash_karat.test.ts).
    const saved = tf.env().getBool(KARAT_WEBGPU_FUSED_LAYERS_FLAG);
    tf.env().set(KARAT_WEBGPU_FUSED_LAYERS_FLAG, false);
    let cpu: Awaited<ReturnType<typeof train>>, gpu: Awaited<ReturnType<typeof train>>;
    try {
      cpu = await train('cpu', null);
      gpu = await train('webgpu', cpu.initial);
    } finally {
      tf.env().set(KARAT_WEBGPU_FUSED_LAYERS_FLAG, saved);
    }
    assert.ok(gpu.kernels.has(FourierKArAt) && gpu.kernels.has(FourierKArAtGrad),
        `fused kernels not used on webgpu: ${[...gpu.kernels].filter((k) => /KArAt/.test(k)).join(', ')}`);
    for (let s = 0; s < STEPS; s++) {
      assert.ok(Math.abs(gpu.losses[s] - cpu.losses[s]) < 1e-4 * Math.max(1, Math.abs(cpu.losses[s])),
          `step ${s}: loss webgpu ${gpu.losses[s]} vs cpu ${cpu.losses[s]}`);
    }
    assert.ok(cpu.losses[STEPS - 1] < cpu.losses[0], `loss did not decrease: ${cpu.losses.join(', ')}`);
    for (let i = 0; i < cpu.final.length; i++) {
      const err = relErr(gpu.final[i], cpu.final[i]);
      assert.ok(err < 1e-4, `weight ${i}: relative error ${err.toExponential(2)}`);
    }
  });
});
