/**
 * Loss landscape along the two principal directions of the optimiser path (Li, Xu, Taylor,
 * Studer, Goldstein, "Visualizing the Loss Landscape of Neural Nets", NeurIPS 2018, §7):
 * given the weights at T checkpoints w_0 … w_{T−1} of one training run, the directions d1, d2
 * are the top two principal components of the deviations {w_i − w_{T−1}}, and the loss is
 * evaluated at w_{T−1} + α·d1 + β·d2 on a grid that covers the projected path. The path's
 * coordinates (α_i, β_i) are the projections of w_i − w_{T−1} onto (d1, d2).
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';

import {KArAtArgumentError} from '../../core/validate';
import {concatArrays} from '../io/typed_arrays';
import {principalComponents} from './linalg';

/** Concatenates weight arrays into one vector. */
export function flattenWeights(weights: ArrayLike<number>[]): Float32Array {
  return concatArrays(Float32Array, weights);
}

export interface PathProjection {
  /** Unit directions d1, d2 (flattened weight space). */
  directions: [Float64Array, Float64Array];
  /** (α, β) of each checkpoint. */
  path: Array<[number, number]>;
  /** Fraction of the path's squared deviation explained by d1 and d2. */
  explained: [number, number];
  /** The centre w_{T−1}. */
  center: Float32Array;
}

/** PCA of the optimiser path, centred on the last checkpoint. `checkpoints` are flattened weights. */
export function projectPath(checkpoints: ArrayLike<number>[]): PathProjection {
  if (!Array.isArray(checkpoints) || checkpoints.length < 3) {
    throw new KArAtArgumentError(
        `lossLandscape: need at least 3 checkpoints of one run for two principal directions, got ${checkpoints?.length}`);
  }
  const last = checkpoints[checkpoints.length - 1];
  const pcs = principalComponents(checkpoints, 2, last);
  return {
    directions: [pcs.directions[0], pcs.directions[1]],
    path: pcs.coords.map(c => [c[0], c[1]] as [number, number]),
    explained: [pcs.explained[0], pcs.explained[1]],
    center: Float32Array.from(last),
  };
}

export interface LandscapeOptions {
  /** The model the checkpoints belong to (its weights are restored afterwards). */
  model: tfl.LayersModel;
  /** Weights of each checkpoint, in the order of model.weights (T >= 3). */
  checkpoints: Float32Array[][];
  /** Loss of the model with its current weights, e.g. from crossEntropyLoss(). */
  loss: (model: tfl.LayersModel) => number | Promise<number>;
  /** Grid points per axis (default 15). */
  resolution?: number;
  /** Extra room around the path, as a fraction of its extent per axis (default 0.3). */
  margin?: number;
  /** Called after each grid point (done, total). */
  onProgress?: (done: number, total: number) => void;
}

export interface LandscapeResult extends PathProjection {
  alphas: Float64Array;
  betas: Float64Array;
  /** Loss at (alphas[i], betas[j]) in losses[j·nα + i]. */
  losses: Float64Array;
  /** Loss at each checkpoint. */
  pathLosses: number[];
}

function axisRange(vals: number[], margin: number, n: number): Float64Array {
  let lo = Math.min(0, ...vals), hi = Math.max(0, ...vals);
  const span = hi - lo || 1;
  lo -= margin * span;
  hi += margin * span;
  return Float64Array.from({length: n}, (_, k) => lo + (hi - lo) * k / (n - 1));
}

/** Evaluates the loss surface on the plane of the path's two principal directions. */
export async function lossLandscape(o: LandscapeOptions): Promise<LandscapeResult> {
  const model = o.model;
  const weights = model.weights;
  const sizes = weights.map(w => (w.shape as number[]).reduce((a, b) => a * b, 1));
  o.checkpoints.forEach((ck, i) => {
    if (ck.length !== weights.length || ck.some((w, k) => w.length !== sizes[k])) {
      throw new KArAtArgumentError(
          `lossLandscape: checkpoint ${i} does not match the model's ${weights.length} weights ` +
          `(sizes ${sizes.slice(0, 4).join(', ')}${sizes.length > 4 ? ', …' : ''})`);
    }
  });
  const res = o.resolution ?? 15;
  if (!Number.isInteger(res) || res < 2) throw new KArAtArgumentError(`lossLandscape: resolution must be an integer >= 2, got ${res}`);
  const proj = projectPath(o.checkpoints.map(flattenWeights));
  const margin = o.margin ?? 0.3;
  const alphas = axisRange(proj.path.map(p => p[0]), margin, res);
  const betas = axisRange(proj.path.map(p => p[1]), margin, res);
  const original = model.getWeights().map(t => tf.clone(t));  // restored in `finally`
  const [d1, d2] = proj.directions;
  const setAt = (a: number, b: number) => {
    const flat = new Float32Array(proj.center.length);
    for (let k = 0; k < flat.length; k++) flat[k] = proj.center[k] + a * d1[k] + b * d2[k];
    setFlat(model, flat, sizes);
  };
  const total = res * res + o.checkpoints.length;
  let done = 0;
  try {
    const losses = new Float64Array(res * res);
    for (let j = 0; j < res; j++) {
      for (let i = 0; i < res; i++) {
        setAt(alphas[i], betas[j]);
        losses[j * res + i] = await o.loss(model);
        o.onProgress?.(++done, total);
      }
    }
    const pathLosses: number[] = [];
    for (const ck of o.checkpoints) {
      setFlat(model, flattenWeights(ck), sizes);
      pathLosses.push(await o.loss(model));
      o.onProgress?.(++done, total);
    }
    return {...proj, alphas, betas, losses, pathLosses};
  } finally {
    model.setWeights(original);
    original.forEach(t => t.dispose());
  }
}

function setFlat(model: tfl.LayersModel, flat: Float32Array, sizes: number[]) {
  let o = 0;
  const ts = model.weights.map((w, k) => {
    const t = tf.tensor(flat.subarray(o, o + sizes[k]), w.shape as number[], 'float32');
    o += sizes[k];
    return t;
  });
  model.setWeights(ts);
  ts.forEach(t => t.dispose());
}

/**
 * Mean cross-entropy of the model on (images, labels), as a loss for lossLandscape. Takes the
 * model's outputs as probabilities when they already sum to 1 per row (softmax head), as
 * logits otherwise.
 */
export function crossEntropyLoss(images: tf.Tensor4D, labels: ArrayLike<number>):
    (model: tfl.LayersModel) => number {
  return (model) => tf.tidy(() => {
    const out = model.predict(images) as tf.Tensor2D;
    const K = out.shape[1];
    const sums = tf.sum(out, 1).dataSync();
    const minOut = tf.min(out).dataSync()[0];
    const isProb = minOut >= 0 && Array.from(sums).every(s => Math.abs(s - 1) < 1e-3);
    const logp = isProb ? tf.log(tf.maximum(out, 1e-12)) : tf.logSoftmax(out);
    const y = tf.oneHot(tf.tensor1d(Array.from(labels), 'int32'), K);
    return -tf.sum(tf.mul(logp, y)).dataSync()[0] / out.shape[0];
  });
}
