/**
 * Registers the WebGPU kernels of the fused layer ops (LayerNorm, bias+GELU, softmax, AdamW,
 * fused softmax attention, flash-style Fourier-KArAt attention)
 * for backend 'webgpu'. Types only from @tensorflow/tfjs-backend-webgpu, like register.ts.
 */
import {KernelConfig, registerKernel} from '@tensorflow/tfjs-core';

import {adamWConfig} from './kernels/KArAtAdamW';
import {adamWInPlaceConfig} from './kernels/KArAtAdamWInPlace';
import {biasGeluConfig} from './kernels/KArAtBiasGelu';
import {biasGeluGradConfig} from './kernels/KArAtBiasGeluGrad';
import {fourierAttentionConfig} from './kernels/KArAtFourierAttention';
import {fourierAttentionGradCoeffsConfig} from './kernels/KArAtFourierAttentionGradCoeffs';
import {fourierAttentionGradKConfig} from './kernels/KArAtFourierAttentionGradK';
import {fourierAttentionGradProjConfig} from './kernels/KArAtFourierAttentionGradProj';
import {fourierAttentionGradQConfig} from './kernels/KArAtFourierAttentionGradQ';
import {fourierAttentionHiddenConfig} from './kernels/KArAtFourierAttentionHidden';
import {layerNormConfig} from './kernels/KArAtLayerNorm';
import {layerNormGradConfig} from './kernels/KArAtLayerNormGrad';
import {softmaxConfig} from './kernels/KArAtSoftmax';
import {softmaxAttentionConfig} from './kernels/KArAtSoftmaxAttention';
import {softmaxAttentionGradScoresConfig} from './kernels/KArAtSoftmaxAttentionGradScores';
import {softmaxAttentionProbsConfig} from './kernels/KArAtSoftmaxAttentionProbs';
import {softmaxGradConfig} from './kernels/KArAtSoftmaxGrad';

export const webgpuLayerKernelConfigs: KernelConfig[] = [
  layerNormConfig, layerNormGradConfig, biasGeluConfig, biasGeluGradConfig, softmaxConfig, softmaxGradConfig,
  adamWConfig, adamWInPlaceConfig,
  softmaxAttentionConfig, softmaxAttentionProbsConfig, softmaxAttentionGradScoresConfig,
  fourierAttentionConfig, fourierAttentionHiddenConfig, fourierAttentionGradQConfig, fourierAttentionGradKConfig,
  fourierAttentionGradCoeffsConfig, fourierAttentionGradProjConfig,
];

for (const config of webgpuLayerKernelConfigs) registerKernel(config);
