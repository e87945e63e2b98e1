/**
 * Runs tfjs-layers 4.22's own MultiHeadAttention (which the package's public entry does not
 * export: it lives only in the ESM build, dist/layers/nlp/multihead_attention.js) on the input
 * and weights given as JSON on stdin, and prints {output, scores} as JSON.
 *
 * Run in a separate process: importing the ESM build loads a second copy of the tfjs-layers
 * engine, which re-registers every stock layer class and must not leak into other tests.
 * Input: {numHeads, keyDim, query: {shape, data}, weights: [{shape, data}] x 8 in the order
 * query kernel/bias, key kernel/bias, value kernel/bias, attentionOutput kernel/bias}.
 */
import '@tensorflow/tfjs-backend-cpu';

import * as tf from '@tensorflow/tfjs-core';
// The stock layers use chained tensor methods (x.add(...)), which tfjs-core alone does not
// register; this ESM module patches the global Tensor class that the CJS tfjs-core shares.
import '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops.js';
import {MultiHeadAttention} from '@tensorflow/tfjs-layers/dist/layers/nlp/multihead_attention.js';

interface Arr {shape: number[]; data: number[]}

async function main() {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const inp = JSON.parse(Buffer.concat(chunks).toString('utf8')) as
      {numHeads: number, keyDim: number, query: Arr, weights: Arr[]};
  await tf.setBackend('cpu');
  const t = (a: Arr) => tf.tensor(a.data, a.shape, 'float32');
  const q = t(inp.query);
  const mha = new MultiHeadAttention({numHeads: inp.numHeads, keyDim: inp.keyDim});
  mha.callAndReturnAttentionScores(q, {value: q});  // builds the EinsumDense sublayers
  // tslint:disable-next-line:no-any
  const m = mha as any;
  const w = inp.weights.map(t);
  m._queryDense.setWeights([w[0], w[1]]);
  m._keyDense.setWeights([w[2], w[3]]);
  m._valueDense.setWeights([w[4], w[5]]);
  m._outputDense.setWeights([w[6], w[7]]);
  const [out, scores] = mha.callAndReturnAttentionScores(q, {value: q});
  process.stdout.write(JSON.stringify({
    output: {shape: out.shape, data: Array.from(out.dataSync())},
    scores: {shape: scores.shape, data: Array.from(scores.dataSync())},
    weightShapes: [m._queryDense, m._keyDense, m._valueDense, m._outputDense]
        .flatMap((d: {weights: Array<{shape: number[]}>}) => d.weights.map(v => v.shape)),
  }));
}

main().catch(e => {
  process.stderr.write(String(e?.stack ?? e));
  process.exit(1);
});
