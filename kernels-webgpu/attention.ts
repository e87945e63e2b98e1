/**
 * Kernels of the fused softmax attention (core/attention.ts) for backend 'webgpu', one
 * dispatch each (program: attention_webgpu.ts):
 *   KArAtSoftmaxAttention            {q, k, v}     -> softmax(q kᵀ) v   [B,h,T,dv]
 *   KArAtSoftmaxAttentionProbs       {q, k}        -> softmax(q kᵀ)     [B,h,T,S]
 *   KArAtSoftmaxAttentionGradScores  {q, k, v, dy} -> dS               [B,h,T,S]
 */
import type {WebGPUBackend} from '@tensorflow/tfjs-backend-webgpu';
import type {KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {KArAtSoftmaxAttention, KArAtSoftmaxAttentionGradScores, KArAtSoftmaxAttentionProbs} from '../core/attention';
import {AttentionMode, AttentionRowProgram} from './attention_webgpu';

type Inputs = {q: TensorInfo, k: TensorInfo, v?: TensorInfo, dy?: TensorInfo};

function run(mode: AttentionMode, args: {inputs: Inputs, backend: WebGPUBackend}): TensorInfo {
  const {q, k, v, dy} = args.inputs;
  const [B, h, T, d] = q.shape;
  const S = k.shape[2];
  const dv = v == null ? 0 : v.shape[3];
  const outputShape = mode === 'out' ? [B, h, T, dv] : [B, h, T, S];
  const inputs = mode === 'out' ? [q, k, v!] : mode === 'probs' ? [q, k] : [q, k, v!, dy!];
  return args.backend.runWebGPUProgram(new AttentionRowProgram(mode, outputShape, B * h * T, S, d, dv), inputs, 'float32');
}

const kf = (mode: AttentionMode) => ((args: {inputs: Inputs, backend: WebGPUBackend}) => run(mode, args)) as unknown as KernelFunc;

export const attentionKernelConfigs: KernelConfig[] = [
  {kernelName: KArAtSoftmaxAttention, backendName: 'webgpu', kernelFunc: kf('out')},
  {kernelName: KArAtSoftmaxAttentionProbs, backendName: 'webgpu', kernelFunc: kf('probs')},
  {kernelName: KArAtSoftmaxAttentionGradScores, backendName: 'webgpu', kernelFunc: kf('dscores')},
];
