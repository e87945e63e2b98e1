/**
 * KArAtMultiHeadAttention as a drop-in for tfjs-layers' MultiHeadAttention.
 *
 * 1. The calling contract, numerically against tfjs-layers 4.22's own layer (deep ESM import,
 *    run in a child process: test/support/stock_mha_cases.ts) on copied weights: call / apply
 *    (eager, fresh and built), functional models (predict, save/load), value, key,
 *    attentionMask of rank 2/3/4, useCausalMask, implicit (kerasMask) masks, scores.
 * 2. The cases of tfjs-layers' multihead_attention_test.ts, in our own code, on softmax.
 * The behaviours of Keras' multi_head_attention_test.py are in mha_contract_keras.test.ts; call
 * forms, masks and options that act, and Fourier-KArAt (documented KArAt limits assert the named
 * KArAtArgumentError) in mha_contract_calls.test.ts.
 * cpu backend, tiny shapes.
 */
import '@tensorflow/tfjs-backend-cpu';

import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {strict as assert} from 'assert';

import * as karat from '../src/index';
import {KArAtMultiHeadAttention} from '../src/index';
import {arr, close, maskedEmbeddings, maxDiff, Opts, randomMask, rnd, stripMask} from './support/mha_helpers';
import {describeWithBackends} from './support/backend_suites';
import {runStock} from './support/stock_mha_run';

// ---------------------------------------------------------------------------------------------

interface Spec {
  name: string;
  args: {numHeads: number, keyDim: number, valueDim?: number, useBias?: boolean, outputShape?: number[]};
  q: number[];
  v?: number[];
  k?: number[];
  mask?: {shape: number[], bool?: boolean};
  implicit?: boolean;
  causal?: boolean;
  /** Also run it as a functional model (inputs [q, v, k, mask]) with predict and a save/load round trip. */
  graph?: boolean;
}

const SPECS: Spec[] = [
  {name: 'self-attention, call(q, {value: q}) on a fresh layer', args: {numHeads: 2, keyDim: 3}, q: [2, 4, 6], graph: true},
  {name: 'cross-attention T != S, valueDim, outputShape [2, 3]', args: {numHeads: 2, keyDim: 3, valueDim: 4, outputShape: [2, 3]},
   q: [2, 4, 6], v: [2, 3, 6], graph: true},
  {name: 'query, value and a key of another width', args: {numHeads: 2, keyDim: 2}, q: [2, 4, 6], v: [2, 3, 6], k: [2, 3, 5], graph: true},
  {name: 'attentionMask [B, T, S] (0/1 float), no bias', args: {numHeads: 2, keyDim: 2, useBias: false}, q: [3, 4, 8], v: [3, 2, 8],
   mask: {shape: [3, 4, 2]}, graph: true},
  {name: 'attentionMask [T, S] (bool)', args: {numHeads: 2, keyDim: 2}, q: [2, 5, 8], mask: {shape: [5, 5], bool: true}},
  {name: 'attentionMask [B, h, T, S]', args: {numHeads: 2, keyDim: 2}, q: [2, 4, 8], v: [2, 3, 8], mask: {shape: [2, 2, 4, 3]}, graph: true},
  {name: 'useCausalMask (self-attention)', args: {numHeads: 2, keyDim: 4}, q: [2, 5, 8], causal: true, graph: true},
  {name: 'useCausalMask with T != S', args: {numHeads: 2, keyDim: 2}, q: [2, 3, 8], v: [2, 5, 8], causal: true, graph: true},
  {name: 'implicit masks (query and value kerasMask)', args: {numHeads: 2, keyDim: 2}, q: [3, 5, 8], v: [3, 3, 8], implicit: true},
  {name: 'implicit masks + useCausalMask', args: {numHeads: 2, keyDim: 2}, q: [3, 5, 8], v: [3, 3, 8], implicit: true, causal: true},
  {name: 'implicit masks + attentionMask [B, T, S]', args: {numHeads: 2, keyDim: 2}, q: [3, 5, 8], v: [3, 3, 8], implicit: true,
   mask: {shape: [3, 5, 3], bool: true}},
];

interface Prepared {
  spec: Spec;
  layer: KArAtMultiHeadAttention;
  inputs: {query: tf.Tensor, value?: tf.Tensor, key?: tf.Tensor, attentionMask?: tf.Tensor};
  opts: Opts;
  ours: {call: tf.Tensor, scores: tf.Tensor, apply: tf.Tensor, callAndReturn: tf.Tensor[], graph?: tf.Tensor, reloaded?: tf.Tensor};
}

describeWithBackends('KArAtMultiHeadAttention: the tfjs-layers MultiHeadAttention contract, vs the stock layer (softmax)', {backends: ['cpu']}, function() {
  const prepared: Prepared[] = [];
  let stock: ReturnType<typeof runStock> = [];

  before(async () => {
    const cases: unknown[] = [];
    for (const [i, spec] of SPECS.entries()) {
      const query = rnd(spec.q, 10 * i + 1);
      const value = spec.v ? rnd(spec.v, 10 * i + 2) : undefined;
      const key = spec.k ? rnd(spec.k, 10 * i + 3) : undefined;
      const attentionMask = spec.mask ? randomMask(spec.mask.shape, 10 * i + 4, spec.mask.bool) : undefined;
      if (spec.implicit) {
        const S = (spec.v ?? spec.q)[1];
        query.kerasMask = randomMask([spec.q[0], spec.q[1]], 10 * i + 5, true);
        if (value != null) value.kerasMask = randomMask([spec.q[0], S], 10 * i + 6, true);
      }
      const opts: Opts = {value: value ?? query, ...(key ? {key} : {}), ...(attentionMask ? {attentionMask} : {}),
                          ...(spec.causal ? {useCausalMask: true} : {})};
      const layer = new KArAtMultiHeadAttention({...spec.args, name: `mha_case_${i}`});
      // First use: a direct call() on a fresh (unbuilt) layer, as tfjs users do.
      const call = layer.call(query, opts as never) as tf.Tensor;
      const [, scores] = layer.call(query, {...opts, returnAttentionScores: true} as never) as tf.Tensor[];
      const apply = layer.apply(query, opts as never) as tf.Tensor;
      const callAndReturn = layer.callAndReturnAttentionScores(query, opts);
      const p: Prepared = {spec, layer, inputs: {query, value, key, attentionMask}, opts, ours: {call, scores, apply, callAndReturn}};
      if (spec.graph) {
        // The same layer in a functional model: tensors become the node's inputs [q, v, k, mask].
        const ins: tfl.SymbolicTensor[] = [];
        const sym = (t: tf.Tensor, n: string) => {
          const s = tfl.input({shape: t.shape.slice(1), name: `${n}_${i}`});
          ins.push(s);
          return s;
        };
        const qIn = sym(query, 'q');
        const symOpts: Record<string, unknown> = {};
        if (value) symOpts.value = sym(value, 'v');
        if (key) symOpts.key = sym(key, 'k');
        if (attentionMask) symOpts.attentionMask = sym(attentionMask, 'm');
        if (spec.causal) symOpts.useCausalMask = true;
        const out = layer.apply(qIn, symOpts as never) as tfl.SymbolicTensor;
        const model = tfl.model({inputs: ins, outputs: out});
        const feeds = [query, value, key, attentionMask].filter((t): t is tf.Tensor => t != null);
        p.ours.graph = model.predict(feeds) as tf.Tensor;
        const reloaded = await karat.io.loadFromMemory(await karat.io.saveToMemory(model));
        p.ours.reloaded = reloaded.predict(feeds) as tf.Tensor;
        reloaded.dispose();
      }
      prepared.push(p);
      cases.push({
        kind: 'call', ...spec.args, weights: layer.getWeights().map(arr), query: arr(query),
        ...(value ? {value: arr(value)} : {}), ...(key ? {key: arr(key)} : {}),
        ...(attentionMask ? {attentionMask: arr(attentionMask)} : {}),
        ...(query.kerasMask ? {queryMask: arr(query.kerasMask)} : {}),
        ...(value?.kerasMask ? {valueMask: arr(value.kerasMask)} : {}),
        ...(spec.causal ? {useCausalMask: true} : {}),
      });
    }
    stock = runStock(cases);
  });

  SPECS.forEach((spec, i) => {
    it(`${spec.name}: call, apply, callAndReturnAttentionScores${spec.graph ? ', a functional model and its reload' : ''} equal the stock layer`, () => {
      const p = prepared[i], ref = stock[i];
      assert.ok(ref.error == null, `the stock layer failed: ${ref.error}`);
      close(p.ours.call, ref.output!, 2e-6, 'call output');
      close(p.ours.scores, ref.scores!, 1e-6, 'scores');
      close(p.ours.apply, ref.output!, 2e-6, 'apply output');
      close(p.ours.callAndReturn[0], ref.output!, 2e-6, 'callAndReturnAttentionScores output');
      close(p.ours.callAndReturn[1], ref.scores!, 1e-6, 'callAndReturnAttentionScores scores');
      if (spec.graph) {
        close(p.ours.graph!, ref.output!, 2e-6, 'functional model output');
        close(p.ours.reloaded!, ref.output!, 2e-6, 'reloaded model output');
      }
    });
  });

  it('masks really act: each masked case differs from the same layer without its masks', () => {
    for (const p of prepared) {
      if (!p.spec.mask && !p.spec.causal && !p.spec.implicit) continue;
      // (useCausalMask: false explicitly: a layer applied in a graph with useCausalMask keeps it as its default)
      const plain = p.layer.call(stripMask(p.inputs.query), {value: stripMask(p.inputs.value ?? p.inputs.query), key: p.inputs.key,
                                                              useCausalMask: false} as never) as tf.Tensor;
      assert.ok(maxDiff(plain, p.ours.call) > 1e-4, `${p.spec.name}: the masks changed nothing`);
    }
  });

  it('computeOutputShape: tfjs-layers\' cases and errors, upstream form [queryShape, valueShape, keyShape | null]', () => {
    const ok: Array<[number[], number[], number[] | null, number[] | null]> = [
      [[null, 40, 80], [null, 20, 80], null, null] as never,
      [[null, 40, 80], [null, 20, 80], [null, 20, 30], null] as never,
      [[null, 40, 80], [null, 20, 80], null, [30, 40]] as never,
      [[null, 40, 80], [null, 20, 80], [null, 20, 30], [15, 50]] as never,
    ];
    const bad: Array<[number[], number[], number[] | null]> = [
      [[null, 40, 80], [null, 20, 70], null] as never,                      // query/value last dims
      [[null, 40, 80], [null, 20, 80], [null, 10, 70]] as never,            // value/key tokens
      [[null, 40, 20, 30, 80], [null, 10, 10, 50, 80], [null, 10, 15, 50, 20]] as never,  // high dim
    ];
    const ref = runStock([
      ...ok.map(([q, v, k, o]) => ({kind: 'shape', numHeads: 2, keyDim: 2, valueDim: 2, ...(o ? {outputShape: o} : {}), shapes: [q, v, k]})),
      ...bad.map(([q, v, k]) => ({kind: 'shape', numHeads: 4, keyDim: 2, valueDim: 2, shapes: [q, v, k]})),
    ]);
    ok.forEach(([q, v, k, o], i) => {
      const layer = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2, valueDim: 2, outputShape: o ?? undefined});
      assert.deepEqual(layer.computeOutputShape([q, v, k] as never), ref[i].shape, `case ${i}`);
      // ... and equals the shape of a real call (batch 1)
      const b = (s: number[]) => [1, ...s.slice(1)];
      const out = layer.call(tf.ones(b(q)), {value: tf.ones(b(v)), ...(k ? {key: tf.ones(b(k))} : {})} as never) as tf.Tensor;
      assert.deepEqual(out.shape, b(ref[i].shape as number[]));
    });
    bad.forEach(([q, v, k], i) => {
      assert.ok(ref[ok.length + i].error != null, `the stock layer rejects bad case ${i}`);
      const layer = new KArAtMultiHeadAttention({numHeads: 4, keyDim: 2, valueDim: 2});
      assert.throws(() => layer.computeOutputShape([q, v, k] as never),
                    (e: Error) => e instanceof karat.KArAtArgumentError && /must be equal|must have shape \[batch, tokens, features\]/.test(e.message));
    });
    // The exact message of the case: query 80 vs value 70, no key.
    assert.throws(() => new KArAtMultiHeadAttention({numHeads: 4, keyDim: 2}).computeOutputShape([[null, 40, 80], [null, 20, 70], null] as never),
                  /last dimension of 'queryShape' and 'valueShape' must be equal .* 80 and 70/);
  });

  after(() => {
    for (const p of prepared) {
      tf.dispose([...Object.values(p.inputs).filter((t): t is tf.Tensor => t != null), p.ours.call, p.ours.scores, p.ours.apply,
                  ...p.ours.callAndReturn, ...(p.ours.graph ? [p.ours.graph, p.ours.reloaded!] : [])]);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describeWithBackends('KArAtMultiHeadAttention: the cases of tfjs-layers\' multihead_attention_test.ts (softmax)', {backends: ['cpu']}, function() {
  for (const [label, valueDim, outputShape, outDims] of [
    ['key value same proj', undefined, undefined, [8, 16]], ['key value different proj', 6, [12], [8, 12]],
  ] as const) {
    it(`non masked attention (${label}): symbolic apply(query, {value})`, () => {
      const layer = new KArAtMultiHeadAttention({numHeads: 3, keyDim: 4, valueDim, outputShape: outputShape as never});
      const query = tfl.input({shape: [8, 16]}), value = tfl.input({shape: [4, 16]});
      const output = layer.apply(query, {value}) as tfl.SymbolicTensor;
      assert.deepEqual(output.shape, [null, ...outDims]);
    });
  }

  it('non masked self attention: apply(query, {value: query})', () => {
    const query = tfl.input({shape: [8, 16]});
    const output = new KArAtMultiHeadAttention({numHeads: 3, keyDim: 4}).apply(query, {value: query}) as tfl.SymbolicTensor;
    assert.deepEqual(output.shape, [null, 8, 16]);
  });

  it('attention scores, with and without values', () => {
    const layer = new KArAtMultiHeadAttention({numHeads: 3, keyDim: 4});
    const query = tf.ones([1, 8, 16]);
    let [output, coef] = layer.callAndReturnAttentionScores(query, {value: query});
    assert.deepEqual([output.shape, coef.shape], [[1, 8, 16], [1, 3, 8, 8]]);
    const layer2 = new KArAtMultiHeadAttention({numHeads: 3, keyDim: 4});
    [output, coef] = layer2.callAndReturnAttentionScores(query, {value: tf.ones([1, 6, 16])});
    assert.deepEqual([output.shape, coef.shape], [[1, 8, 16], [1, 3, 8, 6]]);
  });

  for (const useBias of [true, false]) {
    it(`masked attention ${useBias ? 'with' : 'no'} bias: a random mask changes the output; weight count`, () => {
      const layer = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2, useBias});
      const query = rnd([4, 4, 8], 1), value = rnd([4, 2, 8], 2);
      const masked = layer.call(query, {value, attentionMask: randomMask([4, 4, 2], 3)} as never) as tf.Tensor;
      const unmasked = layer.call(query, {value, attentionMask: tf.ones([4, 4, 2])} as never) as tf.Tensor;
      assert.ok(maxDiff(masked, unmasked) > 1e-4);
      // The stock layer's sublayers have kernel (+ bias) each: 8 weights with bias, 4 without.
      assert.equal(layer.trainableWeights.length, useBias ? 8 : 4);
    });
  }

  it('initializers: a TruncatedNormal kernel initializer gives different q/k/v/output kernels', () => {
    const layer = new KArAtMultiHeadAttention({numHeads: 3, keyDim: 4, kernelInitializer: tfl.initializers.truncatedNormal({stddev: 0.02})});
    const output = layer.call(tf.ones([1, 8, 12]), {value: tf.ones([1, 8, 12])} as never) as tf.Tensor;
    assert.deepEqual(output.shape, [1, 8, 12]);
    const w = Object.fromEntries(layer.weights.map(v => [v.originalName.split('/').slice(1).join('/'), v.read()]));
    for (const other of ['key/kernel', 'value/kernel']) assert.ok(maxDiff(w['query/kernel'], w[other]) > 1e-6);
    assert.ok(tf.max(tf.abs(tf.sub(tf.reshape(w['query/kernel'], [-1]), tf.reshape(w['attentionOutput/kernel'], [-1])))).dataSync()[0] > 1e-6);
  });

  it('dropout: training and inference outputs differ; inference is deterministic', () => {
    const layer = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2, dropout: 0.5});
    const from = tf.ones([8, 4, 8]), to = rnd([8, 2, 8], 5);
    const train = layer.call(from, {value: to, training: true} as never) as tf.Tensor;
    const test1 = layer.call(from, {value: to, training: false} as never) as tf.Tensor;
    const test2 = layer.apply(from, {value: to}) as tf.Tensor;
    assert.ok(maxDiff(train, test1) > 1e-4);
    assert.equal(maxDiff(test1, test2), 0);
  });

  it('causal mask value: Embedding(maskZero) masks + useCausalMask equal the manual mask (the upstream "causal" and "not_causal")', () => {
    const {query, value, manual, causal} = maskedEmbeddings();
    const layer = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2});
    const output = layer.call(query, {value, useCausalMask: true} as never) as tf.Tensor;
    const byHand = layer.call(stripMask(query), {value: stripMask(value), attentionMask: tf.logicalAnd(tf.cast(manual, 'bool'), tf.cast(causal, 'bool'))} as never) as tf.Tensor;
    close(output, byHand, 1e-6, 'causal');
    const notCausal = layer.call(query, {value} as never) as tf.Tensor;
    close(notCausal, layer.call(stripMask(query), {value: stripMask(value), attentionMask: manual} as never) as tf.Tensor, 1e-6, 'not causal');
  });

  it('does not leak memory: a call on a built layer adds exactly its output', () => {
    const layer = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2});
    const query = tf.ones([1, 4, 8]);
    layer.call(query, {value: query} as never);
    for (const opts of [{value: query}, {value: query, useCausalMask: true}, {value: query, attentionMask: tf.ones([4, 4])},
                        {value: query, returnAttentionScores: true}]) {
      const mask = (opts as Opts).attentionMask;
      const n = tf.memory().numTensors;
      const out = layer.call(query, opts as never);
      assert.equal(tf.memory().numTensors, n + (Array.isArray(out) ? 2 : 1), JSON.stringify(Object.keys(opts)));
      tf.dispose(out);
      (mask as tf.Tensor | undefined)?.dispose();
    }
  });

  it('high dimensional attention (rank-4/5 inputs, attentionAxes [2], [1, 2], [2, 3]) is a documented limit: named errors', () => {
    for (const axes of [[2], [1, 2], [2, 3]]) {
      assert.throws(() => new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2, attentionAxes: axes}),
                    (e: Error) => e instanceof karat.KArAtArgumentError && /argument 'attentionAxes' supports only attention over the token axis/.test(e.message));
    }
    const layer = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2});
    assert.throws(() => layer.call(rnd([3, 3, 4, 8], 1), {value: rnd([3, 3, 2, 8], 2)} as never),
                  (e: Error) => e instanceof karat.KArAtArgumentError && /input 'query' must have shape \[batch, tokens, features\]/.test(e.message));
  });
});
