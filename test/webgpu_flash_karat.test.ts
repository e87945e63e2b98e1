/**
 * Flash-style Fourier-KArAt attention on webgpu (kernels-webgpu/fourier_attention*.ts, used by
 * fourierAttention in core/attention.ts) against two references:
 *   - today's fused op on webgpu: ĥ(q kᵀ) through the FourierKArAt / FourierKArAtGrad kernels
 *     (the N x N scores materialised), times projᵀ v;
 *   - the composite on cpu (compositeFourierKArAtHidden: plain tfjs ops, autodiff).
 * Forward and all five gradients (dq, dk, dv, dCoeffs, dProj) through tf.grads, on a shape grid
 * with N = 1, 7, 65 and 197 (partial tiles, 1 to 4 tiles of 64 keys; the materialised reference
 * up to N = 65, the composite at every N), r from 4 to 64, G up to 8,
 * head dims up to 100 (two accumulators per thread). Also: the explicit limits (beyond them the
 * materialising path runs, and is tested), no kernel output of N x N in either pass, bitwise
 * determinism, no leaked tensors or GPU buffers, and training steps of a tiny G3B ViT on webgpu
 * following cpu.
 *
 * Tolerance: max |a − b| ≤ TOL · max(1, max |b|) per output. Both sides are float32; they differ
 * in summation order (scores: tfjs matmul vs the kernel's dot product; sums over keys: tiles)
 * and in sin/cos (karatCosSin vs the cpu's Math.cos). Measured on SwiftShader: at most 2.5e-6 over
 * all cases and outputs, so TOL = 2e-5 leaves an 8x margin while an indexing mistake gives O(1).
 */
import * as assert from 'node:assert/strict';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

import '../src/index';
import {compositeFourierKArAtHidden, fourierAttention, fourierAttentionPath, fourierKArAtHidden, FOURIER_ATTENTION_LIMITS, FourierKArAt, KARAT_FUSED_FLAG, KArAtFourierAttention, KArAtFourierAttentionGradCoeffs, KArAtFourierAttentionGradK, KArAtFourierAttentionGradProj, KArAtFourierAttentionGradQ, KArAtFourierAttentionHidden} from '../src/index';
import {fourierAttentionPlan} from '../kernels-webgpu/plan';
import {mulberry32} from '../src/data/rng';
import {releaseWebGPUAfterAllTests, setupWebGPUNode, useWebGPUBackend} from './support/webgpu_node';
import {maxErrorOverUnit as relErr} from './support/reference';
import {expectFollowsCpu, trainTinyViT} from './support/vit_steps';

const TOL = 2e-5;
const FLASH_KERNELS = [KArAtFourierAttention, KArAtFourierAttentionHidden, KArAtFourierAttentionGradQ,
  KArAtFourierAttentionGradK, KArAtFourierAttentionGradCoeffs, KArAtFourierAttentionGradProj];

releaseWebGPUAfterAllTests();

/** Deterministic pseudo-random floats (mulberry32 + Box-Muller). */
function randn(n: number, seed: number, scale = 1): Float32Array {
  const u = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * Math.sqrt(-2 * Math.log(u() + 1e-12)) * Math.cos(2 * Math.PI * u());
  return out;
}

interface Case {B: number, h: number, N: number, d: number, dv: number, r: number, G: number}

const label = (c: Case) => `B=${c.B} h=${c.h} N=${c.N} d=${c.d} dv=${c.dv} r=${c.r} G=${c.G}`;

interface Data {q: Float32Array, k: Float32Array, v: Float32Array, coeffs: Float32Array, proj: Float32Array, w: Float32Array}

function makeData(c: Case, seed: number): Data {
  // scores q·k of O(1): q, k ~ N(0, 1/√d) each
  const qk = 1 / Math.pow(c.d, 0.25);
  return {
    q: randn(c.B * c.h * c.N * c.d, seed, qk),
    k: randn(c.B * c.h * c.N * c.d, seed + 1, qk),
    v: randn(c.B * c.h * c.N * c.dv, seed + 2),
    coeffs: randn(c.h * 2 * c.r * c.N * c.G, seed + 3, 1 / Math.sqrt(c.N * c.G)),
    proj: randn(c.h * c.N * c.r, seed + 4, 1 / Math.sqrt(c.r)),
    w: randn(c.B * c.h * c.N * c.dv, seed + 5),
  };
}

type Impl = 'op' | 'materialised' | 'composite';

/** [out, dq, dk, dv, dCoeffs, dProj] of sum(w ∘ attention) by `impl` on the active backend. */
async function run(c: Case, d: Data, impl: Impl): Promise<Float32Array[]> {
  const outs = tf.tidy(() => {
    const q = tf.tensor4d(d.q, [c.B, c.h, c.N, c.d]);
    const k = tf.tensor4d(d.k, [c.B, c.h, c.N, c.d]);
    const v = tf.tensor4d(d.v, [c.B, c.h, c.N, c.dv]);
    const coeffs = tf.tensor5d(d.coeffs, [c.h, 2, c.r, c.N, c.G]);
    const proj = tf.tensor3d(d.proj, [c.h, c.N, c.r]);
    const w = tf.tensor4d(d.w, [c.B, c.h, c.N, c.dv]);
    const attention = (qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor, cc: tf.Tensor, pp: tf.Tensor): tf.Tensor => {
      if (impl === 'op') return fourierAttention(qq as tf.Tensor4D, kk as tf.Tensor4D, vv as tf.Tensor4D, cc as tf.Tensor5D, pp as tf.Tensor3D);
      const s = tf.matMul(qq as tf.Tensor4D, kk as tf.Tensor4D, false, true) as tf.Tensor4D;
      const hid = impl === 'materialised' ? fourierKArAtHidden(s, cc as tf.Tensor5D) : compositeFourierKArAtHidden(s, cc as tf.Tensor5D);
      const u = tf.matMul(tf.tile(tf.reshape(pp, [1, c.h, c.N, c.r]), [c.B, 1, 1, 1]) as tf.Tensor4D, vv as tf.Tensor4D, true, false);
      return tf.matMul(hid, u);
    };
    const f = (...xs: tf.Tensor[]) => tf.sum(tf.mul(attention(xs[0], xs[1], xs[2], xs[3], xs[4]), w));
    const out = attention(q, k, v, coeffs, proj);
    return [out, ...tf.grads(f)([q, k, v, coeffs, proj])];
  });
  const values = await Promise.all(outs.map((t) => t.data() as Promise<Float32Array>));
  tf.dispose(outs);
  return values;
}

const NAMES = ['out', 'dq', 'dk', 'dv', 'dCoeffs', 'dProj'];

function assertClose(got: Float32Array[], ref: Float32Array[], what: string, worst: {err: number}) {
  for (let i = 0; i < NAMES.length; i++) {
    const err = relErr(got[i], ref[i]);
    worst.err = Math.max(worst.err, err);
    assert.ok(err < TOL, `${NAMES[i]} vs ${what}: relative error ${err.toExponential(2)} >= ${TOL}`);
  }
}

// Flash path: N = 1 (r = 12, split 5), 7 (r = 4, split 16, G = 8: the grid limit), 65 (two key
// tiles, r = 20: split 3), 197 (four tiles, the ViT-Tiny 224/16 size), r = 64 (split 1: the rank
// limit), d = 100 (two accumulators per thread), dv ≠ d.
const CASES: Case[] = [
  {B: 2, h: 2, N: 7, d: 8, dv: 6, r: 4, G: 8},
  {B: 1, h: 3, N: 1, d: 4, dv: 4, r: 12, G: 1},
  {B: 2, h: 1, N: 65, d: 16, dv: 8, r: 20, G: 3},
  {B: 1, h: 2, N: 9, d: 100, dv: 3, r: 64, G: 2},
  {B: 1, h: 1, N: 197, d: 64, dv: 64, r: 12, G: 3},
];
// The materialising kernels are tested at N = 197 by webgpu_kernels.test.ts; here the N = 197
// case is compared with the cpu composite only (SwiftShader time).
const MATERIALISED_MAX_N = 65;
// Beyond FOURIER_ATTENTION_LIMITS.headDim: the materialising path runs.
const FALLBACK: Case = {B: 1, h: 1, N: 5, d: FOURIER_ATTENTION_LIMITS.headDim + 4, dv: 4, r: 3, G: 2};

describe('flash Fourier-KArAt attention: plan, limits, registration (no GPU)', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('registers the six kernels for webgpu only', () => {
    for (const k of FLASH_KERNELS) {
      assert.ok(tf.getKernel(k, 'webgpu') != null, `${k} not registered for webgpu`);
      assert.equal(tf.getKernel(k, 'cpu'), undefined, `${k} unexpectedly registered for cpu`);
    }
  });

  it('every plan within the limits fits 16 KiB of workgroup memory and covers r, G and the head dim', () => {
    const L = FOURIER_ATTENTION_LIMITS;
    for (const r of [1, 2, 12, 21, 32, 63, L.rank]) {
      for (const G of [1, 3, 5, L.grid]) {
        for (const headDim of [1, 64, 65, 200, L.headDim]) {
          const p = fourierAttentionPlan({rank: r, grid: G, headDim});
          const where = `r=${r} G=${G} d=${headDim}`;
          for (const [prog, floats] of Object.entries(p.floats)) assert.ok(floats <= 4096, `${prog} ${where}: ${floats} floats`);
          assert.ok(p.split * r <= p.wg && p.split >= 1, `split ${where}`);
          assert.ok(p.dAcc * p.wg >= headDim && p.dAcc <= 4, `dAcc ${where}`);
          assert.ok(p.coeffAcc * p.wg >= 2 * r * G && (p.coeffAcc - 1) * p.wg < 2 * r * G, `coeffAcc ${where}`);
        }
      }
    }
  });

  it('takes the flash path for webgpu within the limits, the materialising path beyond each limit and on cpu', () => {
    const ok = {B: 2, h: 3, N: 65, d: 64, r: 12, G: 3};
    assert.equal(fourierAttentionPath(ok, 'webgpu'), 'flash');
    assert.equal(fourierAttentionPath(ok, 'cpu'), 'materialise', 'cpu has no flash kernels');
    const L = FOURIER_ATTENTION_LIMITS;
    const edge = {B: 1, h: L.batchHeads, N: L.tokens, d: L.headDim, r: L.rank, G: L.grid};
    assert.equal(fourierAttentionPath(edge, 'webgpu'), 'flash', 'at every limit');
    for (const over of [{r: L.rank + 1}, {G: L.grid + 1}, {d: L.headDim + 1}, {N: L.tokens + 1}, {B: 2}]) {
      assert.equal(fourierAttentionPath({...edge, ...over}, 'webgpu'), 'materialise', JSON.stringify(over));
    }
    const saved = tf.env().getBool(KARAT_FUSED_FLAG);
    tf.env().set(KARAT_FUSED_FLAG, false);
    try {
      assert.equal(fourierAttentionPath(ok, 'webgpu'), 'materialise', 'KARAT_FUSED off');
    } finally {
      tf.env().set(KARAT_FUSED_FLAG, saved);
    }
  });
});

describe('flash Fourier-KArAt attention vs the materialised fused op and the cpu composite (Dawn)', function() {
  const composite = new Map<string, Float32Array[]>();
  const worst = {err: 0};

  before(async function() {
    const status = await setupWebGPUNode();
    if (!status.available) {
      console.log(`      [skip] WebGPU unavailable: ${status.reason}`);
      this.skip();
    }
    await tf.setBackend('cpu');
    for (const [i, c] of [...CASES, FALLBACK].entries()) composite.set(label(c), await run(c, makeData(c, 40 + 10 * i), 'composite'));
    await useWebGPUBackend(this);
  });

  after(() => {
    if (worst.err > 0) console.log(`      largest relative error seen: ${worst.err.toExponential(2)} (TOL ${TOL})`);
  });

  for (const [i, c] of CASES.entries()) {
    it(`${label(c)}: forward and dq, dk, dv, dCoeffs, dProj match both references`, async () => {
      assert.equal(tf.getBackend(), 'webgpu');
      assert.equal(fourierAttentionPath(c), 'flash');
      const data = makeData(c, 40 + 10 * i);
      const got = await run(c, data, 'op');
      if (c.N <= MATERIALISED_MAX_N) assertClose(got, await run(c, data, 'materialised'), 'materialised FourierKArAt on webgpu', worst);
      assertClose(got, composite.get(label(c))!, 'composite on cpu', worst);
    });
  }

  it(`${label(FALLBACK)} (head dim beyond the limit): the materialising path runs and matches`, async () => {
    assert.equal(fourierAttentionPath(FALLBACK), 'materialise');
    const data = makeData(FALLBACK, 40 + 10 * CASES.length);
    const info = await tf.profile(async () => {
      const got = await run(FALLBACK, data, 'op');
      assertClose(got, composite.get(label(FALLBACK))!, 'composite on cpu', worst);
    });
    assert.ok(info.kernelNames.includes(FourierKArAt), `FourierKArAt not used: ${info.kernelNames.join(', ')}`);
    assert.ok(!info.kernelNames.some((k) => FLASH_KERNELS.includes(k)), 'a flash kernel ran beyond the limits');
  });
});

describe('flash Fourier-KArAt attention: no N x N tensor, determinism, no leaks (Dawn)', function() {
  const c: Case = {B: 2, h: 2, N: 13, d: 8, dv: 8, r: 5, G: 3};

  before(async function() {
    await useWebGPUBackend(this);
  });

  it('forward and backward run only the flash kernels and never create an N x N (or larger per-head) tensor', async () => {
    const data = makeData(c, 3);
    const info = await tf.profile(async () => {
      await run(c, data, 'op');
    });
    for (const k of FLASH_KERNELS) assert.ok(info.kernelNames.includes(k), `${k} did not run`);
    assert.ok(!info.kernelNames.includes(FourierKArAt), 'the materialising FourierKArAt ran');
    // Every tensor is O(B·h·N·(r + d)) or parameter-sized (dCoeffs [h,2,r,N,G]); N x N per head
    // would be B·h·N² elements with two axes of size N.
    const coeffsShape = [c.h, 2, c.r, c.N, c.G];
    let checked = 0;
    for (const k of info.kernels) {
      for (const shape of k.outputShapes) {
        checked++;
        if (shape.join() === coeffsShape.join()) continue;
        const size = shape.reduce((a, b) => a * b, 1);
        assert.ok(size < c.B * c.h * c.N * c.N, `${k.name} produced [${shape}]`);
        assert.ok(shape.filter((n) => n === c.N).length < 2, `${k.name} produced [${shape}]`);
      }
    }
    assert.ok(checked > 10, `only ${checked} kernel outputs seen`);
  });

  it('is deterministic: two runs give the same bits', async () => {
    const data = makeData(c, 4);
    const a = await run(c, data, 'op');
    const b = await run(c, data, 'op');
    for (let i = 0; i < a.length; i++) assert.deepEqual(b[i], a[i], `${NAMES[i]} differs between runs`);
  });

  it('leaks no tensors and no backend buffers', async () => {
    const data = makeData(c, 5);
    await run(c, data, 'op');  // compile pipelines first
    const tensors = tf.memory().numTensors;
    const dataIds = tf.backend().numDataIds();
    for (let i = 0; i < 3; i++) await run(c, data, 'op');
    assert.equal(tf.memory().numTensors, tensors, 'engine tensors leaked');
    assert.equal(tf.backend().numDataIds(), dataIds, 'backend buffers leaked');
  });
});

describe('flash Fourier-KArAt attention: ViT training steps on webgpu follow cpu (Dawn)', function() {
  const STEPS = 3;
  const imgs = randn(4 * 8 * 8 * 3, 31);
  const labels = [1, 0, 2, 1];

  const train = (backend: string, init: Float32Array[] | null) =>
      trainTinyViT(backend, init, {imgs, labels, steps: STEPS, lr: 0.05});

  before(async function() {
    await useWebGPUBackend(this);
  });

  it(`${STEPS} SGD steps of a G3B ViT give the same losses and weights as cpu, through the flash kernels`, async () => {
    const cpu = await train('cpu', null);
    const gpu = await train('webgpu', cpu.initial);
    for (const k of FLASH_KERNELS) assert.ok(gpu.kernels.has(k), `${k} not used on webgpu`);
    assert.ok(!gpu.kernels.has(FourierKArAt), 'the materialising FourierKArAt ran on webgpu');
    expectFollowsCpu('webgpu', gpu, cpu);
  });
});
