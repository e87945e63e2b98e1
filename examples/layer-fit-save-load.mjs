// Add a KArAt attention layer to a tfjs model, train it, save it to disk and load it back.
//   npm run build && node examples/layer-fit-save-load.mjs [output folder]
import {mkdtempSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import * as karat from 'tfjs-karat/node';   // in a browser: 'tfjs-karat' (no file system)

await tf.setBackend('cpu');
const tokens = 9, features = 8, classes = 3;

// A sequence classifier: Fourier-KArAt self-attention, then pooling and a softmax layer.
const model = tfl.sequential();
model.add(new karat.KArAtMultiHeadAttention({
  numHeads: 2, keyDim: 4, inputShape: [tokens, features],
  attentionActivation: {basis: 'fourier', grid: 3, rank: 4},
}));
model.add(tfl.layers.globalAveragePooling1d());
model.add(tfl.layers.dense({units: classes, activation: 'softmax'}));
model.compile({optimizer: tf.train.adam(0.01), loss: 'sparseCategoricalCrossentropy'});

// Toy data: the class is which third of the sequence holds the largest values.
const n = 48;
const labels = Array.from({length: n}, (_, i) => i % classes);
const x = tf.tidy(() => {
  const noise = tf.randomNormal([n, tokens, features], 0, 0.3, 'float32', 1);
  const thirds = tf.reshape(tf.oneHot(tf.tensor1d(labels, 'int32'), classes), [n, classes, 1]);
  const bump = tf.reshape(tf.tile(thirds, [1, 1, tokens / classes]), [n, tokens, 1]);  // [n, 9, 1]
  return tf.add(noise, bump);
});
const y = tf.tensor1d(labels, 'float32');

const history = await model.fit(x, y, {epochs: 15, batchSize: 16, verbose: 0});
const losses = history.history.loss;
console.log(`loss: ${losses[0].toFixed(3)} -> ${losses[losses.length - 1].toFixed(3)}`);

// Save as model.json + weights.bin (the tfjs-node layout), then load with plain tfjs.
const dir = process.argv[2] ?? mkdtempSync(join(tmpdir(), 'karat-example-'));
await model.save(`file://${dir}`);
const loaded = await tfl.loadLayersModel(`file://${join(dir, 'model.json')}`);
const before = model.predict(x).dataSync(), after = loaded.predict(x).dataSync();
const maxDiff = before.reduce((m, v, i) => Math.max(m, Math.abs(v - after[i])), 0);
console.log(`saved to ${dir}; reloaded predictions differ by ${maxDiff}`);
