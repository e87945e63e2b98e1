/** Kernel KArAtSoftmaxAttentionGradScores for backend 'webgpu': {q, k, v, dy} -> dS [B,h,T,S], 1 dispatch. */
import type {KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {KArAtSoftmaxAttentionGradScores} from '../../core/kernel_names';
import {AttentionArgs, runAttentionRow} from './KArAtSoftmaxAttention';

export function softmaxAttentionGradScores(args: AttentionArgs): TensorInfo {
  return runAttentionRow('dscores', args);
}

export const softmaxAttentionGradScoresConfig: KernelConfig = {
  kernelName: KArAtSoftmaxAttentionGradScores,
  backendName: 'webgpu',
  kernelFunc: softmaxAttentionGradScores as unknown as KernelFunc,
};
