/**
 * Composite Fourier-KArAt built from stock tfjs ops. Used automatically on any backend
 * without a registered fused kernel (or with KARAT_FUSED off), and exported so tests and
 * benchmarks can compare against it. It materialises the cos/sin features
 * ([h, B·N, N·G] each, i.e. the paper's direct implementation), so it costs
 * O(B·h·N²·G) memory. Every intermediate is rank <= 4 (tfjs-backend-webgpu cannot
 * compile several programs for rank-5 tensors).
 */
import * as tf from '@tensorflow/tfjs-core';

/** [1, 1, G] with values 1..G. */
function harmonics(G: number): tf.Tensor3D {
  return tf.reshape(tf.range(1, G + 1, 1, 'float32'), [1, 1, G]);
}

/** cos(m·S) and sin(m·S) laid out as [h, B·N, N·G] (q major, m minor). */
export function fourierFeatures(scores: tf.Tensor4D, G: number): {cos: tf.Tensor3D, sin: tf.Tensor3D} {
  const [B, h, N] = scores.shape;
  const angles = tf.mul(
      tf.reshape(tf.transpose(scores, [1, 0, 2, 3]), [h, B * N * N, 1]), harmonics(G));
  const a = tf.reshape(angles, [h, B * N, N * G]);
  return {cos: tf.cos(a) as tf.Tensor3D, sin: tf.sin(a) as tf.Tensor3D};
}

/** Splits coeffs [h,2,r,N,G] into A and B, each [h, r, N·G]. */
export function splitCoeffs(coeffs: tf.Tensor5D): {a: tf.Tensor3D, b: tf.Tensor3D} {
  const [h, , r, N, G] = coeffs.shape;
  const flat = tf.reshape(coeffs, [h, 2, r * N * G]);
  const a = tf.reshape(tf.slice(flat, [0, 0, 0], [h, 1, r * N * G]), [h, r, N * G]) as tf.Tensor3D;
  const b = tf.reshape(tf.slice(flat, [0, 1, 0], [h, 1, r * N * G]), [h, r, N * G]) as tf.Tensor3D;
  return {a, b};
}

/** ĥ [B,h,N,r] from scores [B,h,N,N] and coeffs [h,2,r,N,G], differentiable by tfjs autodiff. */
export function compositeFourierKArAtHidden(scores: tf.Tensor4D, coeffs: tf.Tensor5D): tf.Tensor4D {
  return tf.tidy(() => {
    const [B, h, N] = scores.shape;
    const [, , r, , G] = coeffs.shape;
    const f = fourierFeatures(scores, G);
    const {a, b} = splitCoeffs(coeffs);
    const hid = tf.add(tf.matMul(f.cos, a, false, true), tf.matMul(f.sin, b, false, true));
    return tf.transpose(tf.reshape(hid, [h, B, N, r]), [1, 0, 2, 3]);
  });
}

/**
 * The analytic backward of the op (spec §3) from tfjs ops: [dScores, dCoeffs].
 * Used for backends that register a forward kernel but no gradient kernel.
 */
export function compositeFourierKArAtGrad(
    dy: tf.Tensor4D, scores: tf.Tensor4D, coeffs: tf.Tensor5D): [tf.Tensor4D, tf.Tensor5D] {
  return tf.tidy(() => {
    const [B, h, N] = scores.shape;
    const [, , r, , G] = coeffs.shape;
    const f = fourierFeatures(scores, G);
    const {a, b} = splitCoeffs(coeffs);
    const g = tf.reshape(tf.transpose(dy, [1, 0, 2, 3]), [h, B * N, r]);
    const aAgg = tf.matMul(g, a);   // [h, BN, NG]
    const bAgg = tf.matMul(g, b);
    const m = tf.reshape(tf.tile(tf.range(1, G + 1, 1, 'float32'), [N]), [1, 1, N * G]);
    const perM = tf.mul(tf.sub(tf.mul(bAgg, f.cos), tf.mul(aAgg, f.sin)), m);
    const dS = tf.transpose(
        tf.reshape(tf.sum(tf.reshape(perM, [h, B * N, N, G]), 3), [h, B, N, N]), [1, 0, 2, 3]);
    const dA = tf.matMul(g, f.cos, true, false);  // [h, r, NG]
    const dB = tf.matMul(g, f.sin, true, false);
    const dC = tf.reshape(tf.stack([dA, dB], 1), [h, 2, r, N, G]);
    return [dS as tf.Tensor4D, dC as tf.Tensor5D];
  });
}
