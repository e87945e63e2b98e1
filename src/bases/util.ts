/** Layout helpers for bases whose functions depend non-linearly on per-(p, q) parameters. */
import * as tf from '@tensorflow/tfjs-core';

/** S [B,h,N,N] -> X [B,h,N,R·N] with X[..., p·N + q] = S[..., q] (rank 4 for webgpu). */
export function tileOverOutputs(scores: tf.Tensor4D, outputs: number): tf.Tensor4D {
  return tf.tile(scores, [1, 1, 1, outputs]);
}

/** A per-function parameter [h, R, N] -> [1, h, 1, R·N], broadcastable against tiled scores. */
export function perFunction(p: tf.Tensor): tf.Tensor4D {
  const [h, R, N] = p.shape;
  return tf.reshape(p, [1, h, 1, R * N]);
}

/** Slice k of the last axis of a [h, R, N, K] parameter, as [1, h, 1, R·N]. */
export function perFunctionSlice(p: tf.Tensor, k: number): tf.Tensor4D {
  const [h, R, N] = p.shape;
  return tf.reshape(tf.slice(p, [0, 0, 0, k], [h, R, N, 1]), [1, h, 1, R * N]);
}

/** Φ [B,h,N,R·N] -> Σ_q Φ[..., p·N + q], shape [B,h,N,R]. */
export function sumOverTokens(phi: tf.Tensor4D, outputs: number): tf.Tensor4D {
  const [B, h, N, RN] = phi.shape;
  const tokens = RN / outputs;
  return tf.reshape(tf.sum(tf.reshape(phi, [B, h, N * outputs, tokens]), 3), [B, h, N, outputs]);
}

/**
 * ĥ = Σ_q Σ_j C[h,p,q,j] f_j(S[..,q]) for a basis linear in its coefficients.
 * features: [h, B·N, N·J] (q major, j minor); coeffs: [h, R, N·J]. Returns [B,h,N,R].
 */
export function linearBasisHidden(
    features: tf.Tensor3D, coeffs: tf.Tensor3D, B: number, N: number): tf.Tensor4D {
  const [h, R] = coeffs.shape;
  const hid = tf.matMul(features, coeffs, false, true);  // [h, B·N, R]
  return tf.transpose(tf.reshape(hid, [h, B, N, R]), [1, 0, 2, 3]);
}
