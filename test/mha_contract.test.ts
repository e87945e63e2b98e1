/**
 * KArAtMultiHeadAttention as a drop-in for tfjs-layers' MultiHeadAttention.
 *
 * 1. The calling contract, numerically against tfjs-layers 4.22's own layer (deep ESM import,
 *    run in a child process: test/support/stock_mha_cases.ts) on copied weights: call / apply
 *    (eager, fresh and built), functional models (predict, save/load), value, key,
 *    attentionMask of rank 2/3/4, useCausalMask, implicit (kerasMask) masks, scores.
 * 2. The cases of tfjs-layers' multihead_attention_test.ts and the behaviours of Keras'
 *    multi_head_attention_test.py, in our own code, on softmax and (where meaningful) on
 *    Fourier-KArAt; documented KArAt limits assert the named KArAtArgumentError.
 * 3. Every case the issue found silently wrong (value ignored, masks ignored, fresh-layer
 *    TypeError, computeOutputShape, attentionAxes -2, rank-4 masks) fails on the old layer.
 * cpu backend, tiny shapes.
 */
import '@tensorflow/tfjs-backend-cpu';

import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {strict as assert} from 'assert';

import * as karat from '../src/index';
import {KArAtMultiHeadAttention} from '../src/index';
import {describeWithBackends} from './support/backend_suites';
import {runStock} from './support/stock_mha_run';

type Arr = {shape: number[], data: number[], bool?: boolean};
type Opts = karat.AttentionCallOptions;
const FOURIER: karat.AttentionActivation = {type: 'fourier', grid: 2, rank: 2};

function arr(t: tf.Tensor): Arr {
  return {shape: t.shape, data: Array.from(t.dataSync()), ...(t.dtype === 'bool' ? {bool: true} : {})};
}

function maxDiff(a: tf.Tensor | Arr, b: tf.Tensor | Arr): number {
  const x = a instanceof tf.Tensor ? arr(a) : a, y = b instanceof tf.Tensor ? arr(b) : b;
  assert.deepEqual(x.shape, y.shape, 'shapes differ');
  return x.data.reduce((m, v, i) => Math.max(m, Math.abs(v - y.data[i])), 0);
}

function close(a: tf.Tensor | Arr, b: tf.Tensor | Arr, tol: number, what: string) {
  const d = maxDiff(a, b);
  assert.ok(d < tol, `${what}: differs by ${d} (tolerance ${tol})`);
}

function rnd(shape: number[], seed: number): tf.Tensor {
  return tf.randomNormal(shape, 0, 1, 'float32', seed);
}

/** A random 0/1 mask (float32, or bool) with at least one 1 per row, so no row is fully masked. */
function randomMask(shape: number[], seed: number, bool = false): tf.Tensor {
  return tf.tidy(() => {
    const m = tf.cast(tf.greater(tf.randomUniform(shape, 0, 1, 'float32', seed), 0.4), 'float32');
    const first = tf.concat([tf.ones([...shape.slice(0, -1), 1]), tf.zeros([...shape.slice(0, -1), shape[shape.length - 1] - 1])], -1);
    const r = tf.maximum(m, first);
    return bool ? tf.cast(r, 'bool') : r;
  });
}

/** Embedding outputs with their kerasMask, as in the upstream causal-mask tests. */
function maskedEmbeddings(): {query: tf.Tensor, value: tf.Tensor, manual: tf.Tensor, causal: tf.Tensor} {
  const qIds = tf.tensor2d([[1, 2, 3, 0, 0], [3, 3, 1, 1, 2], [1, 0, 0, 0, 0]]);
  const vIds = tf.tensor2d([[5, 4, 0], [3, 0, 0], [2, 1, 1]]);
  const query = tfl.layers.embedding({inputDim: 4, outputDim: 8, maskZero: true, embeddingsInitializer: tfl.initializers.randomNormal({seed: 1})}).apply(qIds) as tf.Tensor;
  const value = tfl.layers.embedding({inputDim: 6, outputDim: 8, maskZero: true, embeddingsInitializer: tfl.initializers.randomNormal({seed: 2})}).apply(vIds) as tf.Tensor;
  const rows = (r: number[], n: number) => Array(n).fill(r);
  const manual = tf.tensor3d([
    [...rows([1, 1, 0], 3), ...rows([0, 0, 0], 2)],
    rows([1, 0, 0], 5),
    [[1, 1, 1], ...rows([0, 0, 0], 4)],
  ]);
  const causal = tf.tensor3d([[[1, 0, 0], [1, 1, 0], [1, 1, 1], [1, 1, 1], [1, 1, 1]]]);
  tf.dispose([qIds, vIds]);
  return {query, value, manual, causal};
}

function stripMask(t: tf.Tensor): tf.Tensor {
  return tf.clone(t);  // a clone carries no kerasMask
}

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

// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------

describeWithBackends('KArAtMultiHeadAttention: cases that used to be silently ignored', {backends: ['cpu']}, function() {
  it('call(q, {value}) on a fresh layer builds it (was: TypeError reading \'read\')', () => {
    const out = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2}).call(rnd([2, 3, 4], 1), {value: rnd([2, 5, 4], 2)} as never) as tf.Tensor;
    assert.deepEqual(out.shape, [2, 3, 4]);
  });

  it('a built layer honours value (was: self-attention over the query) and key', () => {
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

  it('call(x, {attentionMask}), apply(q, {value, attentionMask}) and {useCausalMask: true} act (were: ignored)', () => {
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

  it('a functional model Embedding(maskZero) -> KArAtMultiHeadAttention(softmax) masks (was: the unmasked output)', () => {
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

  it('computeOutputShape([queryShape, valueShape, null]) works (was: TypeError reading \'length\')', () => {
    assert.deepEqual(new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2}).computeOutputShape([[null, 4, 8], [null, 3, 8], null] as never), [null, 4, 8]);
  });

  it('attentionAxes -2 on rank-3 inputs is accepted (was: rejected)', () => {
    const out = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2, attentionAxes: -2}).call(rnd([1, 3, 4], 1), {} as never) as tf.Tensor;
    assert.deepEqual(out.shape, [1, 3, 4]);
  });

  it('a [B, h, T, S] mask works (was: an internal error in mergeHeadsProject)', () => {
    const layer = new KArAtMultiHeadAttention({numHeads: 2, keyDim: 2});
    layer.apply([rnd([2, 4, 6], 0), rnd([2, 3, 6], 0)]);  // built
    const [out] = layer.callAndReturnAttentionScores(rnd([2, 4, 6], 1), {value: rnd([2, 3, 6], 2), attentionMask: randomMask([2, 2, 4, 3], 3)});
    assert.deepEqual(out.shape, [2, 4, 6]);
  });

  it('unknown options and arguments are named errors (were: ignored)', () => {
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
