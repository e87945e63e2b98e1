/**
 * Kernel KArAtFourierAttentionGradProj for backend 'webgpu' (flash-style Fourier-KArAt
 * attention): {v, du} -> Σ_b v duᵀ [h,N,r], 1 dispatch.
 */
import type {WebGPUBackend} from '@tensorflow/tfjs-backend-webgpu';
import type {KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {KArAtFourierAttentionGradProj} from '../../core/kernel_names';
import {FourierAttentionGradProjProgram} from '../fourier_attention_grad_proj_webgpu';

export function fourierAttentionGradProj(args: {inputs: {v: TensorInfo, du: TensorInfo}, backend: WebGPUBackend}): TensorInfo {
  const {v, du} = args.inputs;
  return args.backend.runWebGPUProgram(
      new FourierAttentionGradProjProgram(v.shape[1], v.shape[2], du.shape[2]), [v, du], 'float32');
}

export const fourierAttentionGradProjConfig: KernelConfig = {
  kernelName: KArAtFourierAttentionGradProj,
  backendName: 'webgpu',
  kernelFunc: fourierAttentionGradProj as unknown as KernelFunc,
};
