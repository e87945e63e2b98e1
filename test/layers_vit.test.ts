/**
 * KArAtMultiHeadAttention, ViT building blocks and models.vit, on the cpu backend.
 */
import '@tensorflow/tfjs-backend-cpu';

import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {strict as assert} from 'assert';

import * as karat from '../src/index';
import {describeWithBackends} from './support/backend_suites';

const {KArAtMultiHeadAttention} = karat;

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

function attentionLayers(m: tfl.LayersModel): karat.KArAtMultiHeadAttention[] {
  return m.layers.filter(l => l.getClassName() === 'KArAtMultiHeadAttention') as karat.KArAtMultiHeadAttention[];
}

describeWithBackends('models.vit: parameter counts (built, not run)', {backends: ['cpu']}, function() {
  it('ViT-Tiny 224/16, 1000 classes: G3B adds h·L·N·r·(2G+1) = 595,728, G3U adds 1/12 of it', () => {
    const base = karat.models.vit({preset: 'tiny', imageSize: 224, patchSize: 16, numClasses: 1000});
    const nSoftmax = base.countParams();
    base.dispose();
    // timm's vit_tiny_patch16_224 has 5,717,416 parameters.
    assert.equal(nSoftmax, 5717416);
    const g3b = karat.models.vit({config: 'tiny-G3B', imageSize: 224, patchSize: 16, numClasses: 1000});
    assert.equal(g3b.countParams() - nSoftmax, 3 * 12 * 197 * 12 * 7);
    assert.equal(g3b.countParams() - nSoftmax, 595728);
    g3b.dispose();
    const g3u = karat.models.vit({
      preset: 'tiny', imageSize: 224, patchSize: 16, numClasses: 1000,
      attention: {type: 'fourier', grid: 3, rank: 12, mode: 'universal'},
    });
    assert.equal(g3u.countParams() - nSoftmax, 595728 / 12);
    g3u.dispose();
  });

  it('paper configurations by name, presets, and explicit dims overriding a preset', () => {
    const c = karat.models.paperConfig('base-G1U');
    assert.deepEqual({dim: c.dim, depth: c.depth, heads: c.heads}, {dim: 768, depth: 12, heads: 12});
    assert.deepEqual(c.attention, {type: 'fourier', grid: 1, rank: 12, baseActivation: 'zero', mode: 'universal'});
    assert.equal(karat.models.paperConfig('small-g3b').heads, 6);
    const r = karat.models.resolveViTConfig({config: 'tiny-G3B', depth: 2, dim: 24});
    assert.deepEqual([r.dim, r.depth, r.heads], [24, 2, 3]);
    const m = karat.models.vit({preset: 'small', dim: 32, depth: 1, heads: 4, imageSize: 8, patchSize: 4, numClasses: 3});
    assert.equal(attentionLayers(m).length, 1);
    assert.equal(attentionLayers(m)[0].numHeads, 4);
    m.dispose();
  });
});

describeWithBackends('PatchEmbedding', {backends: ['cpu']}, function() {
  it('equals a stride-p p x p conv2d + bias (values and kernel/bias gradients), non-square images', () => {
    const layer = new karat.PatchEmbedding({patchSize: 4, dim: 5, biasInitializer: 'randomNormal'});
    const x = tf.randomNormal([2, 8, 12, 3], 0, 1, 'float32', 3);
    const y = layer.apply(x) as tf.Tensor;
    const [kernel, bias] = layer.getWeights() as [tf.Tensor4D, tf.Tensor1D];
    const conv = (k: tf.Tensor4D, b: tf.Tensor1D) => tf.reshape(tf.add(tf.conv2d(x as tf.Tensor4D, k, 4, 'valid'), b), [2, 6, 5]);
    assert.deepEqual(y.shape, [2, 6, 5]);
    assert.ok(maxAbsDiff(y, conv(kernel, bias)) < 1e-5);
    const w = tf.randomNormal([2, 6, 5], 0, 1, 'float32', 4);
    const [gk, gb] = tf.grads((k: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(conv(k as tf.Tensor4D, b as tf.Tensor1D), w)))([kernel, bias]);
    const vars = layer.trainableWeights.map((v) => (v as unknown as {val: tf.Variable}).val);
    const {grads} = tf.variableGrads(() => tf.sum(tf.mul(layer.apply(x) as tf.Tensor, w)) as tf.Scalar, vars);
    assert.ok(maxAbsDiff(grads[vars[0].name], gk) < 1e-4);
    assert.ok(maxAbsDiff(grads[vars[1].name], gb) < 1e-4);
    tf.dispose([x, y, w, gk, gb, ...Object.values(grads)]);
  });
});

describeWithBackends('KArAtMultiHeadAttention', {backends: ['cpu']}, function() {
  it('works in tf.sequential via model.add (self-attention), softmax and Fourier-KArAt, and trains', async () => {
    for (const act of ['softmax', {basis: 'fourier', grid: 2, rank: 3}] as karat.AttentionActivation[]) {
      const m = tfl.sequential();
      m.add(new KArAtMultiHeadAttention({numHeads: 2, keyDim: 4, inputShape: [5, 8], attentionActivation: act}));
      m.add(tfl.layers.flatten());
      m.add(tfl.layers.dense({units: 2}));
      m.compile({optimizer: tf.train.adam(0.01), loss: 'meanSquaredError'});
      const x = tf.randomNormal([4, 5, 8], 0, 1, 'float32', 1);
      const y = tf.randomNormal([4, 2], 0, 1, 'float32', 2);
      const h = await m.fit(x, y, {epochs: 6, verbose: 0});
      const loss = h.history.loss as number[];
      assert.ok(loss[5] < loss[0], `loss should decrease: ${loss}`);
      m.dispose();
      tf.dispose([x, y]);
    }
  });

  it('functional (query, value[, key]) with returnAttentionScores gives per-head σ̂(S)', () => {
    const q = tfl.input({shape: [6, 8]});
    const v = tfl.input({shape: [6, 10]});
    const k = tfl.input({shape: [6, 12]});
    const layer = new KArAtMultiHeadAttention({
      numHeads: 2, keyDim: 3, valueDim: 5, outputShape: 7, returnAttentionScores: true,
      attentionActivation: {basis: 'fourier', grid: 2, rank: 4},
    });
    const [o, s] = layer.apply(q, {value: v, key: k}) as tfl.SymbolicTensor[];
    assert.deepEqual(o.shape, [null, 6, 7]);
    assert.deepEqual(s.shape, [null, 2, 6, 6]);
    const m = tfl.model({inputs: [q, v, k], outputs: [o, s]});
    const xs = [tf.randomNormal([2, 6, 8]), tf.randomNormal([2, 6, 10]), tf.randomNormal([2, 6, 12])];
    const [out, scores] = m.predict(xs) as tf.Tensor[];
    assert.deepEqual(out.shape, [2, 6, 7]);
    // σ̂(S) per head is what the fold computes implicitly: check out against it.
    const w = Object.fromEntries(layer.weights.map(x => [x.originalName.split('/').slice(1).join('/'), x.read()]));
    const ref = tf.tidy(() => {
      const proj = (x: tf.Tensor, n: string, d: number) => tf.transpose(tf.reshape(tf.add(
          tf.matMul(tf.reshape(x, [12, -1]), tf.reshape(w[`${n}/kernel`], [x.shape[2]!, 2 * d])),
          tf.reshape(w[`${n}/bias`], [2 * d])), [2, 6, 2, d]), [0, 2, 1, 3]);
      const Q = tf.mul(proj(xs[0], 'query', 3), 1 / Math.sqrt(3));
      const K = proj(xs[2], 'key', 3);
      const V = proj(xs[1], 'value', 5);
      const S = tf.matMul(Q, K, false, true) as tf.Tensor4D;
      const sig = karat.karatActivation(S, w['karat/coeffs'] as tf.Tensor5D, w['karat/proj'] as tf.Tensor3D);
      const ctx = tf.reshape(tf.transpose(tf.matMul(sig, V), [0, 2, 1, 3]), [12, 10]);
      const y = tf.add(tf.matMul(ctx, tf.reshape(w['attentionOutput/kernel'], [10, 7])), w['attentionOutput/bias']);
      return {sig, y: tf.reshape(y, [2, 6, 7])};
    });
    assert.ok(maxAbsDiff(scores, ref.sig) < 1e-4, 'scores = σ̂(S)');
    assert.ok(maxAbsDiff(out, ref.y) < 1e-4, 'output = σ̂(S)·V·Wo');
    m.dispose();
    tf.dispose([...xs, out, scores, ref.sig, ref.y]);
  });

  it('weights use the names and layout of tfjs-layers MultiHeadAttention', () => {
    const layer = new KArAtMultiHeadAttention({numHeads: 3, keyDim: 4, valueDim: 5, name: 'mha'});
    const x = tfl.input({shape: [7, 10]});
    layer.apply(x);
    assert.deepEqual(layer.weights.map(w => `${w.originalName} ${w.shape}`), [
      'mha/query/kernel 10,3,4', 'mha/query/bias 3,4', 'mha/key/kernel 10,3,4', 'mha/key/bias 3,4',
      'mha/value/kernel 10,3,5', 'mha/value/bias 3,5', 'mha/attentionOutput/kernel 3,5,10',
      'mha/attentionOutput/bias 10',
    ]);
  });

  it('softmax: cross-attention with T != S, causal mask; KArAt rejects T != S clearly', () => {
    const q = tfl.input({shape: [3, 8]});
    const v = tfl.input({shape: [7, 8]});
    const soft = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 4, returnAttentionScores: true});
    const [o, s] = soft.apply([q, v]) as tfl.SymbolicTensor[];
    assert.deepEqual([o.shape, s.shape], [[null, 3, 8], [null, 2, 3, 7]]);
    const kar = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 4, attentionActivation: {grid: 2, rank: 2}});
    assert.throws(() => kar.apply([q, v]), /KArAt attention needs as many query tokens as key\/value tokens.*3 query and 7 value/);
    // Causal mask: output at token 0 ignores later tokens.
    const layer = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 4});
    const x1 = tf.randomNormal([1, 4, 8], 0, 1, 'float32', 3);
    const x2 = tf.concat([tf.slice(x1, [0, 0, 0], [1, 1, 8]), tf.randomNormal([1, 3, 8], 0, 1, 'float32', 4)], 1);
    const [y1] = layer.callAndReturnAttentionScores(x1, {useCausalMask: true});
    const [y2] = layer.callAndReturnAttentionScores(x2, {useCausalMask: true});
    const [y3] = layer.callAndReturnAttentionScores(x2);
    const first = (t: tf.Tensor) => tf.slice(t, [0, 0, 0], [1, 1, 8]);
    assert.ok(maxAbsDiff(first(y1), first(y2)) < 1e-6);
    assert.ok(maxAbsDiff(first(y1), first(y3)) > 1e-4, 'without the mask token 0 sees the others');
    tf.dispose([x1, x2, y1, y2, y3]);
  });

  it('ViT with dropout, attention dropout (on ĥ for KArAt) and stochastic depth trains; inference is deterministic', async () => {
    const m = karat.models.vit({
      dim: 16, depth: 2, heads: 2, imageSize: 8, patchSize: 4, numClasses: 3,
      dropout: 0.1, attentionDropout: 0.1, dropPath: 0.5, attention: {grid: 2, rank: 2},
    });
    assert.ok(m.layers.some(l => l.getClassName() === 'StochasticDepth'));
    const x = tf.randomNormal([4, 8, 8, 3], 0, 1, 'float32', 5);
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 0], 'int32'), 3);
    m.compile({optimizer: 'adam', loss: 'categoricalCrossentropy'});
    const h = await m.fit(x, y, {epochs: 2, verbose: 0});
    assert.ok((h.history.loss as number[]).every(Number.isFinite));
    const p1 = m.predict(x) as tf.Tensor, p2 = m.predict(x) as tf.Tensor;
    assert.equal(maxAbsDiff(p1, p2), 0);
    // Drop path in training zeroes whole examples and rescales the rest by 1/(1 - rate).
    const sd = new karat.StochasticDepth({rate: 0.5});
    const ones = tf.ones([64, 2, 3]);
    const out = sd.apply(ones, {training: true}) as tf.Tensor;
    const vals = new Set(Array.from(out.dataSync()));
    assert.deepEqual([...vals].sort(), [0, 2]);
    assert.equal(maxAbsDiff(sd.apply(ones) as tf.Tensor, ones), 0);
    // Every layer serialises its full config.
    const loaded = await tfl.models.modelFromJSON(m.toJSON(null, false) as never);
    assert.deepEqual(loaded.toJSON(null, false), m.toJSON(null, false));
    m.dispose();
    loaded.dispose();
    tf.dispose([x, y, p1, p2, ones, out]);
  });
});
