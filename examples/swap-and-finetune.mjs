// Swap the softmax attention of an existing ViT for Fourier-KArAt and fine-tune it: every other
// weight (patch embedding, Q/K/V/output projections, MLPs, norms, head) is kept.
//   npm run build && node examples/swap-and-finetune.mjs
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as karat from 'tfjs-karat';

await tf.setBackend('cpu');

// Stands in for your trained model: any LayersModel (or a model.json URL) whose attention
// layers are KArAtMultiHeadAttention or tfjs-layers/Keras MultiHeadAttention.
const vit = karat.models.vit({dim: 16, depth: 2, heads: 2, mlpRatio: 2, imageSize: 8, patchSize: 4,
                              numClasses: 4, attention: 'softmax'});

const report = await karat.swapAttentionWithReport(vit, {type: 'fourier', grid: 3, rank: 4});
const model = report.model;
console.log(`swapped ${report.attentionLayers.length} attention layers; kept ${report.copied.length} weight tensors, ${report.initialised.length} new`);

// Fine-tune: a few epochs on (toy) labelled images.
const x = tf.randomUniform([32, 8, 8, 3], 0, 1, 'float32', 7);
const y = tf.oneHot(tf.tensor1d(Array.from({length: 32}, (_, i) => i % 4), 'int32'), 4);
model.compile({optimizer: tf.train.adam(3e-3), loss: 'categoricalCrossentropy'});
const history = await model.fit(x, y, {epochs: 10, batchSize: 8, verbose: 0});
const losses = history.history.loss;
console.log(`fine-tune loss: ${losses[0].toFixed(3)} -> ${losses[losses.length - 1].toFixed(3)}`);
