/**
 * Matmuls of per-example tensors [B, h, ...] with per-head weights [h, ...] without
 * broadcasting the batch axis (tfjs's BatchMatMul gradient does not reduce broadcast
 * batch dims): fold B into the row axis and run one [h]-batched matmul.
 */
import * as tf from '@tensorflow/tfjs-core';

/** x [B,h,M,K] times w[h] ([h,K,L], or [h,L,K] with transposeW) -> [B,h,M,L]. */
export function matMulPerHead(x: tf.Tensor4D, w: tf.Tensor3D, transposeW = false): tf.Tensor4D {
  const [B, h, M, K] = x.shape;
  const L = transposeW ? w.shape[1] : w.shape[2];
  const xh = tf.reshape(tf.transpose(x, [1, 0, 2, 3]), [h, B * M, K]);
  const y = tf.matMul(xh, w, false, transposeW);
  return tf.transpose(tf.reshape(y, [h, B, M, L]), [1, 0, 2, 3]);
}

/** w[h]ᵀ v for w [h,N,r] and v [B,h,N,dv] -> [B,h,r,dv]. */
export function matMulPerHeadTransposedLeft(w: tf.Tensor3D, v: tf.Tensor4D): tf.Tensor4D {
  const [B, h, N, dv] = v.shape;
  const r = w.shape[2];
  const vh = tf.reshape(tf.transpose(v, [1, 2, 0, 3]), [h, N, B * dv]);
  const y = tf.matMul(w, vh, true, false);  // [h, r, B·dv]
  return tf.transpose(tf.reshape(y, [h, r, B, dv]), [2, 0, 1, 3]);
}
