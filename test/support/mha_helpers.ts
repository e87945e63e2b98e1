/**
 * Shared helpers of the KArAtMultiHeadAttention contract suites (test/mha_contract*.test.ts):
 * tensors as plain arrays, tolerance checks, seeded random inputs and masks, and the
 * Embedding(maskZero) inputs of the upstream causal-mask tests.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {strict as assert} from 'assert';

import * as karat from '../../src/index';

export type Arr = {shape: number[], data: number[], bool?: boolean};
export type Opts = karat.AttentionCallOptions;
export const FOURIER: karat.AttentionActivation = {type: 'fourier', grid: 2, rank: 2};

export function arr(t: tf.Tensor): Arr {
  return {shape: t.shape, data: Array.from(t.dataSync()), ...(t.dtype === 'bool' ? {bool: true} : {})};
}

export function maxDiff(a: tf.Tensor | Arr, b: tf.Tensor | Arr): number {
  const x = a instanceof tf.Tensor ? arr(a) : a, y = b instanceof tf.Tensor ? arr(b) : b;
  assert.deepEqual(x.shape, y.shape, 'shapes differ');
  return x.data.reduce((m, v, i) => Math.max(m, Math.abs(v - y.data[i])), 0);
}

export function close(a: tf.Tensor | Arr, b: tf.Tensor | Arr, tol: number, what: string) {
  const d = maxDiff(a, b);
  assert.ok(d < tol, `${what}: differs by ${d} (tolerance ${tol})`);
}

export function rnd(shape: number[], seed: number): tf.Tensor {
  return tf.randomNormal(shape, 0, 1, 'float32', seed);
}

/** A random 0/1 mask (float32, or bool) with at least one 1 per row, so no row is fully masked. */
export function randomMask(shape: number[], seed: number, bool = false): tf.Tensor {
  return tf.tidy(() => {
    const m = tf.cast(tf.greater(tf.randomUniform(shape, 0, 1, 'float32', seed), 0.4), 'float32');
    const first = tf.concat([tf.ones([...shape.slice(0, -1), 1]), tf.zeros([...shape.slice(0, -1), shape[shape.length - 1] - 1])], -1);
    const r = tf.maximum(m, first);
    return bool ? tf.cast(r, 'bool') : r;
  });
}

/** Embedding outputs with their kerasMask, as in the upstream causal-mask tests. */
export function maskedEmbeddings(): {query: tf.Tensor, value: tf.Tensor, manual: tf.Tensor, causal: tf.Tensor} {
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

export function stripMask(t: tf.Tensor): tf.Tensor {
  return tf.clone(t);  // a clone carries no kerasMask
}
