/**
 * Gradient of the KArAtBiasGelu kernel: (dx, dbias) through biasGeluGrad, which runs the
 * KArAtBiasGeluGrad kernel of the active backend or its composite.
 */
import type {GradConfig, Tensor, Tensor1D, Tensor2D} from '@tensorflow/tfjs-core';

import {biasGeluGrad} from '../fused_layers';
import {KArAtBiasGelu} from '../kernel_names';

export const biasGeluGradConfig: GradConfig = {
  kernelName: KArAtBiasGelu,
  inputsToSave: ['x', 'bias'],
  gradFunc: (dy: Tensor | Tensor[], saved: Tensor[]) => {
    const [x, bias] = saved as [Tensor2D, Tensor1D];
    const [dx, db] = biasGeluGrad(dy as Tensor, x, bias);
    return {x: () => dx, bias: () => db};
  },
};
