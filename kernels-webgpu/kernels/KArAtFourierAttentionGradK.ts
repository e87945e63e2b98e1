/**
 * Kernel KArAtFourierAttentionGradK for backend 'webgpu' (flash-style Fourier-KArAt attention):
 * {q, k, coeffs, dh} -> dK [B,h,N,d], 1 dispatch.
 */
import type {KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {KArAtFourierAttentionGradK} from '../../core/kernel_names';
import {fourierAttentionDims} from '../fourier_attention_program';
import {FourierAttentionColumnProgram} from '../fourier_attention_column_webgpu';
import {coeffsView} from '../util';
import type {FourierAttentionArgs} from './KArAtFourierAttention';

export function fourierAttentionGradK(args: FourierAttentionArgs): TensorInfo {
  const {q, k, coeffs, dh} = args.inputs;
  const d = fourierAttentionDims(q, coeffs);
  return args.backend.runWebGPUProgram(new FourierAttentionColumnProgram('dk', d), [q, k, coeffsView(coeffs, d), dh!], 'float32');
}

export const fourierAttentionGradKConfig: KernelConfig = {
  kernelName: KArAtFourierAttentionGradK,
  backendName: 'webgpu',
  kernelFunc: fourierAttentionGradK as unknown as KernelFunc,
};
