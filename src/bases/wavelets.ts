/**
 * Wavelet bases (Wav-KAN style): φ̂_pq(x) = w_pq · ψ((x − τ_pq) / s_pq), with learnable
 * weight w ~ Normal, translation τ = 0 and scale s = 1 at initialisation. Parameters
 * 'waveletWeight', 'translation', 'scale', each [h, R, N].
 */
import * as tf from '@tensorflow/tfjs-core';

import {Basis, normalInit} from './types';
import * as tfl from '@tensorflow/tfjs-layers';
import {perFunction, sumOverTokens, tileOverOutputs} from './util';

type Psi = (x: tf.Tensor4D, tokens: number, outputs: number) => tf.Tensor4D;

const gauss = (x: tf.Tensor4D) => tf.exp(tf.mul(tf.square(x), -0.5));
const MEXICAN_HAT_C = 2 / (Math.pow(Math.PI, 0.25) * Math.sqrt(3));

/** ν(t) = t⁴(35 − 84t + 70t² − 20t³), t clamped to [0, 1]. */
function meyerNu(t: tf.Tensor4D): tf.Tensor4D {
  const c = tf.clipByValue(t, 0, 1);
  const poly = tf.add(35, tf.mul(c, tf.add(-84, tf.mul(c, tf.add(70, tf.mul(c, -20))))));
  return tf.mul(tf.pow(c, 4), poly);
}

export const PSI: Record<string, Psi> = {
  /** 2/(π^¼ √3) (1 − x²) e^{−x²/2} */
  mexican_hat: (x) => tf.mul(tf.mul(tf.sub(1, tf.square(x)), gauss(x)), MEXICAN_HAT_C),
  /** cos(5x) e^{−x²/2} */
  morlet: (x) => tf.mul(tf.cos(tf.mul(x, 5)), gauss(x)),
  /** −d/dx e^{−x²/2} = x e^{−x²/2} */
  dog: (x) => tf.mul(x, gauss(x)),
  /** sin(π|x|) · window: 1 for |x| ≤ ½, cos(π/2 · ν(2|x| − 1)) for ½ < |x| < 1, 0 beyond. */
  meyer: (x) => {
    const v = tf.abs(x);
    // Masks from tf.step (whose gradient is zero): comparison ops have no gradient in tfjs.
    const inner = tf.sub(1, tf.step(tf.sub(v, 0.5)));  // |x| <= ½
    const taper = tf.cos(tf.mul(meyerNu(tf.sub(tf.mul(v, 2), 1)), Math.PI / 2));
    const win = tf.add(inner, tf.mul(tf.sub(1, inner), taper));
    return tf.mul(tf.sin(tf.mul(v, Math.PI)), win);
  },
  /**
   * sinc(x/π) = sin(x)/x (1 at 0) times a symmetric Hamming window over the N input
   * positions q: 0.54 − 0.46 cos(2πq/(N−1)).
   */
  shannon: (x, tokens, outputs) => {
    const isZero = tf.sub(1, tf.step(tf.abs(x)));
    const safe = tf.add(x, isZero);
    const sinc = tf.add(tf.mul(tf.div(tf.sin(safe), safe), tf.sub(1, isZero)), isZero);
    const w = Array.from({length: tokens},
        (_, q) => (tokens === 1 ? 1 : 0.54 - 0.46 * Math.cos(2 * Math.PI * q / (tokens - 1))));
    const window = tf.tensor4d(
        Array.from({length: outputs}, () => w).flat(), [1, 1, 1, outputs * tokens]);
    return tf.mul(sinc, window);
  },
};

export function waveletBasis(name: keyof typeof PSI): Basis {
  const psi = PSI[name];
  return {
    name,
    params(cfg, d) {
      const shape = [d.heads, d.outputs, d.tokens];
      return [
        {
          name: 'waveletWeight', shape,
          initializer: normalInit(cfg, cfg.init === 'normal' ? 1 : 1 / Math.sqrt(d.tokens), 5),
        },
        {name: 'translation', shape, initializer: tfl.initializers.zeros()},
        {name: 'scale', shape, initializer: tfl.initializers.ones()},
      ];
    },
    hidden(scores, params, _cfg, d) {
      const x = tileOverOutputs(scores, d.outputs);
      const xt = tf.div(tf.sub(x, perFunction(params.translation)), perFunction(params.scale));
      const phi = tf.mul(psi(xt as tf.Tensor4D, d.tokens, d.outputs), perFunction(params.waveletWeight));
      return sumOverTokens(phi as tf.Tensor4D, d.outputs);
    },
  };
}
