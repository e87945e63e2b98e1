/**
 * Fused layer ops for fast training: LayerNorm, bias + GELU and softmax over the last axis (the
 * AdamW update is adamw.ts). Their kernels (KArAtLayerNorm, KArAtBiasGelu, KArAtSoftmax and
 * their *Grad kernels) are named in kernel_names.ts.
 *
 * Each public op runs the kernel registered for the active backend when there is one and the
 * KARAT_FUSED flag is on (kernels-webgpu/ registers them for 'webgpu'); otherwise a composite
 * of stock tfjs ops with the same math (the reference, used on cpu/wasm/webgl and by tests).
 * GELU is the exact (erf) GELU of tfjs-layers' 'gelu' activation; LayerNorm is tfjs-layers'
 * LayerNormalization over the last axis (biased variance, epsilon inside the square root).
 *
 * KARAT_FUSED_LAYERS (tf.env flag, flags.ts) decides whether the plugin's layers call these ops;
 * fusedLayersOn() / fusedLayerKernelOn() are the checks.
 */
import * as tf from '@tensorflow/tfjs-core';
import {op} from '@tensorflow/tfjs-core';

import {hasFusedKernel} from './flags';
import {KArAtBiasGelu, KArAtBiasGeluGrad, KArAtLayerNorm, KArAtLayerNormGrad, KArAtSoftmax, KArAtSoftmaxGrad} from './kernel_names';
import {checkTensor, KArAtArgumentError} from './validate';


// ------------------------------------------------------------------ LayerNorm

function rows2d(x: tf.Tensor): tf.Tensor2D {
  const C = x.shape[x.rank - 1];
  return tf.reshape(x, [x.size / C, C]);
}

/** Composite LayerNorm over the last axis of x2 [M, C] (differentiable by tfjs autodiff). */
export function compositeLayerNorm(x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D, epsilon: number): tf.Tensor2D {
  return tf.tidy(() => {
    const mean = tf.mean(x, -1, true);
    const xc = tf.sub(x, mean);
    const variance = tf.mean(tf.square(xc), -1, true);
    const xhat = tf.mul(xc, tf.rsqrt(tf.add(variance, epsilon)));
    return tf.add(tf.mul(xhat, gamma), beta) as tf.Tensor2D;
  });
}

/** Analytic LayerNorm backward from tfjs ops: [dx, dgamma, dbeta]. */
export function compositeLayerNormGrad(
    dy: tf.Tensor2D, x: tf.Tensor2D, gamma: tf.Tensor1D, epsilon: number): [tf.Tensor2D, tf.Tensor1D, tf.Tensor1D] {
  return tf.tidy(() => {
    const mean = tf.mean(x, -1, true);
    const xc = tf.sub(x, mean);
    const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(xc), -1, true), epsilon));
    const xhat = tf.mul(xc, rstd);
    const g = tf.mul(dy, gamma);
    const dx = tf.mul(rstd, tf.sub(tf.sub(g, tf.mean(g, -1, true)), tf.mul(xhat, tf.mean(tf.mul(g, xhat), -1, true))));
    return [dx as tf.Tensor2D, tf.sum(tf.mul(dy, xhat), 0) as tf.Tensor1D, tf.sum(dy, 0) as tf.Tensor1D];
  });
}

function checkLayerNormArgs(op: string, x: unknown, gamma: unknown, beta: unknown, epsilon: unknown) {
  if (!(x instanceof tf.Tensor) || x.rank < 1) {
    checkTensor(op, 'x', x, ['...', 'C']);
  }
  const xt = x as tf.Tensor;
  if (xt.dtype !== 'float32') throw new KArAtArgumentError(`${op}: argument 'x' must have dtype float32, got ${xt.dtype}`);
  const C = xt.shape[xt.rank - 1];
  const g = checkTensor(op, 'gamma', gamma, ['C'], [C]) as tf.Tensor1D;
  const b = beta == null ? null : checkTensor(op, 'beta', beta, ['C'], [C]) as tf.Tensor1D;
  if (typeof epsilon !== 'number' || !(epsilon >= 0)) {
    throw new KArAtArgumentError(`${op}: argument 'epsilon' must be a number >= 0, got ${String(epsilon)}`);
  }
  return {x: xt, gamma: g, beta: b, C};
}

/**
 * LayerNorm over the last axis: (x - mean) / sqrt(var + epsilon) · gamma + beta, any rank.
 * One dispatch forward and four backward with the webgpu kernel.
 */
function layerNorm_(x: tf.Tensor, gamma: tf.Tensor1D, beta: tf.Tensor1D, epsilon = 1e-3): tf.Tensor {
  const c = checkLayerNormArgs('layerNorm', x, gamma, beta, epsilon);
  const x2 = rows2d(c.x);
  const y = hasFusedKernel(KArAtLayerNorm) ?
      tf.engine().runKernel(KArAtLayerNorm, {x: x2, gamma: c.gamma, beta: c.beta!}, {epsilon} as never) as tf.Tensor :
      compositeLayerNorm(x2, c.gamma, c.beta!, epsilon);
  return tf.reshape(y, c.x.shape);
}
export const layerNorm = op({layerNorm_});

/** [dx, dgamma, dbeta] of layerNorm for upstream dy (the fused kernel when there is one). */
function layerNormGrad_(dy: tf.Tensor, x: tf.Tensor, gamma: tf.Tensor1D, epsilon = 1e-3): [tf.Tensor, tf.Tensor1D, tf.Tensor1D] {
  const c = checkLayerNormArgs('layerNormGrad', x, gamma, null, epsilon);
  checkTensor('layerNormGrad', 'dy', dy, c.x.shape.map((_, i) => `d${i}`), c.x.shape);
  const x2 = rows2d(c.x), dy2 = rows2d(dy);
  const r = hasFusedKernel(KArAtLayerNormGrad) ?
      tf.engine().runKernel(KArAtLayerNormGrad, {dy: dy2, x: x2, gamma: c.gamma}, {epsilon} as never) as unknown as tf.Tensor[] :
      compositeLayerNormGrad(dy2, x2, c.gamma, epsilon);
  return [tf.reshape(r[0], c.x.shape), r[1] as tf.Tensor1D, r[2] as tf.Tensor1D];
}
export const layerNormGrad = op({layerNormGrad_});

// ------------------------------------------------------------------ bias + GELU

const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** gelu(x + bias) from stock ops, exactly as tfjs-layers' 'gelu' activation after a bias add. */
export function compositeBiasGelu(x: tf.Tensor2D, bias: tf.Tensor1D): tf.Tensor2D {
  return tf.tidy(() => {
    const z = tf.add(x, bias);
    return tf.mul(z, tf.mul(0.5, tf.add(1, tf.erf(tf.mul(z, SQRT1_2))))) as tf.Tensor2D;
  });
}

/** Analytic backward of gelu(x + bias): [dx, dbias]. gelu'(z) = Φ(z) + z·φ(z). */
export function compositeBiasGeluGrad(dy: tf.Tensor2D, x: tf.Tensor2D, bias: tf.Tensor1D): [tf.Tensor2D, tf.Tensor1D] {
  return tf.tidy(() => {
    const z = tf.add(x, bias);
    const cdf = tf.mul(0.5, tf.add(1, tf.erf(tf.mul(z, SQRT1_2))));
    const pdf = tf.mul(INV_SQRT_2PI, tf.exp(tf.mul(tf.square(z), -0.5)));
    const dx = tf.mul(dy, tf.add(cdf, tf.mul(z, pdf))) as tf.Tensor2D;
    return [dx, tf.sum(dx, 0) as tf.Tensor1D];
  });
}

function checkBiasArgs(op: string, x: unknown, bias: unknown) {
  if (!(x instanceof tf.Tensor) || x.rank < 1) checkTensor(op, 'x', x, ['...', 'C']);
  const xt = x as tf.Tensor;
  if (xt.dtype !== 'float32') throw new KArAtArgumentError(`${op}: argument 'x' must have dtype float32, got ${xt.dtype}`);
  const C = xt.shape[xt.rank - 1];
  return {x: xt, bias: checkTensor(op, 'bias', bias, ['C'], [C]) as tf.Tensor1D};
}

/** gelu(x + bias) (exact, erf-based GELU) with bias over the last axis, any rank. */
function biasGelu_(x: tf.Tensor, bias: tf.Tensor1D): tf.Tensor {
  const c = checkBiasArgs('biasGelu', x, bias);
  const x2 = rows2d(c.x);
  const y = hasFusedKernel(KArAtBiasGelu) ?
      tf.engine().runKernel(KArAtBiasGelu, {x: x2, bias: c.bias}, {}) as tf.Tensor :
      compositeBiasGelu(x2, c.bias);
  return tf.reshape(y, c.x.shape);
}
export const biasGelu = op({biasGelu_});

/** [dx, dbias] of biasGelu for upstream dy. */
function biasGeluGrad_(dy: tf.Tensor, x: tf.Tensor, bias: tf.Tensor1D): [tf.Tensor, tf.Tensor1D] {
  const c = checkBiasArgs('biasGeluGrad', x, bias);
  checkTensor('biasGeluGrad', 'dy', dy, c.x.shape.map((_, i) => `d${i}`), c.x.shape);
  const x2 = rows2d(c.x), dy2 = rows2d(dy);
  const r = hasFusedKernel(KArAtBiasGeluGrad) ?
      tf.engine().runKernel(KArAtBiasGeluGrad, {dy: dy2, x: x2, bias: c.bias}, {}) as unknown as tf.Tensor[] :
      compositeBiasGeluGrad(dy2, x2, c.bias);
  return [tf.reshape(r[0], c.x.shape), r[1] as tf.Tensor1D];
}
export const biasGeluGrad = op({biasGeluGrad_});

// ------------------------------------------------------------------ softmax (attention)

/** Softmax backward from stock ops: y · (dy - Σ_c dy·y). */
export function compositeSoftmaxGrad(dy: tf.Tensor2D, y: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.mul(y, tf.sub(dy, tf.sum(tf.mul(dy, y), -1, true))) as tf.Tensor2D);
}

/**
 * Softmax over the last axis (any rank), with a one-dispatch backward on webgpu (stock tfjs's
 * Softmax gradient is four kernels). Composite: tf.softmax (its stock gradient).
 */
function softmaxLastAxis_(logits: tf.Tensor): tf.Tensor {
  if (!(logits instanceof tf.Tensor) || logits.rank < 1) checkTensor('softmaxLastAxis', 'logits', logits, ['...', 'C']);
  if (logits.dtype !== 'float32') {
    throw new KArAtArgumentError(`softmaxLastAxis: argument 'logits' must have dtype float32, got ${logits.dtype}`);
  }
  if (!hasFusedKernel(KArAtSoftmax)) return tf.softmax(logits, -1);
  return tf.reshape(tf.engine().runKernel(KArAtSoftmax, {logits: rows2d(logits)}, {}) as tf.Tensor, logits.shape);
}
export const softmaxLastAxis = op({softmaxLastAxis_});

/**
 * Backward of a softmax over the last axis (any rank): y · (dy - Σ dy·y) for the softmax output
 * y. One dispatch with the webgpu kernel; the composite elsewhere.
 */
function softmaxLastAxisGrad_(dy: tf.Tensor, y: tf.Tensor): tf.Tensor {
  if (!hasFusedKernel(KArAtSoftmaxGrad)) return compositeSoftmaxGrad(dy as tf.Tensor2D, y as tf.Tensor2D);
  return tf.reshape(tf.engine().runKernel(KArAtSoftmaxGrad, {dy: rows2d(dy), y: rows2d(y)}, {}) as tf.Tensor, y.shape);
}
export const softmaxLastAxisGrad = op({softmaxLastAxisGrad_});

