/**
 * Helpers of the fused layer-op suites (test/fused_layers.test.ts on cpu and webgpu,
 * test/tensorflow/layers.tftest.ts on tensorflow): deterministic inputs, LayerNorm and
 * bias+GELU with their gradients, and one training batch's loss and gradients of a model with
 * the fused-layers flag on or off.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

import * as karat from '../../src/index';
import {KARAT_FUSED_LAYERS_FLAG} from '../../core/fused_layers';

export function rand(shape: number[], scale = 1, seed = 1): Float32Array {
  let s = seed * 9301 + 49297;
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s * 9301 + 49297) % 233280;
    out[i] = scale * (s / 233280 * 2 - 1);
  }
  return out;
}

export async function values(ts: tf.Tensor[]): Promise<Float32Array[]> {
  return Promise.all(ts.map((t) => t.data() as Promise<Float32Array>));
}

/** LayerNorm forward, and grads of sum(y · w) w.r.t. x, gamma, beta through autodiff. */
export function layerNormAll(x: tf.Tensor, g: tf.Tensor1D, b: tf.Tensor1D, w: tf.Tensor, eps: number): tf.Tensor[] {
  return tf.tidy(() => {
    const y = karat.layerNorm(x, g, b, eps);
    const grads = tf.grads((xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) =>
        tf.sum(tf.mul(karat.layerNorm(xx, gg as tf.Tensor1D, bb as tf.Tensor1D, eps), w)))([x, g, b]);
    return [y, ...grads];
  });
}

export function biasGeluAll(x: tf.Tensor, b: tf.Tensor1D, w: tf.Tensor): tf.Tensor[] {
  return tf.tidy(() => {
    const y = karat.biasGelu(x, b);
    const grads = tf.grads((xx: tf.Tensor, bb: tf.Tensor) =>
        tf.sum(tf.mul(karat.biasGelu(xx, bb as tf.Tensor1D), w)))([x, b]);
    return [y, ...grads];
  });
}

/**
 * Loss and every parameter gradient of one training batch, with flag KARAT_FUSED_LAYERS
 * set to `fused` (restored to its default after), and the kernel names tf.profile saw.
 */
export async function lossAndGrads(model: tfl.LayersModel, x: tf.Tensor, y: tf.Tensor, fused: boolean) {
  const vars = model.trainableWeights.map((w) => (w as unknown as {val: tf.Variable}).val);
  tf.env().set(KARAT_FUSED_LAYERS_FLAG, fused);
  try {
    const info = await tf.profile(() => {
      const r = tf.variableGrads(() => tf.mean(tfl.metrics.categoricalCrossentropy(
          y, model.apply(x, {training: true}) as tf.Tensor)) as tf.Scalar, vars);
      return [r.value, ...Object.values(r.grads)];
    });
    const out = info.result as tf.Tensor[];
    const vals = await values(out);
    tf.dispose(out);
    return {vals, names: info.kernels.map((k) => k.name)};
  } finally {
    tf.env().set(KARAT_FUSED_LAYERS_FLAG, true);
  }
}

/** The values of fn() (tidied) on cpu, then on `backend`: [cpu, backend]. */
export async function onCpuAnd(backend: string, fn: () => tf.Tensor[]): Promise<[Float32Array[], Float32Array[]]> {
  await tf.setBackend('cpu');
  const ref = await values(tf.tidy(fn));
  await tf.setBackend(backend);
  const got = await values(tf.tidy(fn));
  return [ref, got];
}
