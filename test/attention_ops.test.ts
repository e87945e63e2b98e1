/**
 * Memory-lean attention ops: projectHeads, mergeHeadsProject, softmaxAttention,
 * fourierAttention.
 * cpu: values and gradients equal autodiff of the stock tfjs compositions they replace (with and
 * without bias, multi-axis output), less memory kept for backward, argument errors.
 * webgpu (Dawn; skipped when unavailable): the same ops match cpu, gradients included.
 */
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

import * as karat from '../src/index';
import {matMulPerHeadTransposedLeft} from '../core/head_matmul';
import {maxRelError, randomArray} from './support/reference';
import {releaseWebGPUAfterAllTests, useWebGPUBackend} from './support/webgpu_node';

releaseWebGPUAfterAllTests();

const rnd = (shape: number[], seed: number, scale = 1) =>
  tf.tensor(randomArray(shape.reduce((a, b) => a * b, 1), seed, scale), shape);

/** The stock compositions (what KArAtMultiHeadAttention ran before these ops). */
const stock = {
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
function valueAndGrads(f: (...xs: tf.Tensor[]) => tf.Tensor, xs: tf.Tensor[], wSeed: number): tf.Tensor[] {
  return tf.tidy(() => {
    const y = f(...xs);
    const w = rnd(y.shape, wSeed);
    return [y, ...tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(f(...a), w)))(xs)];
  });
}

interface Case {name: string, lean: (...xs: tf.Tensor[]) => tf.Tensor, ref: (...xs: tf.Tensor[]) => tf.Tensor, inputs: () => tf.Tensor[]}

const cases: Case[] = [
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

async function all(ts: tf.Tensor[]) {
  const out = await Promise.all(ts.map((t) => t.data() as Promise<Float32Array>));
  tf.dispose(ts);
  return out;
}

describe('attention ops (cpu): equal to the stock compositions, keep less', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  for (const c of cases) {
    it(`${c.name}: value and gradients equal autodiff of the stock ops`, async () => {
      const xs = c.inputs();
      const got = await all(valueAndGrads(c.lean, xs, 99));
      const ref = await all(valueAndGrads(c.ref, xs, 99));
      ref.forEach((r, i) => assert.ok(maxRelError(got[i], r) < 1e-5, `output ${i}: ${maxRelError(got[i], r)}`));
      tf.dispose(xs);
    });
  }

  it('a self-attention layer keeps less memory for its backward pass than the stock ops', async () => {
    // Bytes still allocated when the forward pass under a gradient tape ends = what is kept.
    const [x, wq, wk, wv, bq, bk, bv, wo, bo] = [rnd([2, 17, 16], 1), rnd([16, 2, 8], 2), rnd([16, 2, 8], 3),
      rnd([16, 2, 8], 4), rnd([2, 8], 5), rnd([2, 8], 6), rnd([2, 8], 7), rnd([2, 8, 16], 8), rnd([16], 9)];
    const params = [x, wq, wk, wv, bq, bk, bv, wo, bo];
    const engine = tf.engine() as unknown as {state: {activeTape: Array<{saved?: tf.Tensor[]}> | null}};
    /** Bytes of the distinct non-parameter tensors the tape saved for the backward pass. */
    const kept = (ops: typeof stock) => {
      let bytes = 0;
      const seen = new Set<unknown>(params.map((p) => p.dataId));
      const {value, grads} = tf.engine().gradients(() => {
        const s = 1 / Math.sqrt(8);
        const o = ops.softmaxAttention(ops.projectHeads(x as tf.Tensor3D, wq as tf.Tensor3D, bq as tf.Tensor2D, s),
                                       ops.projectHeads(x as tf.Tensor3D, wk as tf.Tensor3D, bk as tf.Tensor2D, 1),
                                       ops.projectHeads(x as tf.Tensor3D, wv as tf.Tensor3D, bv as tf.Tensor2D, 1));
        for (const node of engine.state.activeTape ?? []) {
          for (const t of node.saved ?? []) {
            if (!seen.has(t.dataId)) {
              seen.add(t.dataId);
              bytes += t.size * 4;
            }
          }
        }
        return tf.sum(ops.mergeHeadsProject(o, wo, bo));
      }, [x]);
      tf.dispose([value, ...grads]);
      return bytes;
    };
    const lean = kept(karat as unknown as typeof stock), ref = kept(stock);
    // lean keeps q, k, v (before the output projection runs, so not yet the merged heads): 3 x 2·17·16 floats.
    assert.equal(lean, 3 * 2 * 17 * 16 * 4);
    assert.ok(ref > 2 * lean, `stock keeps ${ref} bytes, lean ${lean}`);
    tf.dispose([x, wq, wk, wv, bq, bk, bv, wo, bo]);
  });

  it('reject bad arguments by name', () => {
    const x = tf.zeros([1, 2, 3]);
    assert.throws(() => karat.projectHeads(x as tf.Tensor3D, tf.zeros([4, 1, 2]) as tf.Tensor3D), /argument 'kernel'/);
    assert.throws(() => karat.projectHeads(x as tf.Tensor3D, tf.zeros([3, 1, 2]) as tf.Tensor3D, tf.zeros([2, 1]) as tf.Tensor2D), /argument 'bias'/);
    assert.throws(() => karat.projectHeads(x as tf.Tensor3D, tf.zeros([3, 1, 2]) as tf.Tensor3D, null, NaN), /argument 'scale'/);
    assert.throws(() => karat.mergeHeadsProject(tf.zeros([1, 2, 3, 4]) as tf.Tensor4D, tf.zeros([2, 5, 6])), /argument 'kernel'/);
    assert.throws(() => karat.mergeHeadsProject(tf.zeros([1, 2, 3, 4]) as tf.Tensor4D, tf.zeros([2, 4, 6]), tf.zeros([5])), /argument 'bias'/);
    assert.throws(() => karat.softmaxAttention(tf.zeros([1, 2, 3, 4]) as tf.Tensor4D, tf.zeros([1, 2, 5, 3]) as tf.Tensor4D,
                                               tf.zeros([1, 2, 5, 4]) as tf.Tensor4D), /argument 'k'/);
    assert.throws(() => karat.softmaxAttention(tf.zeros([1, 2, 3, 4]) as tf.Tensor4D, tf.zeros([1, 2, 5, 4]) as tf.Tensor4D,
                                               tf.zeros([1, 2, 6, 4]) as tf.Tensor4D), /argument 'v'/);
  });
});

describe('attention ops (webgpu, Dawn) match cpu', function() {
  this.timeout(300000);
  before(async function() {
    await useWebGPUBackend(this);
  });
  after(async () => {
    await tf.setBackend('cpu');
  });

  for (const c of cases) {
    it(`${c.name}: value and gradients match cpu`, async () => {
      await tf.setBackend('cpu');
      let xs = c.inputs();
      const ref = await all(valueAndGrads(c.lean, xs, 77));
      tf.dispose(xs);
      await tf.setBackend('webgpu');
      xs = c.inputs();
      const got = await all(valueAndGrads(c.lean, xs, 77));
      tf.dispose(xs);
      ref.forEach((r, i) => assert.ok(maxRelError(got[i], r) < 1e-5, `output ${i}: ${maxRelError(got[i], r)}`));
    });
  }

  const attention = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) =>
    karat.softmaxAttention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D);
  // S = 197 (ViT-Tiny/16 at 224), more keys than threads; S = 70 and d = 33 not multiples of 64;
  // T != S; S = 2100 is beyond the kernel limit (composite path).
  for (const [B, h, T, S, d, dv, kernel] of [[2, 3, 197, 197, 64, 64, true], [1, 2, 9, 70, 33, 5, true],
                                             [1, 1, 3, 2100, 4, 3, false]] as const) {
    it(`softmaxAttention B${B} h${h} T${T} S${S} d${d} dv${dv}: ${kernel ? 'fused kernels' : 'composite beyond the kernel limit'}, matches cpu`, async () => {
      const inputs = () => [rnd([B, h, T, d], 21, 2), rnd([B, h, S, d], 22, 2), rnd([B, h, S, dv], 23)];
      await tf.setBackend('cpu');
      let xs = inputs();
      const ref = await all(valueAndGrads(attention, xs, 24));
      tf.dispose(xs);
      await tf.setBackend('webgpu');
      xs = inputs();
      const got = await all(valueAndGrads(attention, xs, 24));
      ref.forEach((r, i) => assert.ok(maxRelError(got[i], r) < 2e-5, `output ${i}: ${maxRelError(got[i], r)}`));
      const info = await tf.profile(() => valueAndGrads(attention, xs, 24));
      const names = info.kernels.map((x) => x.name);
      for (const n of [karat.KArAtSoftmaxAttention, karat.KArAtSoftmaxAttentionProbs, karat.KArAtSoftmaxAttentionGradScores]) {
        assert.equal(names.includes(n), kernel, `${n} ${kernel ? 'runs' : 'does not run'}: ${[...new Set(names)]}`);
      }
      tf.dispose([...xs, ...(info.result as tf.Tensor[])]);
    });
  }

  it('the kernels follow their contract (probs, gradient scores) against stock ops', async () => {
    await tf.setBackend('webgpu');
    const [q, k, v, dy] = [rnd([2, 2, 6, 8], 31, 2), rnd([2, 2, 11, 8], 32, 2), rnd([2, 2, 11, 5], 33), rnd([2, 2, 6, 5], 34)];
    const p = tf.engine().runKernel(karat.KArAtSoftmaxAttentionProbs, {q, k}) as tf.Tensor;
    const ds = tf.engine().runKernel(karat.KArAtSoftmaxAttentionGradScores, {q, k, v, dy}) as tf.Tensor;
    const pRef = tf.softmax(tf.matMul(q, k, false, true));
    const dp = tf.matMul(dy, v, false, true);
    const dsRef = tf.mul(pRef, tf.sub(dp, tf.sum(tf.mul(dp, pRef), -1, true)));
    const [a, b, c, e] = await all([p, pRef, ds, dsRef]);
    assert.ok(maxRelError(a, b) < 1e-5, `probs: ${maxRelError(a, b)}`);
    assert.ok(maxRelError(c, e) < 1e-5, `grad scores: ${maxRelError(c, e)}`);
    tf.dispose([q, k, v, dy, dp]);
  });
});
