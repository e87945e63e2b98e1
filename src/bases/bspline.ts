/**
 * B-spline basis as in the original KAN (Liu et al. 2024): G intervals on gridRange
 * [lo, hi], order k, extended by k knots on each side, G + k basis functions per φ̂.
 * Outside the extended grid every basis function is 0. Parameter 'splineCoeffs' [h, R, N, G+k].
 */
import * as tf from '@tensorflow/tfjs-core';

import {Basis, coeffStd, normalInit, ResolvedOperatorConfig} from './types';
import {linearBasisHidden} from './util';

/** Knots t_0..t_{G+2k} of the extended uniform grid. */
export function splineKnots(cfg: ResolvedOperatorConfig): number[] {
  const [lo, hi] = cfg.gridRange;
  const G = cfg.grid, k = cfg.splineOrder;
  const step = (hi - lo) / G;
  return Array.from({length: G + 2 * k + 1}, (_, j) => lo + (j - k) * step);
}

/** B-spline values of x (any shape) for the G+k functions, by the Cox–de Boor recursion. */
export function splineBasisValues(x: tf.Tensor, cfg: ResolvedOperatorConfig): tf.Tensor[] {
  const t = splineKnots(cfg);
  const k = cfg.splineOrder;
  // Order 0: indicators of (t_j, t_{j+1}] from tf.step, whose gradient is zero
  // (comparison ops have no gradient in tfjs).
  const above = t.map((tj) => tf.step(tf.sub(x, tj)));
  let b: tf.Tensor[] = [];
  for (let j = 0; j < t.length - 1; j++) b.push(tf.sub(above[j], above[j + 1]));
  for (let d = 1; d <= k; d++) {
    const next: tf.Tensor[] = [];
    for (let j = 0; j < b.length - 1; j++) {
      const left = tf.mul(tf.div(tf.sub(x, t[j]), t[j + d] - t[j]), b[j]);
      const right = tf.mul(tf.div(tf.sub(t[j + d + 1], x), t[j + d + 1] - t[j + 1]), b[j + 1]);
      next.push(tf.add(left, right));
    }
    b = next;
  }
  return b;
}

export const bsplineBasis: Basis = {
  name: 'bspline',
  params(cfg, d) {
    const J = cfg.grid + cfg.splineOrder;
    return [{
      name: 'splineCoeffs',
      shape: [d.heads, d.outputs, d.tokens, J],
      initializer: normalInit(cfg, coeffStd(cfg, d.tokens, J), 2),
    }];
  },
  hidden(scores, params, cfg, d) {
    const [B, h, N] = scores.shape;
    const J = cfg.grid + cfg.splineOrder;
    const sT = tf.reshape(tf.transpose(scores, [1, 0, 2, 3]), [h, B * N * N, 1]);
    const feats = tf.reshape(tf.concat(splineBasisValues(sT, cfg), 2), [h, B * N, N * J]);
    const c = tf.reshape(params.splineCoeffs, [h, d.outputs, N * J]);
    return linearBasisHidden(feats as tf.Tensor3D, c as tf.Tensor3D, B, N);
  },
};
