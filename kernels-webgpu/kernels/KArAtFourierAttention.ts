/**
 * Kernel KArAtFourierAttention for backend 'webgpu' (flash-style Fourier-KArAt attention,
 * core/attention.ts fourierAttention): {q, k, coeffs, u} -> ĥ(q kᵀ) u [B,h,N,dv], 1 dispatch.
 */
import type {WebGPUBackend} from '@tensorflow/tfjs-backend-webgpu';
import type {KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {KArAtFourierAttention} from '../../core/kernel_names';
import {fourierAttentionDims} from '../fourier_attention_program';
import {FourierAttentionRowProgram} from '../fourier_attention_row_webgpu';
import {coeffsView} from '../util';

export type FourierAttentionArgs = {
  inputs: {q: TensorInfo, k: TensorInfo, coeffs: TensorInfo, u?: TensorInfo, dh?: TensorInfo},
  backend: WebGPUBackend,
};

export function fourierAttention(args: FourierAttentionArgs): TensorInfo {
  const {q, k, coeffs, u} = args.inputs;
  const d = fourierAttentionDims(q, coeffs);
  return args.backend.runWebGPUProgram(
      new FourierAttentionRowProgram('out', d, u!.shape[3]), [q, k, coeffsView(coeffs, d), u!], 'float32');
}

export const fourierAttentionConfig: KernelConfig = {
  kernelName: KArAtFourierAttention,
  backendName: 'webgpu',
  kernelFunc: fourierAttention as unknown as KernelFunc,
};
