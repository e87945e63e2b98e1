/**
 * Gradient of the KArAtLayerNorm kernel: (dx, dgamma, dbeta) through layerNormGrad, which runs
 * the KArAtLayerNormGrad kernel of the active backend or its composite.
 */
import type {GradConfig, NamedAttrMap, Tensor, Tensor1D, Tensor2D} from '@tensorflow/tfjs-core';

import {layerNormGrad} from '../fused_layers';
import {KArAtLayerNorm, LayerNormAttrs} from '../kernel_names';

export const layerNormGradConfig: GradConfig = {
  kernelName: KArAtLayerNorm,
  inputsToSave: ['x', 'gamma'],
  gradFunc: (dy: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) => {
    const [x, gamma] = saved as [Tensor2D, Tensor1D];
    const {epsilon} = attrs as unknown as LayerNormAttrs;
    const [dx, dg, db] = layerNormGrad(dy as Tensor, x, gamma, epsilon);
    return {x: () => dx, gamma: () => dg, beta: () => db};
  },
};
