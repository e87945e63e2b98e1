/** Kernel KArAtSoftmaxAttentionProbs for backend 'webgpu': {q, k} -> softmax(q kᵀ) [B,h,T,S], 1 dispatch. */
import type {KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {KArAtSoftmaxAttentionProbs} from '../../core/kernel_names';
import {AttentionArgs, runAttentionRow} from './KArAtSoftmaxAttention';

export function softmaxAttentionProbs(args: AttentionArgs): TensorInfo {
  return runAttentionRow('probs', args);
}

export const softmaxAttentionProbsConfig: KernelConfig = {
  kernelName: KArAtSoftmaxAttentionProbs,
  backendName: 'webgpu',
  kernelFunc: softmaxAttentionProbs as unknown as KernelFunc,
};
