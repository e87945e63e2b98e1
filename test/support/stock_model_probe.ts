/**
 * Loads a user's stock tfjs-layers model (model.json artifacts given as a JSON file: argv[2],
 * weightData base64) in a fresh process, optionally after `import 'tfjs-karat'` (argv[3] ===
 * 'with-karat'), and prints what tfjs resolved and ran: which classes the registry maps the
 * stock names to, which classes the loaded layers are, the kernels of a predict and of a
 * gradient step (tf.profile), and the output values.
 */
import '@tensorflow/tfjs-backend-cpu';

import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {readFileSync} from 'fs';

async function main() {
  if (process.argv[3] === 'with-karat') await import('../../src/index');
  await tf.setBackend('cpu');
  (tf.backend() as unknown as {firstUse?: boolean}).firstUse = false;
  const map = tf.serialization.SerializationMap.getMap().classNameMap;
  const stock: Record<string, unknown> = {
    LayerNormalization: tfl.layers.layerNormalization({name: 'probe_ln'}).constructor,
    Dense: tfl.layers.dense({units: 1, name: 'probe_dense'}).constructor,
  };
  const registry = Object.fromEntries(Object.entries(stock).map(([n, c]) => [n, map[n]?.[0] === c]));
  const a = JSON.parse(readFileSync(process.argv[2], 'utf8'));
  const wd = Buffer.from(a.weightData, 'base64');
  const artifacts = {...a, weightData: wd.buffer.slice(wd.byteOffset, wd.byteOffset + wd.byteLength)};
  const model = await tfl.loadLayersModel(tf.io.fromMemory(artifacts));
  const layers = model.layers.map((l) => ({name: l.name, className: l.getClassName(),
                                           stock: stock[l.getClassName()] == null || l.constructor === stock[l.getClassName()]}));
  const x = tf.randomNormal([2, ...(model.inputs[0].shape.slice(1) as number[])], 0, 1, 'float32', 3);
  const pred = await tf.profile(() => model.predict(x) as tf.Tensor);
  const out = Array.from((pred.result as tf.Tensor).dataSync());
  const vars = model.trainableWeights.map((w) => (w as unknown as {val: tf.Variable}).val);
  const grad = await tf.profile(() => {
    const r = tf.variableGrads(() => tf.mean(tf.square(model.apply(x, {training: true}) as tf.Tensor)) as tf.Scalar, vars);
    return [r.value, ...Object.values(r.grads)];
  });
  const grads = (grad.result as tf.Tensor[]).map((t) => Array.from(t.dataSync()));
  process.stdout.write(JSON.stringify({
    registry, layers, out, grads,
    predictKernels: pred.kernels.map((k) => k.name), gradKernels: grad.kernels.map((k) => k.name),
  }));
}

main().catch((e) => {
  process.stderr.write(String(e?.stack ?? e));
  process.exit(1);
});
