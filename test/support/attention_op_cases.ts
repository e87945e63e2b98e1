/**
 * The memory-lean attention-op cases (projectHeads, mergeHeadsProject, softmaxAttention,
 * fourierAttention), written once and run on every backend by describeAttentionOpCases
 * (describeWithBackends, test/support/backend_suites.ts): each op's value and gradients equal
 * autodiff of the stock tfjs composition it replaces on the same backend, and the same op on
 * cpu; softmaxAttention on larger shapes (the fused webgpu kernels, and the composite beyond
 * their limit) against cpu and the stock composition, with the kernels that ran.
 */
import * as assert from 'assert';

import * as tf from '@tensorflow/tfjs-core';

import * as karat from '../../src/index';
import {matMulPerHeadTransposedLeft} from '../../core/head_matmul';
import {describeWithBackends, onCpu, readAndDispose, TestBackend} from './backend_suites';
import {maxRelError, randomArray} from './reference';

export const rnd = (shape: number[], seed: number, scale = 1) =>
  tf.tensor(randomArray(shape.reduce((a, b) => a * b, 1), seed, scale), shape);

/** The stock compositions (what KArAtMultiHeadAttention ran before these ops). */
export const stock = {
  projectHeads(x: tf.Tensor3D, w: tf.Tensor3D, b: tf.Tensor2D | null, scale: number): tf.Tensor4D {
    const [B, N, F] = x.shape, [, h, d] = w.shape;
    let y: tf.Tensor = tf.matMul(tf.reshape(x, [B * N, F]) as tf.Tensor2D, tf.reshape(w, [F, h * d]) as tf.Tensor2D);
    if (b) y = tf.add(y, tf.reshape(b, [h * d]));
    return tf.mul(tf.transpose(tf.reshape(y, [B, N, h, d]), [0, 2, 1, 3]), scale) as tf.Tensor4D;
  },
  mergeHeadsProject(o: tf.Tensor4D, w: tf.Tensor, b: tf.Tensor | null): tf.Tensor {
    const [B, h, T, dv] = o.shape, out = w.shape.slice(2), n = out.reduce((a, c) => a * c, 1);
    let y: tf.Tensor = tf.matMul(tf.reshape(tf.transpose(o, [0, 2, 1, 3]), [B * T, h * dv]) as tf.Tensor2D,
                                 tf.reshape(w, [h * dv, n]) as tf.Tensor2D);
    if (b) y = tf.add(y, tf.reshape(b, [n]));
    return tf.reshape(y, [B, T, ...out]);
  },
  softmaxAttention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D): tf.Tensor4D {
    return tf.matMul(tf.softmax(tf.matMul(q, k, false, true), -1) as tf.Tensor4D, v);
  },
};

/** Forward value and the gradients of sum(y · w) w.r.t. every input. */
export function valueAndGrads(f: (...xs: tf.Tensor[]) => tf.Tensor, xs: tf.Tensor[], wSeed: number): tf.Tensor[] {
  return tf.tidy(() => {
    const y = f(...xs);
    const w = rnd(y.shape, wSeed);
    return [y, ...tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(f(...a), w)))(xs)];
  });
}

export interface AttentionOpCase {
  name: string;
  lean: (...xs: tf.Tensor[]) => tf.Tensor;
  ref: (...xs: tf.Tensor[]) => tf.Tensor;
  inputs: () => tf.Tensor[];
}

export const ATTENTION_OP_CASES: AttentionOpCase[] = [
  {name: 'projectHeads with bias, scale 0.125', inputs: () => [rnd([2, 5, 6], 1), rnd([6, 3, 4], 2), rnd([3, 4], 3)],
   lean: (x, w, b) => karat.projectHeads(x as tf.Tensor3D, w as tf.Tensor3D, b as tf.Tensor2D, 0.125),
   ref: (x, w, b) => stock.projectHeads(x as tf.Tensor3D, w as tf.Tensor3D, b as tf.Tensor2D, 0.125)},
  {name: 'projectHeads without bias', inputs: () => [rnd([1, 7, 5], 4), rnd([5, 2, 3], 5)],
   lean: (x, w) => karat.projectHeads(x as tf.Tensor3D, w as tf.Tensor3D),
   ref: (x, w) => stock.projectHeads(x as tf.Tensor3D, w as tf.Tensor3D, null, 1)},
  {name: 'mergeHeadsProject with bias, output [2, 3]', inputs: () => [rnd([2, 3, 5, 4], 6), rnd([3, 4, 2, 3], 7), rnd([2, 3], 8)],
   lean: (o, w, b) => karat.mergeHeadsProject(o as tf.Tensor4D, w, b),
   ref: (o, w, b) => stock.mergeHeadsProject(o as tf.Tensor4D, w, b)},
  {name: 'mergeHeadsProject without bias', inputs: () => [rnd([1, 2, 6, 3], 9), rnd([2, 3, 5], 10)],
   lean: (o, w) => karat.mergeHeadsProject(o as tf.Tensor4D, w),
   ref: (o, w) => stock.mergeHeadsProject(o as tf.Tensor4D, w, null)},
  {name: 'softmaxAttention T=5, S=7', inputs: () => [rnd([2, 3, 5, 4], 11, 2), rnd([2, 3, 7, 4], 12, 2), rnd([2, 3, 7, 6], 13)],
   lean: (q, k, v) => karat.softmaxAttention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D),
   ref: (q, k, v) => stock.softmaxAttention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D)},
  {name: 'fourierAttention N=9, r=4, G=3', inputs: () => [rnd([2, 2, 9, 4], 14, 1.5), rnd([2, 2, 9, 4], 15, 1.5),
     rnd([2, 2, 9, 5], 16), rnd([2, 2, 4, 9, 3], 17, 0.3), rnd([2, 9, 4], 18, 0.5)],
   lean: (q, k, v, c, w) => karat.fourierAttention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, c as tf.Tensor5D, w as tf.Tensor3D),
   ref: (q, k, v, c, w) => tf.matMul(karat.fourierKArAtHidden(tf.matMul(q as tf.Tensor4D, k as tf.Tensor4D, false, true), c as tf.Tensor5D),
                                     matMulPerHeadTransposedLeft(w as tf.Tensor3D, v as tf.Tensor4D))},
];

/**
 * softmaxAttention shapes [B, h, T, S, d, dv] and whether webgpu runs its fused kernels: S = 197
 * (ViT-Tiny/16 at 224), more keys than threads; S = 70 and d = 33 not multiples of 64; T != S;
 * S = 2100 is beyond the kernel limit (composite path).
 */
export const SOFTMAX_ATTENTION_SHAPES = [[2, 3, 197, 197, 64, 64, true], [1, 2, 9, 70, 33, 5, true],
                                         [1, 1, 3, 2100, 4, 3, false]] as const;

const SOFTMAX_KERNELS = [karat.KArAtSoftmaxAttention, karat.KArAtSoftmaxAttentionProbs, karat.KArAtSoftmaxAttentionGradScores];

/** Whether `env` runs softmaxAttention's fused kernels on a shape whose webgpu flag is `kernel`. */
function softmaxKernelsRun(env: TestBackend, kernel: boolean): boolean {
  return kernel && env.backend === 'webgpu';
}

const attention = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) =>
  karat.softmaxAttention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D);

/** The value and gradients of `f` on the inputs, on the active backend. */
async function lean(f: (...xs: tf.Tensor[]) => tf.Tensor, inputs: () => tf.Tensor[], wSeed: number) {
  const xs = inputs();
  try {
    return await readAndDispose(valueAndGrads(f, xs, wSeed));
  } finally {
    tf.dispose(xs);
  }
}

function expectRel(got: Float32Array[], ref: Float32Array[], tol: number, what: string): void {
  assert.equal(got.length, ref.length, what);
  ref.forEach((r, i) => assert.ok(maxRelError(got[i], r) < tol, `${what}: output ${i}: ${maxRelError(got[i], r)}`));
}

/**
 * The every-backend attention-op suite: each case's value and gradients equal the stock
 * composition (max relative error 1e-5) and, off cpu, the same op on cpu (1e-5);
 * softmaxAttention on SOFTMAX_ATTENTION_SHAPES equals cpu and the stock composition (2e-5),
 * with the fused webgpu kernels running exactly where expected.
 */
export function describeAttentionOpCases(backends: string[]): void {
  describeWithBackends('attention ops: equal to the stock compositions and to cpu', {backends}, (env) => {
    for (const c of ATTENTION_OP_CASES) {
      it(`${c.name}: value and gradients equal autodiff of the stock ops${env.backend === 'cpu' ? '' : ' and cpu'}`, async () => {
        const got = await lean(c.lean, c.inputs, 99);
        expectRel(got, await lean(c.ref, c.inputs, 99), 1e-5, 'vs the stock ops');
        if (env.backend !== 'cpu') expectRel(got, await onCpu(() => lean(c.lean, c.inputs, 99)), 1e-5, 'vs cpu');
      });
    }

    for (const [B, h, T, S, d, dv, kernel] of SOFTMAX_ATTENTION_SHAPES) {
      const runs = softmaxKernelsRun(env, kernel);
      it(`softmaxAttention B${B} h${h} T${T} S${S} d${d} dv${dv}: ${runs ? 'fused kernels' : 'no fused kernel'}, matches cpu and the stock ops`, async () => {
        const inputs = () => [rnd([B, h, T, d], 21, 2), rnd([B, h, S, d], 22, 2), rnd([B, h, S, dv], 23)];
        const got = await lean(attention, inputs, 24);
        if (env.backend !== 'cpu') expectRel(got, await onCpu(() => lean(attention, inputs, 24)), 2e-5, 'vs cpu');
        expectRel(got, await lean(stock.softmaxAttention as typeof attention, inputs, 24), 2e-5, 'vs the stock ops');
        const xs = inputs();
        const info = await tf.profile(() => valueAndGrads(attention, xs, 24));
        const names = info.kernels.map((x) => x.name);
        for (const n of SOFTMAX_KERNELS) {
          assert.equal(names.includes(n), runs, `${n} ${runs ? 'runs' : 'does not run'}: ${[...new Set(names)]}`);
        }
        tf.dispose([...xs, ...(info.result as tf.Tensor[])]);
      });
    }
  });
}
