/**
 * KArAtMultiHeadAttention as a drop-in for tfjs-layers' MultiHeadAttention: call forms, masks
 * and options that act (value and key honoured, attentionMask, useCausalMask and implicit masks,
 * computeOutputShape, attentionAxes -2, rank-4 masks, unknown options named), and the contract with
 * Fourier-KArAt where meaningful (masks are named KArAtArgumentErrors). cpu backend, tiny shapes.
 */
import '@tensorflow/tfjs-backend-cpu';

import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {strict as assert} from 'assert';

import * as karat from '../src/index';
import {KArAtMultiHeadAttention} from '../src/index';
import {close, FOURIER, maxDiff, randomMask, rnd, stripMask} from './support/mha_helpers';
import {describeWithBackends} from './support/backend_suites';

describeWithBackends('KArAtMultiHeadAttention: call forms, shapes and masks at their edges', {backends: ['cpu']}, function() {
  it('call(q, {value}) on a fresh layer builds it', () => {
    const out = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2}).call(rnd([2, 3, 4], 1), {value: rnd([2, 5, 4], 2)} as never) as tf.Tensor;
    assert.deepEqual(out.shape, [2, 3, 4]);
  });

  it('a built layer honours value and key', () => {
    const layer = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2});
    const q = rnd([2, 3, 4], 1), v = rnd([2, 3, 4], 2), k = rnd([2, 3, 4], 3);
    layer.apply(q);  // built
    const self = layer.call(q, {} as never) as tf.Tensor;
    const cross = layer.call(q, {value: v} as never) as tf.Tensor;
    assert.ok(maxDiff(self, cross) > 1e-4);
    close(cross, layer.apply([q, v]) as tf.Tensor, 1e-7, 'call(q, {value}) = apply([q, v])');
    close(cross, layer.apply(q, {value: v}) as tf.Tensor, 1e-7, 'apply(q, {value})');
    const withKey = layer.call(q, {value: v, key: k} as never) as tf.Tensor;
    assert.ok(maxDiff(withKey, cross) > 1e-4);
    close(withKey, layer.apply([q, v, k]) as tf.Tensor, 1e-7, 'apply([q, v, k])');
  });

  it('call(x, {attentionMask}), apply(q, {value, attentionMask}) and {useCausalMask: true} act', () => {
    const layer = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2});
    const x = rnd([2, 4, 6], 1), v = rnd([2, 3, 6], 2);
    layer.apply(x);  // built
    const base = layer.call(x, {} as never) as tf.Tensor;
    assert.ok(maxDiff(base, layer.call(x, {attentionMask: randomMask([2, 4, 4], 3)} as never) as tf.Tensor) > 1e-4, 'call attentionMask');
    assert.ok(maxDiff(base, layer.call(x, {useCausalMask: true} as never) as tf.Tensor) > 1e-4, 'call useCausalMask');
    assert.ok(maxDiff(base, layer.apply(x, {useCausalMask: true}) as tf.Tensor) > 1e-4, 'apply useCausalMask');
    const cross = layer.apply(x, {value: v}) as tf.Tensor;
    assert.ok(maxDiff(cross, layer.apply(x, {value: v, attentionMask: randomMask([2, 4, 3], 4)}) as tf.Tensor) > 1e-4, 'apply attentionMask');
  });

  it('a functional model Embedding(maskZero) -> KArAtMultiHeadAttention(softmax) masks', () => {
    const ids = tfl.input({shape: [5]});
    const emb = tfl.layers.embedding({inputDim: 4, outputDim: 8, maskZero: true});
    const mha = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2});
    const model = tfl.model({inputs: ids, outputs: mha.apply(emb.apply(ids) as tfl.SymbolicTensor) as tfl.SymbolicTensor});
    const x = tf.tensor2d([[1, 2, 3, 0, 0], [3, 3, 1, 1, 2], [1, 0, 0, 0, 0]]);
    const predicted = model.predict(x) as tf.Tensor;
    const e = emb.apply(x) as tf.Tensor;  // carries the mask
    const m = tf.cast(e.kerasMask!, 'float32');
    const byHand = mha.call(stripMask(e), {attentionMask: tf.mul(tf.expandDims(m, 2), tf.expandDims(m, 1))} as never) as tf.Tensor;
    close(predicted, byHand, 1e-6, 'model vs manual mask');
    assert.ok(maxDiff(predicted, mha.call(stripMask(e), {} as never) as tf.Tensor) > 1e-4, 'the implicit mask acts');
  });

  it('computeOutputShape([queryShape, valueShape, null]) works', () => {
    assert.deepEqual(new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2}).computeOutputShape([[null, 4, 8], [null, 3, 8], null] as never), [null, 4, 8]);
  });

  it('attentionAxes -2 on rank-3 inputs is accepted', () => {
    const out = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2, attentionAxes: -2}).call(rnd([1, 3, 4], 1), {} as never) as tf.Tensor;
    assert.deepEqual(out.shape, [1, 3, 4]);
  });

  it('a [B, h, T, S] mask works', () => {
    const layer = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2});
    layer.apply([rnd([2, 4, 6], 0), rnd([2, 3, 6], 0)]);  // built
    const [out] = layer.callAndReturnAttentionScores(rnd([2, 4, 6], 1), {value: rnd([2, 3, 6], 2), attentionMask: randomMask([2, 2, 4, 3], 3)});
    assert.deepEqual(out.shape, [2, 4, 6]);
  });

  it('unknown options and arguments are named errors', () => {
    const layer = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2});
    const x = rnd([1, 3, 4], 1);
    assert.throws(() => layer.call(x, {values: x} as never), /unknown option 'values'/);
    assert.throws(() => layer.apply(x, {causal: true} as never), /unknown option 'causal'/);
    assert.throws(() => layer.call(x, {useCausalMask: 'yes'} as never), /option 'useCausalMask' must be a boolean/);
    assert.throws(() => layer.apply([x, x], {value: x}), /either in the input list or as options, not both/);
    assert.throws(() => layer.call(x, {key: x} as never), /option 'key' given without 'value'/);
    assert.throws(() => new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2, numheads: 3} as never), /unknown argument 'numheads'/);
    assert.throws(() => new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2, dropout: 0.1, seed: 3}), /argument 'seed'/);
    assert.throws(() => new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2, activityRegularizer: 'l2'}), /argument 'activityRegularizer'/);
    assert.throws(() => new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2, dtype: 'float16' as never}), /argument 'dtype'/);
    assert.throws(() => layer.apply(tfl.input({shape: [3, 4]}), {training: true}), /option 'training' cannot be fixed in a graph/);
    const q4 = tf.zeros([1, 2, 3, 4]) as tf.Tensor4D;
    assert.throws(() => karat.attentionCore({query: q4, key: q4, value: q4, activation: {kind: 'softmax'}, dropout: 0,
                                             training: false, returnScores: false, causal: true} as never),
                  /attentionCore: unknown argument 'causal'/);
  });

  it('a layer applied in a graph keeps its options; another set on the same layer is a named error', () => {
    const layer = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2});
    const a = tfl.input({shape: [3, 4]}), b = tfl.input({shape: [3, 4]});
    layer.apply(a, {useCausalMask: true});
    layer.apply(b, {useCausalMask: true});  // same options: fine (a shared layer)
    assert.throws(() => layer.apply(b), /already applied in a graph with \{"useCausalMask":true/);
  });
});

// ---------------------------------------------------------------------------------------------

describeWithBackends('KArAtMultiHeadAttention with Fourier-KArAt: the contract where meaningful, masks are named errors', {backends: ['cpu']}, function() {
  it('call / apply forms on fresh and built layers, value and key honoured, scores [B, h, N, N]', () => {
    const q = rnd([2, 4, 6], 1), v = rnd([2, 4, 6], 2), k = rnd([2, 4, 5], 3);
    const layer = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 3, attentionActivation: FOURIER});
    const cross = layer.call(q, {value: v} as never) as tf.Tensor;  // fresh
    assert.deepEqual(cross.shape, [2, 4, 6]);
    assert.ok(maxDiff(cross, layer.call(q, {} as never) as tf.Tensor) > 1e-4, 'value honoured');
    close(cross, layer.apply(q, {value: v}) as tf.Tensor, 1e-6, 'apply(q, {value})');
    const k5 = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 3, attentionActivation: FOURIER});
    const [o, s] = k5.call(q, {value: v, key: k, returnAttentionScores: true} as never) as tf.Tensor[];
    assert.deepEqual([o.shape, s.shape], [[2, 4, 6], [2, 2, 4, 4]]);
    close(o, k5.callAndReturnAttentionScores(q, {value: v, key: k})[0], 1e-6, 'callAndReturnAttentionScores');
    // symbolic, with the call option returnAttentionScores
    const sq = tfl.input({shape: [4, 6]});
    const outs = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 3, attentionActivation: FOURIER})
        .apply(sq, {returnAttentionScores: true}) as tfl.SymbolicTensor[];
    assert.deepEqual(outs.map(t => t.shape), [[null, 4, 6], [null, 2, 4, 4]]);
    // T != S and unknown N are documented limits
    assert.throws(() => new KArAtMultiHeadAttention({numHeads: 2, keyDim: 3, attentionActivation: FOURIER}).call(q, {value: rnd([2, 3, 6], 4)} as never),
                  /KArAt attention needs as many query tokens as key\/value tokens/);
  });

  it('attentionMask, useCausalMask and implicit masks are KArAtArgumentErrors naming the argument (eager, symbolic, in a model)', () => {
    const layer = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2, attentionActivation: FOURIER});
    const x = rnd([2, 4, 6], 1);
    layer.call(x, {} as never);
    const named = (re: RegExp) => (e: Error) => e instanceof karat.KArAtArgumentError && re.test(e.message) && /KArAt operator has no normalisation to mask/.test(e.message);
    assert.throws(() => layer.call(x, {attentionMask: tf.ones([4, 4])} as never), named(/\(attentionMask\)/));
    assert.throws(() => layer.apply(x, {attentionMask: tf.ones([2, 4, 4])}), named(/\(attentionMask\)/));
    assert.throws(() => layer.call(x, {useCausalMask: true} as never), named(/\(useCausalMask\)/));
    assert.throws(() => layer.callAndReturnAttentionScores(x, {useCausalMask: true}), named(/\(useCausalMask\)/));
    const masked = tf.clone(x);
    masked.kerasMask = tf.ones([2, 4], 'bool');
    assert.throws(() => layer.call(masked, {} as never), named(/query\.kerasMask/));
    assert.throws(() => layer.call(x, {value: masked} as never), named(/value\.kerasMask/));
    // symbolic: at graph construction
    const sx = tfl.input({shape: [4, 6]}), sm = tfl.input({shape: [4, 4]});
    const fresh = () => new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2, attentionActivation: FOURIER});
    assert.throws(() => fresh().apply(sx, {attentionMask: sm}), named(/\(attentionMask\)/));
    assert.throws(() => fresh().apply(sx, {useCausalMask: true}), named(/\(useCausalMask\)/));
    // Embedding(maskZero) in a model: at run time
    const ids = tfl.input({shape: [4]});
    const e = tfl.layers.embedding({inputDim: 5, outputDim: 6, maskZero: true}).apply(ids) as tfl.SymbolicTensor;
    const model = tfl.model({inputs: ids, outputs: fresh().apply(e) as tfl.SymbolicTensor});
    assert.throws(() => model.predict(tf.tensor2d([[1, 2, 0, 0]])), named(/query\.kerasMask/));
  });

  it('config round trip and save/load of a model with Fourier-KArAt and cross-attention inputs', async () => {
    const q = tfl.input({shape: [4, 6]}), v = tfl.input({shape: [4, 5]});
    const layer = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 3, attentionActivation: FOURIER, name: 'kmha'});
    const model = tfl.model({inputs: [q, v], outputs: layer.apply(q, {value: v}) as tfl.SymbolicTensor});
    const cfg = layer.getConfig();
    assert.deepEqual((KArAtMultiHeadAttention.fromConfig(KArAtMultiHeadAttention, JSON.parse(JSON.stringify(cfg))) as KArAtMultiHeadAttention).getConfig(), cfg);
    const xs = [rnd([2, 4, 6], 1), rnd([2, 4, 5], 2)];
    const loaded = await karat.io.loadFromMemory(await karat.io.saveToMemory(model));
    assert.equal(maxDiff(model.predict(xs) as tf.Tensor, loaded.predict(xs) as tf.Tensor), 0);
  });
});
