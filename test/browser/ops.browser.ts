/**
 * Fourier-KArAt op on the GPU backends of a real browser (headless Chromium: WebGL2 via
 * ANGLE+SwiftShader, WebGPU via SwiftShader Vulkan) against the CPU kernel in the same
 * page: forward ĥ and both gradients (tf.grads w.r.t. scores and coeffs).
 *
 * The grid N ∈ {1, 7, 65, 197}, r ∈ {1, 12}, G ∈ {1, 3, 5}, B·h ≤ 8 is covered by a subset
 * of cases (every value of each axis appears, with odd sizes, r not a multiple of 4, the
 * largest fused grid G = 8 and G = 9, which must fall back to the composite path).
 * Whatever path the backend takes (fused kernel, or the composite when none is
 * registered) must match the CPU kernel.
 */
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-webgl';
import '@tensorflow/tfjs-backend-webgpu';

import * as tf from '@tensorflow/tfjs-core';

import {FourierKArAt, FourierKArAtGrad, fourierKArAtHidden, hasFusedKernel, KARAT_WEBGL_FUSED_FLAG, karatAttention, MAX_FUSED_GRID} from '../../src/index';

import {expectClose, normalish, tryBackend, uniform} from './util';

interface Case {B: number; h: number; N: number; r: number; G: number; smax?: number}

const CASES: Case[] = [
  {B: 1, h: 1, N: 1, r: 1, G: 1},
  {B: 2, h: 3, N: 1, r: 12, G: 5},
  {B: 2, h: 4, N: 7, r: 1, G: 3},
  {B: 1, h: 2, N: 7, r: 12, G: 1},
  {B: 3, h: 1, N: 7, r: 5, G: 8},
  {B: 2, h: 2, N: 7, r: 3, G: 9},
  {B: 2, h: 3, N: 65, r: 12, G: 3},
  {B: 1, h: 1, N: 65, r: 1, G: 5},
  {B: 1, h: 2, N: 197, r: 12, G: 3},
  {B: 2, h: 1, N: 197, r: 1, G: 1},
  {B: 1, h: 1, N: 197, r: 12, G: 5},
  // scores far from 0: GPU sin/cos of large arguments (docs/webgl.md, tolerances)
  {B: 1, h: 2, N: 65, r: 12, G: 3, smax: 40},
];

/**
 * Tolerances (see docs/webgl.md): float32 on the GPU vs the float64-accumulated CPU
 * kernel, as |err| <= atolRel·max|ref| + rtol·|ref|. The composite path (and any backend
 * using the GPU's built-in sin/cos, accurate to ~2^-11 on SwiftShader) needs ~1e-3; the
 * fused WebGL shaders evaluate sin/cos in float32 themselves and stay below ~2e-6.
 */
function tolerance(c: Case, precise: boolean): {rtol: number, atolRel: number} {
  if (precise) return {rtol: 1e-5, atolRel: 2e-5};
  return (c.smax ?? 3) > 10 ? {rtol: 2e-3, atolRel: 2e-3} : {rtol: 1e-3, atolRel: 1e-3};
}

interface Result {hidden: Float32Array; dScores: Float32Array; dCoeffs: Float32Array}

function data(c: Case, seed: number) {
  const smax = c.smax ?? 3;
  return {
    scores: uniform(c.B * c.h * c.N * c.N, -smax, smax, seed),
    coeffs: normalish(c.h * 2 * c.r * c.N * c.G, 1 / Math.sqrt(c.N * c.G), seed + 1),
    weight: normalish(c.B * c.h * c.N * c.r, 1, seed + 2),
  };
}

/** Forward and gradients of sum(ĥ · weight) on the active backend. */
async function run(c: Case, d: ReturnType<typeof data>): Promise<Result> {
  const s = tf.tensor4d(d.scores, [c.B, c.h, c.N, c.N]);
  const k = tf.tensor5d(d.coeffs, [c.h, 2, c.r, c.N, c.G]);
  const w = tf.tensor4d(d.weight, [c.B, c.h, c.N, c.r]);
  try {
    const hidden = fourierKArAtHidden(s, k);
    const [dS, dC] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.mul(fourierKArAtHidden(a as tf.Tensor4D, b as tf.Tensor5D), w)))([s, k]);
    const out = {
      hidden: await hidden.data() as Float32Array,
      dScores: await dS.data() as Float32Array,
      dCoeffs: await dC.data() as Float32Array,
    };
    tf.dispose([hidden, dS, dC]);
    return out;
  } finally {
    tf.dispose([s, k, w]);
  }
}

for (const backend of ['webgl', 'webgpu']) {
  describe(`Fourier-KArAt on ${backend} (browser) matches the CPU kernel`, function() {
    let available = false;

    before(async function() {
      available = await tryBackend(backend);
      await tf.setBackend('cpu');
    });

    beforeEach(function() {
      if (!available) {
        console.warn(`!!! SKIPPED: backend ${backend} did not initialise in this browser`);
        this.skip();
      }
    });

    CASES.forEach((c, idx) => {
      const label = `B${c.B} h${c.h} N${c.N} r${c.r} G${c.G}` + (c.smax ? ` |S|<=${c.smax}` : '');
      it(`forward and both gradients, ${label}`, async function() {
        const d = data(c, 1000 + 17 * idx);
        await tf.setBackend('cpu');
        if (!hasFusedKernel(FourierKArAt, 'cpu')) throw new Error('CPU kernel not registered');
        const ref = await run(c, d);
        await tf.setBackend(backend);
        const fused = hasFusedKernel(FourierKArAt, backend) && c.G <= MAX_FUSED_GRID &&
            !(backend === 'webgl' && !tf.env().getBool(KARAT_WEBGL_FUSED_FLAG));
        const path = fused ? 'fused' : 'composite';
        const startTensors = tf.memory().numTensors;
        const got = await run(c, d);
        if (tf.memory().numTensors !== startTensors) {
          throw new Error(`leaked ${tf.memory().numTensors - startTensors} tensors on ${backend}`);
        }
        const {rtol, atolRel} = tolerance(c, fused && backend === 'webgl');
        const e1 = expectClose(`${backend} hidden ${label}`, got.hidden, ref.hidden, rtol, atolRel);
        const e2 = expectClose(`${backend} dScores ${label}`, got.dScores, ref.dScores, rtol, atolRel);
        const e3 = expectClose(`${backend} dCoeffs ${label}`, got.dCoeffs, ref.dCoeffs, rtol, atolRel);
        console.log(`${backend} ${path} ${label}: max error / max|ref| = ` +
                    `${e1.toExponential(2)} (hidden), ${e2.toExponential(2)} (dScores), ` +
                    `${e3.toExponential(2)} (dCoeffs)` +
                    (hasFusedKernel(FourierKArAtGrad, backend) ? '' : ' [composite backward]'));
        await tf.setBackend('cpu');
      });
    });

    it('karatAttention forward and gradients (scores and dy from matmuls), N7 r5 G3', async function() {
      const c: Case = {B: 2, h: 2, N: 7, r: 5, G: 3};
      const dv = 3;
      const d = data(c, 77);
      const extra = normalish(c.B * c.h * c.N * dv * 3 + c.h * c.N * c.r, 0.5, 78);
      const attention = async () => {
        const k = tf.tensor5d(d.coeffs, [c.h, 2, c.r, c.N, c.G]);
        const qk = tf.tensor4d(d.scores, [c.B, c.h, c.N, c.N]);
        const v = tf.tensor4d(extra.subarray(0, c.B * c.h * c.N * dv), [c.B, c.h, c.N, dv]);
        const proj = tf.tensor3d(extra.subarray(c.B * c.h * c.N * dv, c.B * c.h * c.N * dv + c.h * c.N * c.r),
                                 [c.h, c.N, c.r]);
        const f = (qk0: tf.Tensor, k0: tf.Tensor, p0: tf.Tensor, v0: tf.Tensor) => {
          // scores as a product (packed matmul output on webgl), then the folded attention
          const scores = tf.matMul(qk0 as tf.Tensor4D, tf.eye(c.N) as unknown as tf.Tensor4D);
          const out = karatAttention(scores as tf.Tensor4D, k0 as tf.Tensor5D, p0 as tf.Tensor3D, v0 as tf.Tensor4D);
          return tf.sum(tf.square(out));
        };
        const grads = tf.grads(f)([qk, k, proj, v]);
        const vals = await Promise.all(grads.map((g) => g.data()));
        tf.dispose([...grads, k, qk, v, proj]);
        return vals as Float32Array[];
      };
      await tf.setBackend('cpu');
      const ref = await attention();
      await tf.setBackend(backend);
      const got = await attention();
      ['scores', 'coeffs', 'proj', 'values'].forEach((name, j) =>
        expectClose(`${backend} d${name}`, got[j], ref[j], 1e-3, 1e-3));
      await tf.setBackend('cpu');
    });

    if (backend === 'webgl') {
      it('registers fused kernels for webgl (WebGL2 with float32 render targets here)', async function() {
        await tf.setBackend('webgl');
        const version = tf.env().getNumber('WEBGL_VERSION');
        const float32 = tf.env().getBool('WEBGL_RENDER_FLOAT32_ENABLED');
        await tf.setBackend('cpu');
        if (!hasFusedKernel(FourierKArAt, 'webgl') || !hasFusedKernel(FourierKArAtGrad, 'webgl')) {
          throw new Error('FourierKArAt / FourierKArAtGrad are not registered for webgl');
        }
        if (version !== 2 || !float32) {
          console.warn(`!!! SKIPPED: this browser's WebGL is version ${version}, WEBGL_RENDER_FLOAT32_ENABLED ` +
                       `${float32}: the webgl kernels run the composite path here`);
          this.skip();
        }
      });

      it(`with ${KARAT_WEBGL_FUSED_FLAG}=false the webgl kernels use the composite path and still match`, async function() {
        const c: Case = {B: 2, h: 1, N: 7, r: 3, G: 3};
        const d = data(c, 4242);
        await tf.setBackend('cpu');
        const ref = await run(c, d);
        await tf.setBackend(backend);
        tf.env().set(KARAT_WEBGL_FUSED_FLAG, false);
        try {
          const got = await run(c, d);
          expectClose('composite hidden', got.hidden, ref.hidden, 1e-3, 1e-3);
          expectClose('composite dScores', got.dScores, ref.dScores, 1e-3, 1e-3);
          const e = expectClose('composite dCoeffs', got.dCoeffs, ref.dCoeffs, 1e-3, 1e-3);
          // the composite uses the GPU's built-in sin/cos: visibly less precise than the shaders
          console.log(`webgl composite (flag off) dCoeffs max error / max|ref| = ${e.toExponential(2)}`);
        } finally {
          tf.env().set(KARAT_WEBGL_FUSED_FLAG, true);
          await tf.setBackend('cpu');
        }
      });
    }
  });
}
