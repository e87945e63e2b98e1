/**
 * Memory-lean attention ops: projectHeads, mergeHeadsProject, softmaxAttention,
 * fourierAttention.
 * Every backend (cpu, wasm, webgpu on Dawn; each skipped where unavailable): the shared
 * ATTENTION_OP_CASES (test/support/attention_op_cases.ts) equal autodiff of the stock tfjs
 * compositions they replace (with and without bias, multi-axis output) and cpu, gradients
 * included; softmaxAttention on larger shapes, with the fused webgpu kernels where they apply.
 * cpu: less memory kept for backward, argument errors. webgpu: the kernels' contract.
 */
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';

import * as karat from '../src/index';
import {describeAttentionOpCases, rnd, stock} from './support/attention_op_cases';
import {describeWithBackends, readAndDispose as all} from './support/backend_suites';
import {NODE_BACKENDS} from './support/node_backends';
import {maxRelError} from './support/reference';

describeAttentionOpCases(NODE_BACKENDS);

describeWithBackends('attention ops: keep less, reject bad arguments', {backends: ['cpu']}, () => {
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

describeWithBackends('attention ops: the webgpu kernels', {backends: ['webgpu']}, () => {
  it('the kernels follow their contract (probs, gradient scores) against stock ops', async () => {
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
