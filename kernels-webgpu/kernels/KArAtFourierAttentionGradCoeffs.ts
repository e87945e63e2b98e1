/**
 * Kernel KArAtFourierAttentionGradCoeffs for backend 'webgpu' (flash-style Fourier-KArAt
 * attention): {q, k, coeffs, dh} -> dCoeffs [h,2,r,N,G], 1 dispatch. coeffs enters for its
 * shape only; the program does not read it.
 */
import type {KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {KArAtFourierAttentionGradCoeffs} from '../../core/kernel_names';
import {FourierAttentionColumnProgram} from '../fourier_attention_column_webgpu';
import {fourierAttentionDims} from '../fourier_attention_program';
import type {FourierAttentionArgs} from './KArAtFourierAttention';

export function fourierAttentionGradCoeffs(args: FourierAttentionArgs): TensorInfo {
  const {q, k, coeffs, dh} = args.inputs;
  const d = fourierAttentionDims(q, coeffs);
  const out = args.backend.runWebGPUProgram(new FourierAttentionColumnProgram('dcoeffs', d), [q, k, dh!], 'float32');
  // Same buffer, contract shape [h, 2, r, N, G].
  return {dataId: out.dataId, shape: coeffs.shape.slice(), dtype: 'float32'};
}

export const fourierAttentionGradCoeffsConfig: KernelConfig = {
  kernelName: KArAtFourierAttentionGradCoeffs,
  backendName: 'webgpu',
  kernelFunc: fourierAttentionGradCoeffs as unknown as KernelFunc,
};
