/**
 * Kernels of flash-style Fourier-KArAt attention (core/attention.ts, fourierAttention) for
 * backend 'webgpu', one dispatch each (programs: fourier_attention_webgpu.ts):
 *   KArAtFourierAttention            {q, k, coeffs, u}      -> ĥ(q kᵀ) u          [B,h,N,dv]
 *   KArAtFourierAttentionHidden      {q, k, coeffs}         -> ĥ(q kᵀ)            [B,h,N,r]
 *   KArAtFourierAttentionGradQ       {q, k, coeffs, dh}     -> dQ                 [B,h,N,d]
 *   KArAtFourierAttentionGradK       {q, k, coeffs, dh}     -> dK                 [B,h,N,d]
 *   KArAtFourierAttentionGradCoeffs  {q, k, coeffs, dh}     -> dCoeffs            [h,2,r,N,G]
 *   KArAtFourierAttentionGradProj    {v, du}                -> Σ_b v duᵀ          [h,N,r]
 * (coeffs enters GradCoeffs for its shape only; the program does not read it.)
 */
import type {WebGPUBackend} from '@tensorflow/tfjs-backend-webgpu';
import type {KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {KArAtFourierAttention, KArAtFourierAttentionGradCoeffs, KArAtFourierAttentionGradK, KArAtFourierAttentionGradProj, KArAtFourierAttentionGradQ, KArAtFourierAttentionHidden} from '../core/attention';
import {FourierAttentionColumnProgram, FourierAttentionDims, FourierAttentionGradProjProgram, FourierAttentionRowProgram} from './fourier_attention_webgpu';

type Inputs = {q: TensorInfo, k: TensorInfo, coeffs: TensorInfo, u?: TensorInfo, dh?: TensorInfo};
type Args = {inputs: Inputs, backend: WebGPUBackend};

function dimsOf(q: TensorInfo, coeffs: TensorInfo): FourierAttentionDims {
  const [batch, heads, tokens, headDim] = q.shape;
  return {batch, heads, tokens, headDim, rank: coeffs.shape[2], grid: coeffs.shape[4]};
}

/** coeffs [h,2,r,N,G] as the rank-2 view [h·2·r, N·G] of its buffer (programs avoid rank 5). */
function view(coeffs: TensorInfo, d: FourierAttentionDims): TensorInfo {
  return {dataId: coeffs.dataId, shape: [d.heads * 2 * d.rank, d.tokens * d.grid], dtype: coeffs.dtype};
}

function forward(args: Args): TensorInfo {
  const {q, k, coeffs, u} = args.inputs;
  const d = dimsOf(q, coeffs);
  return args.backend.runWebGPUProgram(
      new FourierAttentionRowProgram('out', d, u!.shape[3]), [q, k, view(coeffs, d), u!], 'float32');
}

function hidden(args: Args): TensorInfo {
  const {q, k, coeffs} = args.inputs;
  const d = dimsOf(q, coeffs);
  return args.backend.runWebGPUProgram(new FourierAttentionRowProgram('hidden', d), [q, k, view(coeffs, d)], 'float32');
}

function gradQ(args: Args): TensorInfo {
  const {q, k, coeffs, dh} = args.inputs;
  const d = dimsOf(q, coeffs);
  return args.backend.runWebGPUProgram(new FourierAttentionRowProgram('dq', d), [q, k, view(coeffs, d), dh!], 'float32');
}

function gradK(args: Args): TensorInfo {
  const {q, k, coeffs, dh} = args.inputs;
  const d = dimsOf(q, coeffs);
  return args.backend.runWebGPUProgram(new FourierAttentionColumnProgram('dk', d), [q, k, view(coeffs, d), dh!], 'float32');
}

function gradCoeffs(args: Args): TensorInfo {
  const {q, k, coeffs, dh} = args.inputs;
  const d = dimsOf(q, coeffs);
  const out = args.backend.runWebGPUProgram(new FourierAttentionColumnProgram('dcoeffs', d), [q, k, dh!], 'float32');
  // Same buffer, contract shape [h, 2, r, N, G].
  return {dataId: out.dataId, shape: coeffs.shape.slice(), dtype: 'float32'};
}

function gradProj(args: {inputs: {v: TensorInfo, du: TensorInfo}, backend: WebGPUBackend}): TensorInfo {
  const {v, du} = args.inputs;
  return args.backend.runWebGPUProgram(
      new FourierAttentionGradProjProgram(v.shape[1], v.shape[2], du.shape[2]), [v, du], 'float32');
}

const config = (kernelName: string, f: unknown): KernelConfig =>
  ({kernelName, backendName: 'webgpu', kernelFunc: f as KernelFunc});

export const fourierAttentionKernelConfigs: KernelConfig[] = [
  config(KArAtFourierAttention, forward),
  config(KArAtFourierAttentionHidden, hidden),
  config(KArAtFourierAttentionGradQ, gradQ),
  config(KArAtFourierAttentionGradK, gradK),
  config(KArAtFourierAttentionGradCoeffs, gradCoeffs),
  config(KArAtFourierAttentionGradProj, gradProj),
];
