/**
 * The Fourier-KArAt attention cases (fourierAttention: the flash-style kernels on webgpu,
 * kernels-webgpu/fourier_attention*.ts; the materialising path elsewhere and beyond the
 * limits), written once and run on every backend by describeFourierAttentionCases
 * (describeWithBackends, test/support/backend_suites.ts), against two references:
 *   - the materialised fused op on the same backend: ĥ(q kᵀ) through the FourierKArAt /
 *     FourierKArAtGrad kernels (the N x N scores materialised), times projᵀ v;
 *   - the composite on cpu (compositeFourierKArAtHidden: plain tfjs ops, autodiff).
 * Forward and all five gradients (dq, dk, dv, dCoeffs, dProj) through tf.grads, on a shape grid
 * with N = 1, 7, 65 and 197 (partial tiles, 1 to 4 tiles of 64 keys; the materialised reference
 * up to N = 65, the composite at every N), r from 4 to 64, G up to 8, head dims up to 100 (two
 * accumulators per thread), and one case beyond the head-dim limit (the materialising path).
 *
 * Tolerance: max |a − b| ≤ TOL · max(1, max |b|) per output. Both sides are float32; they differ
 * in summation order (scores: tfjs matmul vs the kernel's dot product; sums over keys: tiles)
 * and in sin/cos (karatCosSin vs the cpu's Math.cos). Measured on SwiftShader: at most 2.5e-6 over
 * all cases and outputs, so TOL = 2e-5 leaves an 8x margin while an indexing mistake gives O(1).
 */
import {strict as assert} from 'assert';

import * as tf from '@tensorflow/tfjs-core';

import {compositeFourierKArAtHidden, fourierAttention, fourierAttentionPath, fourierKArAtHidden, FOURIER_ATTENTION_LIMITS, FourierKArAt, KArAtFourierAttention, KArAtFourierAttentionGradCoeffs, KArAtFourierAttentionGradK, KArAtFourierAttentionGradProj, KArAtFourierAttentionGradQ, KArAtFourierAttentionHidden} from '../../src/index';
import {describeWithBackends, onCpu, valuesOf} from './backend_suites';
import {mulberry32} from '../../src/data/rng';
import {maxErrorOverUnit as relErr} from './reference';

export const TOL = 2e-5;
export const FLASH_KERNELS = [KArAtFourierAttention, KArAtFourierAttentionHidden, KArAtFourierAttentionGradQ,
  KArAtFourierAttentionGradK, KArAtFourierAttentionGradCoeffs, KArAtFourierAttentionGradProj];

/** Deterministic pseudo-random floats (mulberry32 + Box-Muller). */
export function randn(n: number, seed: number, scale = 1): Float32Array {
  const u = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * Math.sqrt(-2 * Math.log(u() + 1e-12)) * Math.cos(2 * Math.PI * u());
  return out;
}

export interface Case {B: number, h: number, N: number, d: number, dv: number, r: number, G: number}

export const label = (c: Case) => `B=${c.B} h=${c.h} N=${c.N} d=${c.d} dv=${c.dv} r=${c.r} G=${c.G}`;

export interface Data {q: Float32Array, k: Float32Array, v: Float32Array, coeffs: Float32Array, proj: Float32Array, w: Float32Array}

export function makeData(c: Case, seed: number): Data {
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

export type Impl = 'op' | 'materialised' | 'composite';

/** [out, dq, dk, dv, dCoeffs, dProj] of sum(w ∘ attention) by `impl` on the active backend. */
export function run(c: Case, d: Data, impl: Impl): Promise<Float32Array[]> {
  return valuesOf(() => {
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
}

export const NAMES = ['out', 'dq', 'dk', 'dv', 'dCoeffs', 'dProj'];

export function assertClose(got: Float32Array[], ref: Float32Array[], what: string, worst: {err: number}) {
  for (let i = 0; i < NAMES.length; i++) {
    const err = relErr(got[i], ref[i]);
    worst.err = Math.max(worst.err, err);
    assert.ok(err < TOL, `${NAMES[i]} vs ${what}: relative error ${err.toExponential(2)} >= ${TOL}`);
  }
}

// Flash path: N = 1 (r = 12, split 5), 7 (r = 4, split 16, G = 8: the grid limit), 65 (two key
// tiles, r = 20: split 3), 197 (four tiles, the ViT-Tiny 224/16 size), r = 64 (split 1: the rank
// limit), d = 100 (two accumulators per thread), dv ≠ d.
export const CASES: Case[] = [
  {B: 2, h: 2, N: 7, d: 8, dv: 6, r: 4, G: 8},
  {B: 1, h: 3, N: 1, d: 4, dv: 4, r: 12, G: 1},
  {B: 2, h: 1, N: 65, d: 16, dv: 8, r: 20, G: 3},
  {B: 1, h: 2, N: 9, d: 100, dv: 3, r: 64, G: 2},
  {B: 1, h: 1, N: 197, d: 64, dv: 64, r: 12, G: 3},
];
// The materialising kernels are tested at N = 197 by the op cases (test/support/op_cases.ts); here
// the N = 197 case is compared with the cpu composite only (SwiftShader time).
export const MATERIALISED_MAX_N = 65;
// Beyond FOURIER_ATTENTION_LIMITS.headDim: the materialising path runs.
export const FALLBACK: Case = {B: 1, h: 1, N: 5, d: FOURIER_ATTENTION_LIMITS.headDim + 4, dv: 4, r: 3, G: 2};

const compositeCache = new Map<string, Float32Array[]>();

/** The cpu composite's outputs of case `c` (computed once per process). */
async function composite(c: Case, seed: number): Promise<Float32Array[]> {
  const key = `${label(c)} ${seed}`;
  if (!compositeCache.has(key)) compositeCache.set(key, await onCpu(() => run(c, makeData(c, seed), 'composite')));
  return compositeCache.get(key)!;
}

/**
 * The every-backend suite: each case's forward and five gradients through fourierAttention
 * (the flash kernels on webgpu, the materialising path elsewhere) against the materialised op
 * on the same backend and the cpu composite; the case beyond the limits takes the
 * materialising path everywhere.
 */
export function describeFourierAttentionCases(backends: string[]): void {
  describeWithBackends('Fourier-KArAt attention vs the materialised fused op and the cpu composite', {backends}, (env) => {
    const worst = {err: 0};
    const flash = env.backend === 'webgpu';
    after(() => {
      if (worst.err > 0) console.log(`      ${env.id}: largest relative error seen: ${worst.err.toExponential(2)} (TOL ${TOL})`);
    });

    for (const [i, c] of CASES.entries()) {
      it(`${label(c)}: forward and dq, dk, dv, dCoeffs, dProj match both references (${flash ? 'flash' : 'materialising'} path)`, async () => {
        assert.equal(tf.getBackend(), env.backend);
        assert.equal(fourierAttentionPath(c), flash ? 'flash' : 'materialise');
        const data = makeData(c, 40 + 10 * i);
        const got = await run(c, data, 'op');
        if (c.N <= MATERIALISED_MAX_N) assertClose(got, await run(c, data, 'materialised'), `materialised FourierKArAt on ${env.id}`, worst);
        assertClose(got, await composite(c, 40 + 10 * i), 'composite on cpu', worst);
      });
    }

    it(`${label(FALLBACK)} (head dim beyond the limit): the materialising path runs and matches`, async () => {
      assert.equal(fourierAttentionPath(FALLBACK), 'materialise');
      const seed = 40 + 10 * CASES.length;
      const ref = await composite(FALLBACK, seed);
      const data = makeData(FALLBACK, seed);
      const info = await tf.profile(async () => {
        const got = await run(FALLBACK, data, 'op');
        assertClose(got, ref, 'composite on cpu', worst);
      });
      assert.ok(info.kernelNames.includes(FourierKArAt), `FourierKArAt not used: ${info.kernelNames.join(', ')}`);
      assert.ok(!info.kernelNames.some((k) => FLASH_KERNELS.includes(k)), 'a flash kernel ran beyond the limits');
    });
  });
}
