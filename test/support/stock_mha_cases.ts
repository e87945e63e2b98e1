/**
 * Runs tfjs-layers 4.22's own MultiHeadAttention (deep ESM import, see stock_mha_reference.ts for
 * why it runs in a separate process) on a batch of cases given as JSON on stdin, and prints one
 * JSON result per case: {output, scores} | {shape} | {error}.
 *
 * A case: {kind: 'call', numHeads, keyDim, valueDim?, useBias?, outputShape?, weights: Arr[],
 *          query: Arr, value?: Arr, key?: Arr, attentionMask?: Arr (dtype bool if `bool`),
 *          queryMask?: Arr, valueMask?: Arr, keyMask?: Arr (set as kerasMask, as Embedding does),
 *          useCausalMask?: boolean}
 *       | {kind: 'shape', numHeads, keyDim, valueDim?, outputShape?, shapes: [q, v, k | null]}
 * Weights are in the order of KArAtMultiHeadAttention.getWeights(): query kernel(/bias), key ...,
 * value ..., attentionOutput ...
 */
import '@tensorflow/tfjs-backend-cpu';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops.js';
import {MultiHeadAttention} from '@tensorflow/tfjs-layers/dist/layers/nlp/multihead_attention.js';

interface Arr {shape: number[]; data: number[]; bool?: boolean}
interface Case {
  kind: 'call' | 'shape';
  numHeads: number; keyDim: number; valueDim?: number; useBias?: boolean; outputShape?: number[];
  weights?: Arr[]; query?: Arr; value?: Arr; key?: Arr; attentionMask?: Arr;
  queryMask?: Arr; valueMask?: Arr; keyMask?: Arr; useCausalMask?: boolean;
  shapes?: Array<Array<number | null> | null>;
}

const t = (a: Arr) => tf.tensor(a.data, a.shape, a.bool ? 'bool' : 'float32');
const arr = (x: tf.Tensor) => ({shape: x.shape, data: Array.from(x.dataSync())});

function run(c: Case): unknown {
  const mha = new MultiHeadAttention({
    numHeads: c.numHeads, keyDim: c.keyDim, valueDim: c.valueDim, useBias: c.useBias,
    outputShape: c.outputShape as never,
  });
  if (c.kind === 'shape') return {shape: mha.computeOutputShape(c.shapes as never)};
  const query = t(c.query!);
  const value = c.value ? t(c.value) : query;
  const key = c.key ? t(c.key) : undefined;
  mha.callAndReturnAttentionScores(query, {value, key});  // builds the EinsumDense sublayers
  // tslint:disable-next-line:no-any
  const m = mha as any;
  const w = c.weights!.map(t);
  const per = c.useBias === false ? 1 : 2;
  [m._queryDense, m._keyDense, m._valueDense, m._outputDense].forEach((d, i) => d.setWeights(w.slice(i * per, (i + 1) * per)));
  if (c.queryMask) query.kerasMask = t(c.queryMask);
  if (c.valueMask) value.kerasMask = t(c.valueMask);
  if (c.keyMask && key) key.kerasMask = t(c.keyMask);
  const [out, scores] = mha.callAndReturnAttentionScores(query, {
    value, key, attentionMask: c.attentionMask ? t(c.attentionMask) : undefined,
    useCausalMask: c.useCausalMask, training: false,
  });
  return {output: arr(out), scores: arr(scores)};
}

async function main() {
  const chunks: Buffer[] = [];
  for await (const ch of process.stdin) chunks.push(ch as Buffer);
  const cases = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Case[];
  await tf.setBackend('cpu');
  (tf.backend() as unknown as {firstUse?: boolean}).firstUse = false;
  const results = cases.map((c) => {
    try {
      return run(c);
    } catch (e) {
      return {error: String((e as Error)?.message ?? e)};
    }
  });
  process.stdout.write(JSON.stringify(results));
}

main().catch(e => {
  process.stderr.write(String(e?.stack ?? e));
  process.exit(1);
});
