/**
 * Rational basis (m, n): φ̂(x) = (a_0 + a_1 x + … + a_m x^m) / (1 + |b_1 x + … + b_n x^n|).
 * The denominator is >= 1 by construction, so no coefficient choice can divide by zero
 * (the "safe" Padé form of rational KANs). Parameters 'numerator' [h, R, N, m+1] and, when
 * n >= 1, 'denominator' [h, R, N, n].
 */
import * as tf from '@tensorflow/tfjs-core';

import {Basis, coeffStd, normalInit} from './types';
import {perFunctionSlice, sumOverTokens, tileOverOutputs} from './util';

/** Horner evaluation of Σ_k c_k x^k for k = from..to, coefficients as slices of `p`. */
function horner(x: tf.Tensor4D, p: tf.Tensor, count: number): tf.Tensor4D {
  let acc: tf.Tensor4D = perFunctionSlice(p, count - 1);
  for (let k = count - 2; k >= 0; k--) acc = tf.add(tf.mul(acc, x), perFunctionSlice(p, k));
  return acc;
}

export const rationalBasis: Basis = {
  name: 'rational',
  params(cfg, d) {
    const [m, n] = cfg.rationalOrder;
    const specs = [{
      name: 'numerator',
      shape: [d.heads, d.outputs, d.tokens, m + 1],
      initializer: normalInit(cfg, coeffStd(cfg, d.tokens, m + 1), 3),
    }];
    if (n >= 1) {
      specs.push({
        name: 'denominator',
        shape: [d.heads, d.outputs, d.tokens, n],
        initializer: normalInit(cfg, cfg.init === 'normal' ? 1 : 1 / Math.sqrt(n), 4),
      });
    }
    return specs;
  },
  hidden(scores, params, cfg, d) {
    const [, n] = cfg.rationalOrder;
    const x = tileOverOutputs(scores, d.outputs);
    const num = horner(x, params.numerator, cfg.rationalOrder[0] + 1);
    let phi = num;
    if (n >= 1) {
      const q = tf.mul(horner(x, params.denominator, n), x);  // b_1 x + … + b_n x^n
      phi = tf.div(num, tf.add(tf.abs(q), 1));
    }
    return sumOverTokens(phi, d.outputs);
  },
};
