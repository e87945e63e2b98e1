/**
 * Kernel KArAtFourierAttentionHidden for backend 'webgpu' (flash-style Fourier-KArAt attention):
 * {q, k, coeffs} -> ĥ(q kᵀ) [B,h,N,r], 1 dispatch.
 */
import type {KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {KArAtFourierAttentionHidden} from '../../core/kernel_names';
import {fourierAttentionDims} from '../fourier_attention_program';
import {FourierAttentionRowProgram} from '../fourier_attention_row_webgpu';
import {coeffsView} from '../util';
import type {FourierAttentionArgs} from './KArAtFourierAttention';

export function fourierAttentionHidden(args: FourierAttentionArgs): TensorInfo {
  const {q, k, coeffs} = args.inputs;
  const d = fourierAttentionDims(q, coeffs);
  return args.backend.runWebGPUProgram(new FourierAttentionRowProgram('hidden', d), [q, k, coeffsView(coeffs, d)], 'float32');
}

export const fourierAttentionHiddenConfig: KernelConfig = {
  kernelName: KArAtFourierAttentionHidden,
  backendName: 'webgpu',
  kernelFunc: fourierAttentionHidden as unknown as KernelFunc,
};
