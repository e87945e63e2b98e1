/**
 * Fourier basis: φ̂_pq(x) = Σ_{m=1..G} A[p,q,m] cos(m x) + B[p,q,m] sin(m x).
 * Parameter 'coeffs' [h, 2, R, N, G] (the op contract's layout); uses the fused op.
 */
import * as tf from '@tensorflow/tfjs-core';

import {fourierKArAtHidden} from '../../core/fourier_karat';
import {Basis, coeffStd, normalInit} from './types';

export const fourierBasis: Basis = {
  name: 'fourier',
  params(cfg, d) {
    return [{
      name: 'coeffs',
      shape: [d.heads, 2, d.outputs, d.tokens, cfg.grid],
      initializer: normalInit(cfg, coeffStd(cfg, d.tokens, cfg.grid), 1),
    }];
  },
  hidden(scores, params) {
    return fourierKArAtHidden(scores, params.coeffs as tf.Tensor5D);
  },
};
