/**
 * Gradient of the FourierKArAt kernel: (dScores, dCoeffs) through fourierKArAtGrad, which runs
 * the FourierKArAtGrad kernel of the active backend or its composite.
 */
import type {GradConfig, Tensor, Tensor4D, Tensor5D} from '@tensorflow/tfjs-core';

import {fourierKArAtGrad} from '../fourier_karat';
import {FourierKArAt} from '../kernel_names';

export const fourierKArAtGradConfig: GradConfig = {
  kernelName: FourierKArAt,
  inputsToSave: ['scores', 'coeffs'],
  gradFunc: (dy: Tensor | Tensor[], saved: Tensor[]) => {
    const [scores, coeffs] = saved as [Tensor4D, Tensor5D];
    const [dS, dC] = fourierKArAtGrad(dy as Tensor4D, scores, coeffs);
    return {scores: () => dS, coeffs: () => dC};
  },
};
