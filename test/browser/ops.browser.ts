/**
 * Fourier-KArAt op on the GPU backends of a real browser (headless Chromium: WebGL2 via
 * ANGLE+SwiftShader, WebGPU via SwiftShader Vulkan) against the CPU kernel in the same
 * page: forward ĥ and both gradients (tf.grads w.r.t. scores and coeffs).
 *
 * The cases are the shared ones (test/support/op_cases.ts), which the cpu, wasm, Node WebGPU
 * and tensorflow suites run too, on the test backends of test/browser/backends.ts. Whatever
 * path the backend takes (fused kernel, or the composite when none is registered or G is beyond
 * the fused grid) must match the CPU kernel and the float64 reference.
 */
import * as tf from '@tensorflow/tfjs-core';

import {FourierKArAt, FourierKArAtGrad, hasFusedKernel, KARAT_WEBGL_FUSED_FLAG, karatAttention, MAX_FUSED_GRID} from '../../src/index';
import {describeWithBackends, onCpu, withFlags} from '../support/backend_suites';
import {describeOpCases, OpCase, opInputs, runOp} from '../support/op_cases';

import {BROWSER_GPU_BACKENDS} from './backends';
import {expectClose, normalish} from './util';

/**
 * Tolerances (see docs/webgl.md): float32 on the GPU vs the float64-accumulated CPU
 * kernel, as |err| <= atolRel·max|ref| + rtol·|ref|. The composite path (and any backend
 * using the GPU's built-in sin/cos, accurate to ~2^-11 on SwiftShader) needs ~1e-3; the
 * fused WebGL shaders evaluate sin/cos in float32 themselves and stay below ~2e-6.
 */
function tolerance(c: OpCase, precise: boolean): {rtol: number, atolRel: number} {
  if (precise) return {rtol: 1e-5, atolRel: 2e-5};
  return (c.smax ?? 3) > 10 ? {rtol: 2e-3, atolRel: 2e-3} : {rtol: 1e-3, atolRel: 1e-3};
}

/** Whether `backend` runs case `c` with its fused kernels (else the composite path). */
function fusedOn(backend: string, c: OpCase): boolean {
  return hasFusedKernel(FourierKArAt, backend) && c.G <= MAX_FUSED_GRID &&
      !(backend === 'webgl' && !tf.env().getBool(KARAT_WEBGL_FUSED_FLAG));
}

describeWithBackends('the reference of the GPU backends', {backends: ['cpu']}, () => {
  it('registers the CPU kernel', () => {
    if (!hasFusedKernel(FourierKArAt, 'cpu')) throw new Error('CPU kernel not registered');
  });
});

describeOpCases(BROWSER_GPU_BACKENDS, {
  tolerance: (c, env) => tolerance(c, env.backend === 'webgl' && fusedOn(env.backend, c)),
});

describeWithBackends('Fourier-KArAt attention and flags (browser)', {backends: BROWSER_GPU_BACKENDS}, (env) => {
  const backend = env.backend;

  it('karatAttention forward and gradients (scores and dy from matmuls), N7 r5 G3', async function() {
    const c: OpCase = {B: 2, h: 2, N: 7, r: 5, G: 3};
    const dv = 3;
    const d = opInputs(c, 77);
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
    const ref = await onCpu(attention);
    const got = await attention();
    ['scores', 'coeffs', 'proj', 'values'].forEach((name, j) =>
      expectClose(`${backend} d${name}`, got[j], ref[j], 1e-3, 1e-3));
  });

  if (backend === 'webgl') {
    it('registers fused kernels for webgl (WebGL2 with float32 render targets here)', async function() {
      const version = tf.env().getNumber('WEBGL_VERSION');
      const float32 = tf.env().getBool('WEBGL_RENDER_FLOAT32_ENABLED');
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
      const c: OpCase = {B: 2, h: 1, N: 7, r: 3, G: 3};
      const d = opInputs(c, 4242);
      const ref = await onCpu(() => runOp(c, d));
      await withFlags({[KARAT_WEBGL_FUSED_FLAG]: false}, async () => {
        const got = await runOp(c, d);
        expectClose('composite hidden', got.hidden, ref.hidden, 1e-3, 1e-3);
        expectClose('composite dScores', got.dScores, ref.dScores, 1e-3, 1e-3);
        const e = expectClose('composite dCoeffs', got.dCoeffs, ref.dCoeffs, 1e-3, 1e-3);
        // the composite uses the GPU's built-in sin/cos: visibly less precise than the shaders
        console.log(`webgl composite (flag off) dCoeffs max error / max|ref| = ${e.toExponential(2)}`);
      });
    });
  }
});
