/**
 * KArAtMultiHeadAttention as a drop-in for tfjs-layers' MultiHeadAttention: the behaviours of
 * Keras' multi_head_attention_test.py (shapes, weights, masking in its forms, causal masks,
 * identity-projection correctness, constraints, symbolic scores, configs), in our own code on
 * softmax. cpu backend, tiny shapes.
 */
import '@tensorflow/tfjs-backend-cpu';

import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {strict as assert} from 'assert';

import * as karat from '../src/index';
import {KArAtMultiHeadAttention} from '../src/index';
import {arr, close, maskedEmbeddings, maxDiff, rnd, stripMask} from './support/mha_helpers';
import {describeWithBackends} from './support/backend_suites';

describeWithBackends('KArAtMultiHeadAttention: the behaviours of Keras\' multi_head_attention_test.py (softmax)', {backends: ['cpu']}, function() {
  it('basics: output shape, 8 or 4 trainable weights, supports masking', () => {
    const a = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2});
    assert.deepEqual((a.call(rnd([2, 8, 16], 1), {value: rnd([2, 4, 16], 2)} as never) as tf.Tensor).shape, [2, 8, 16]);
    assert.equal(a.trainableWeights.length, 8);
    assert.ok(a.supportsMasking);
    const b = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2, valueDim: 4, useBias: false, dropout: 0.5});
    assert.deepEqual((b.call(rnd([2, 8, 16], 1), {value: rnd([2, 4, 16], 2)} as never) as tf.Tensor).shape, [2, 8, 16]);
    assert.equal(b.trainableWeights.length, 4);
    assert.equal(b.nonTrainableWeights.length, 0);
  });

  it('use_gate and sliding_window (Keras 3 extensions) are named errors, false/null accepted', () => {
    assert.throws(() => new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2, useGate: true}), /argument 'useGate'/);
    assert.throws(() => new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2, slidingWindow: 3}), /argument 'slidingWindow'/);
    new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2, useGate: false, slidingWindow: null, flashAttention: null, seed: null});
  });

  it('attention_axes negative indexing: -2 equals 1 (and the default) on rank-3 inputs', () => {
    const x = rnd([2, 3, 8], 3);
    const pos = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 4, attentionAxes: 1});
    const neg = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 4, attentionAxes: -2});
    const negList = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 4, attentionAxes: [-2]});
    pos.call(x, {value: x} as never);
    neg.call(x, {value: x} as never);
    negList.call(x, {value: x} as never);
    neg.setWeights(pos.getWeights());
    negList.setWeights(pos.getWeights());
    const [zp, ap] = pos.call(x, {value: x, returnAttentionScores: true} as never) as tf.Tensor[];
    for (const l of [neg, negList]) {
      const [zn, an] = l.call(x, {value: x, returnAttentionScores: true} as never) as tf.Tensor[];
      assert.equal(maxDiff(zp, zn), 0);
      assert.equal(maxDiff(ap, an), 0);
    }
    assert.deepEqual(neg.getConfig().attentionAxes, [1]);
    assert.throws(() => new KArAtMultiHeadAttention({numHeads: 2, keyDim: 4, attentionAxes: -1}), /'attentionAxes'.*-1 -> \[2\]/);
  });

  it('compute_output_shape: key, output_shape int and tuple; query/value last dims may differ when the layer is applied', () => {
    for (const [q, v, k, o] of [
      [[7, 4, 8], [7, 2, 8], null, null], [[7, 4, 8], [7, 2, 8], [7, 2, 3], null],
      [[7, 4, 8], [7, 2, 8], null, [3, 4]], [[7, 4, 8], [7, 2, 8], [7, 2, 3], [1, 5]],
    ] as Array<[number[], number[], number[] | null, number[] | null]>) {
      const layer = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2, valueDim: 2, outputShape: o ?? undefined});
      const out = layer.call(tf.ones(q), {value: tf.ones(v), ...(k ? {key: tf.ones(k)} : {})} as never) as tf.Tensor;
      assert.deepEqual(layer.computeOutputShape([q, v, k] as never), out.shape);
      assert.deepEqual(layer.computeOutputShape([q, v, ...(k ? [k] : [])] as never), out.shape);
    }
    assert.deepEqual((new KArAtMultiHeadAttention({numHeads: 2, keyDim: 16, outputShape: 8})
        .call(tf.ones([2, 4, 16]), {value: tf.ones([2, 4, 16])} as never) as tf.Tensor).shape, [2, 4, 8]);
    assert.deepEqual((new KArAtMultiHeadAttention({numHeads: 2, keyDim: 16, outputShape: [8, 8]})
        .call(tf.ones([2, 4, 16]), {value: tf.ones([2, 4, 16])} as never) as tf.Tensor).shape, [2, 4, 8, 8]);
    assert.throws(() => new KArAtMultiHeadAttention({numHeads: 2, keyDim: 16, outputShape: 8.5}), /'outputShape\[0\]'/);
    // Keras 3's different_qv_last_dims: applying the layer works (eager and symbolic) ...
    const layer = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2});
    assert.deepEqual((layer.apply(tfl.input({shape: [3, 8]}), {value: tfl.input({shape: [3, 7]})}) as tfl.SymbolicTensor).shape, [null, 3, 8]);
    assert.deepEqual((layer.call(tf.ones([4, 3, 8]), {value: tf.ones([4, 3, 7])} as never) as tf.Tensor).shape, [4, 3, 8]);
    // ... while computeOutputShape itself keeps tfjs-layers' check (see docs/layers.md).
    assert.throws(() => layer.computeOutputShape([[4, 3, 8], [4, 3, 7], [4, 3, 8]] as never), /must be equal/);
  });

  it('shape mismatch errors (value/key tokens) from computeOutputShape and from a call', () => {
    const layer = new KArAtMultiHeadAttention({numHeads: 4, keyDim: 2, valueDim: 2});
    assert.throws(() => layer.computeOutputShape([[2, 4, 8], [2, 2, 8], [2, 1, 7]] as never), /'value' and 'key'.*must be\s+equal/);
    assert.throws(() => layer.call(tf.ones([2, 4, 8]), {value: tf.ones([2, 2, 8]), key: tf.ones([2, 1, 7])} as never), /'value' and 'key'.*must be\s+equal/);
  });

  it('invalid scalar arguments are rejected naming them; valueDim null mirrors keyDim', () => {
    for (const bad of [0, -2, 1.5]) {
      assert.throws(() => new KArAtMultiHeadAttention({numHeads: bad, keyDim: 4}), /argument 'numHeads'/);
      assert.throws(() => new KArAtMultiHeadAttention({numHeads: 4, keyDim: bad}), /argument 'keyDim'/);
      assert.throws(() => new KArAtMultiHeadAttention({numHeads: 4, keyDim: 4, valueDim: bad}), /argument 'valueDim'/);
    }
    assert.equal(new KArAtMultiHeadAttention({numHeads: 4, keyDim: 4, valueDim: null}).valueDim, 4);
  });

  it('query mask propagation: the output carries the query\'s mask (eager apply and in a model)', () => {
    const {query, value} = maskedEmbeddings();
    const layer = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2});
    const out = layer.apply(query, {value}) as tf.Tensor;
    assert.ok(out.kerasMask != null && out.kerasMask !== query.kerasMask);
    assert.deepEqual(arr(out.kerasMask!), arr(query.kerasMask!));
    // With scores: the mask goes on the output, none on the scores.
    const [o2, s2] = layer.apply(query, {value, returnAttentionScores: true}) as tf.Tensor[];
    assert.deepEqual(arr(o2.kerasMask!), arr(query.kerasMask!));
    assert.equal(s2.kerasMask, null);
    // The query's tensor may go away: the output's mask is its own copy.
    query.dispose();
    assert.ok(!out.kerasMask!.isDisposed);
  });

  for (const useCausalMask of [true, false]) {
    it(`masking (${useCausalMask ? 'causal' : 'not causal'}): value and causal masks are taken into account`, () => {
      const {query, value, manual, causal} = maskedEmbeddings();
      const layer = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2});
      const output = layer.apply(query, {value, useCausalMask}) as tf.Tensor;
      const mask = useCausalMask ? tf.logicalAnd(tf.cast(manual, 'bool'), tf.cast(causal, 'bool')) : manual;
      const withManual = layer.apply(stripMask(query), {value: stripMask(value), attentionMask: mask}) as tf.Tensor;
      close(output, withManual, 1e-6, 'implicit vs manual');
    });
  }

  it('masking with different shapes: [T, S], [B, T, S] and [B, h, T, S] give the same output', () => {
    const x = tf.randomUniform([2, 5, 8], 0, 1, 'float32', 4);
    const mask = tf.linalg.bandPart(tf.ones([5, 5]), -1, 0);
    const layer = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 4});
    const o1 = layer.call(x, {value: x, attentionMask: mask} as never) as tf.Tensor;
    const m3 = tf.tile(tf.expandDims(mask, 0), [2, 1, 1]);
    const o2 = layer.call(x, {value: x, attentionMask: m3} as never) as tf.Tensor;
    const o3 = layer.call(x, {value: x, attentionMask: tf.tile(tf.expandDims(m3, 1), [1, 2, 1, 1])} as never) as tf.Tensor;
    close(o1, o2, 1e-6, '[B,T,S]');
    close(o1, o3, 1e-6, '[B,h,T,S]');
    // rank 4 with implicit masks too (tfjs-layers would broadcast [B,h,T,S] & [B,T,S] wrongly)
    const {query, value, manual} = maskedEmbeddings();
    const l2 = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2});
    const full = tf.ones([3, 2, 5, 3]);
    close(l2.call(query, {value, attentionMask: full} as never) as tf.Tensor,
          l2.call(stripMask(query), {value: stripMask(value), attentionMask: manual} as never) as tf.Tensor, 1e-6, 'rank-4 & implicit');
    // a mask of another shape is a named error, never an internal one
    for (const bad of [tf.ones([5]), tf.ones([2, 5, 4]), tf.ones([2, 3, 5, 5]), tf.ones([1, 2, 1, 5, 5])]) {
      assert.throws(() => layer.call(x, {value: x, attentionMask: bad} as never),
                    (e: Error) => e instanceof karat.KArAtArgumentError && /argument 'attentionMask' must have shape \[T, S\], \[B, T, S\] or \[B, numHeads, T, S\]/.test(e.message));
    }
    // ... also at graph construction
    assert.throws(() => new KArAtMultiHeadAttention({numHeads: 2, keyDim: 4}).apply(tfl.input({shape: [5, 8]}), {attentionMask: tfl.input({shape: [5, 4]})}),
                  (e: Error) => e instanceof karat.KArAtArgumentError && /argument 'attentionMask' must have shape/.test(e.message));
  });

  it('causal only: equals an explicit lower-triangular [1, T, T] mask; with another mask, the merged mask', () => {
    const x = rnd([2, 5, 8], 0);
    const layer = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 4});
    const fast = layer.call(x, {value: x, useCausalMask: true} as never) as tf.Tensor;
    const tril = tf.reshape(tf.linalg.bandPart(tf.ones([5, 5], 'bool'), -1, 0), [1, 5, 5]);
    close(fast, layer.call(x, {value: x, attentionMask: tril} as never) as tf.Tensor, 1e-6, 'causal vs explicit');
    const extra = tf.tensor3d(Array.from({length: 50}, (_, i) => (i % 25 === 13 ? 0 : 1)), [2, 5, 5]);  // [2, 3] masked
    const out1 = layer.call(x, {value: x, attentionMask: extra, useCausalMask: true} as never) as tf.Tensor;
    const out2 = layer.call(x, {value: x, attentionMask: tf.logicalAnd(tf.cast(extra, 'bool'), tril)} as never) as tf.Tensor;
    close(out1, out2, 1e-6, 'extra & causal');
  });

  it('causal masking also holds with returned scores and with dropout (no weight on future keys)', () => {
    const x = rnd([1, 6, 8], 0);
    for (const dropout of [0, 0.1]) {
      const layer = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 4, dropout});
      const [, scores] = layer.call(x, {value: x, useCausalMask: true, returnAttentionScores: true, training: false} as never) as tf.Tensor[];
      const future = tf.sub(1, tf.linalg.bandPart(tf.ones([6, 6]), -1, 0));
      assert.ok(tf.sum(tf.mul(scores, future)).dataSync()[0] < 1e-6);
      const explicit = tf.linalg.bandPart(tf.ones([1, 6, 6]), -1, 0);
      close(layer.call(x, {value: x, useCausalMask: true, training: false} as never) as tf.Tensor,
            layer.call(x, {value: x, attentionMask: explicit, training: false} as never) as tf.Tensor, 1e-6, `dropout ${dropout}`);
    }
  });

  it('correctness: identity projections give Keras\' expected output and scores', () => {
    const h = 8, d = 8;
    const eye = tf.eye(d);
    const query = tf.expandDims(eye, 0), key = tf.expandDims(eye, 0);
    const value = tf.div(tf.reshape(tf.range(0, d * d), [1, d, d]), 100);
    const layer = new KArAtMultiHeadAttention({numHeads: h, keyDim: d});
    layer.call(query, {value, key} as never);
    const kernel = tf.tile(tf.expandDims(eye, 1), [1, h, 1]);  // [d, h, d]: kernel[:, i, :] = I
    layer.setWeights([kernel, tf.zeros([h, d]), kernel, tf.zeros([h, d]), kernel, tf.zeros([h, d]), kernel, tf.zeros([d])]);
    const [output, scores] = layer.call(query, {value, key, returnAttentionScores: true} as never) as tf.Tensor[];
    const exp = [2.406, 2.440, 2.473, 2.504, 2.535, 2.568, 2.602, 2.633];
    close(output, tf.tile(tf.reshape(tf.tensor1d(exp), [1, d, 1]), [1, 1, d]), 1e-2, 'output');
    const row = (i: number) => Array.from({length: d}, (_, j) => (i === j ? 0.1691 : 0.1187));
    const expScores = tf.tile(tf.reshape(tf.tensor2d(Array.from({length: d}, (_, i) => row(i))), [1, 1, d, d]), [1, h, 1, 1]);
    close(scores, expScores, 1e-3, 'scores');
  });

  it('constraints: kernelConstraint / biasConstraint reach every projection', () => {
    const layer = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2, kernelConstraint: 'nonNeg', biasConstraint: 'nonNeg'});
    layer.call(tf.ones([1, 2, 2]), {value: tf.ones([1, 2, 2])} as never);
    for (const w of layer.weights) {
      assert.equal((w as unknown as {constraint: {getClassName(): string}}).constraint?.getClassName(), 'NonNeg', w.originalName);
    }
  });

  for (const shape of [[1, 2, 3], [2, 3, 5]]) {
    it(`symbolic return_attention_scores ${JSON.stringify(shape)}: two outputs, the shapes of an eager call`, () => {
      const mha = new KArAtMultiHeadAttention({numHeads: 4, keyDim: 2});
      const x = tfl.input({batchShape: shape}), y = tfl.input({batchShape: shape});
      const sym = mha.apply(x, {value: y, returnAttentionScores: true}) as tfl.SymbolicTensor[];
      assert.equal(sym.length, 2);
      const out = mha.apply(tf.randomUniform(shape), {value: tf.randomUniform(shape), returnAttentionScores: true}) as tf.Tensor[];
      assert.equal(out.length, 2);
      assert.deepEqual([sym[0].shape, sym[1].shape], [out[0].shape, out[1].shape]);
    });
  }

  it('config round trip (getConfig -> fromConfig -> getConfig), weights in the stock order', () => {
    const layer = new KArAtMultiHeadAttention({
      numHeads: 2, keyDim: 3, valueDim: 4, dropout: 0.25, useBias: false, outputShape: [5], attentionAxes: -2,
      kernelInitializer: 'heNormal', kernelRegularizer: 'l1l2', kernelConstraint: 'nonNeg', name: 'cfg_mha',
    });
    const cfg = layer.getConfig();
    const again = KArAtMultiHeadAttention.fromConfig(KArAtMultiHeadAttention, JSON.parse(JSON.stringify(cfg))) as KArAtMultiHeadAttention;
    assert.deepEqual(again.getConfig(), cfg);
    layer.call(tf.ones([1, 3, 6]), {value: tf.ones([1, 2, 7]), key: tf.ones([1, 2, 8])} as never);
    assert.deepEqual(layer.weights.map(w => `${w.originalName} ${w.shape}`),
                     ['cfg_mha/query/kernel 6,2,3', 'cfg_mha/key/kernel 8,2,3', 'cfg_mha/value/kernel 7,2,4', 'cfg_mha/attentionOutput/kernel 2,4,5']);
  });

  it('a stock tfjs-layers config (queryShape/keyShape/valueShape, flashAttention) loads; a signature that does not fit the inputs is named', () => {
    const cfg = {numHeads: 2, keyDim: 2, queryShape: [null, 4, 8], valueShape: [null, 4, 8], keyShape: [null, 4, 8], flashAttention: false};
    const layer = new KArAtMultiHeadAttention(cfg as never);
    assert.deepEqual((layer.call(tf.ones([1, 4, 8]), {value: tf.ones([1, 4, 8])} as never) as tf.Tensor).shape, [1, 4, 8]);
    const wrong = new KArAtMultiHeadAttention(cfg as never);
    assert.throws(() => wrong.call(tf.ones([1, 4, 6]), {value: tf.ones([1, 4, 8])} as never), /argument 'queryShape' \[null, 4, 8\].*does not match the 'query' input/);
  });
});
