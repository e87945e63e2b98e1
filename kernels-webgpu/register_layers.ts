/**
 * Registers the WebGPU kernels of the fused layer ops (LayerNorm, bias+GELU, softmax, AdamW,
 * fused softmax attention, flash-style Fourier-KArAt attention)
 * for backend 'webgpu'. Types only from @tensorflow/tfjs-backend-webgpu, like register.ts.
 */
import {registerKernel} from '@tensorflow/tfjs-core';

import {attentionKernelConfigs} from './attention';
import {fourierAttentionKernelConfigs} from './fourier_attention';
import {layerOpKernelConfigs} from './layer_ops';

for (const config of [...layerOpKernelConfigs, ...attentionKernelConfigs, ...fourierAttentionKernelConfigs]) registerKernel(config);
