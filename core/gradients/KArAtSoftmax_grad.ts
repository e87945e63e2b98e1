/**
 * Gradient of the KArAtSoftmax kernel from its saved output y: softmaxLastAxisGrad, which runs
 * the KArAtSoftmaxGrad kernel of the active backend or its composite.
 */
import type {GradConfig, Tensor, Tensor2D} from '@tensorflow/tfjs-core';

import {softmaxLastAxisGrad} from '../fused_layers';
import {KArAtSoftmax} from '../kernel_names';

export const softmaxGradConfig: GradConfig = {
  kernelName: KArAtSoftmax,
  outputsToSave: [true],
  gradFunc: (dy: Tensor | Tensor[], saved: Tensor[]) => {
    const [y] = saved as [Tensor2D];
    return {logits: () => softmaxLastAxisGrad(dy as Tensor, y)};
  },
};
