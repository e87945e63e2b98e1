/**
 * Kernel KArAtFourierAttentionGradQ for backend 'webgpu' (flash-style Fourier-KArAt attention):
 * {q, k, coeffs, dh} -> dQ [B,h,N,d], 1 dispatch.
 */
import type {KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {KArAtFourierAttentionGradQ} from '../../core/kernel_names';
import {fourierAttentionDims} from '../fourier_attention_program';
import {FourierAttentionRowProgram} from '../fourier_attention_row_webgpu';
import {coeffsView} from '../util';
import type {FourierAttentionArgs} from './KArAtFourierAttention';

export function fourierAttentionGradQ(args: FourierAttentionArgs): TensorInfo {
  const {q, k, coeffs, dh} = args.inputs;
  const d = fourierAttentionDims(q, coeffs);
  return args.backend.runWebGPUProgram(new FourierAttentionRowProgram('dq', d), [q, k, coeffsView(coeffs, d), dh!], 'float32');
}

export const fourierAttentionGradQConfig: KernelConfig = {
  kernelName: KArAtFourierAttentionGradQ,
  backendName: 'webgpu',
  kernelFunc: fourierAttentionGradQ as unknown as KernelFunc,
};
