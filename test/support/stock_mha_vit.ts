/**
 * Builds a small ViT-like model from tfjs-layers 4.22's own layers, with its MultiHeadAttention
 * taken from the ESM build (deep import, the only place it exists), the way a user would, and
 * prints what `model.save` gives for it as JSON: {modelTopology, weightSpecs, weightData
 * (base64)}. tfjs 4.22 does not track that layer's sublayer (Q/K/V/output) weights in a
 * LayersModel, so they are missing from the saved weights. Runs in its own process because the
 * ESM build is a second copy of tfjs-layers (see stock_mha_reference.ts).
 */
import '@tensorflow/tfjs-backend-cpu';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops.js';
import {input, layers, model} from '@tensorflow/tfjs-layers/dist/index.js';
import {MultiHeadAttention} from '@tensorflow/tfjs-layers/dist/layers/nlp/multihead_attention.js';

async function main() {
  await tf.setBackend('cpu');
  const x = input({shape: [5, 8], name: 'tokens'});
  let h = layers.layerNormalization({name: 'norm1'}).apply(x) as never;
  const mha = new MultiHeadAttention({numHeads: 2, keyDim: 4, name: 'mha_0'});
  h = mha.apply(h, {value: h}) as never;
  h = layers.add({name: 'add1'}).apply([x, h]) as never;
  h = layers.dense({units: 8, activation: 'gelu', name: 'mlp'}).apply(h) as never;
  h = layers.globalAveragePooling1d({name: 'gap'}).apply(h) as never;
  const out = layers.dense({units: 3, name: 'head'}).apply(h) as never;
  const m = model({inputs: x, outputs: out, name: 'stock_mha_vit'});
  let saved: tf.io.ModelArtifacts | null = null;
  await m.save(tf.io.withSaveHandler(async (a) => {
    saved = a;
    return {modelArtifactsInfo: {dateSaved: new Date(), modelTopologyType: 'JSON'}};
  }));
  const a = saved! as tf.io.ModelArtifacts;
  process.stdout.write(JSON.stringify({
    modelTopology: a.modelTopology, weightSpecs: a.weightSpecs,
    weightData: Buffer.from(a.weightData as ArrayBuffer).toString('base64'),
    liveWeights: m.weights.map((w) => w.originalName),
  }));
}

main().catch((e) => {
  process.stderr.write(String(e?.stack ?? e));
  process.exit(1);
});
