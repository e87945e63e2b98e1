/**
 * Kernel KArAtSoftmaxAttention for backend 'webgpu': {q, k, v} -> softmax(q kᵀ) v [B,h,T,dv],
 * 1 dispatch (attention_webgpu.ts), and the runner its backward kernels share.
 */
import type {WebGPUBackend} from '@tensorflow/tfjs-backend-webgpu';
import type {KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {KArAtSoftmaxAttention} from '../../core/kernel_names';
import {AttentionMode, AttentionRowProgram} from '../attention_webgpu';

export type AttentionArgs = {inputs: {q: TensorInfo, k: TensorInfo, v?: TensorInfo, dy?: TensorInfo}, backend: WebGPUBackend};

/** Runs AttentionRowProgram in `mode` on the kernel's inputs. */
export function runAttentionRow(mode: AttentionMode, args: AttentionArgs): TensorInfo {
  const {q, k, v, dy} = args.inputs;
  const [B, h, T, d] = q.shape;
  const S = k.shape[2];
  const dv = v == null ? 0 : v.shape[3];
  const outputShape = mode === 'out' ? [B, h, T, dv] : [B, h, T, S];
  const inputs = mode === 'out' ? [q, k, v!] : mode === 'probs' ? [q, k] : [q, k, v!, dy!];
  return args.backend.runWebGPUProgram(new AttentionRowProgram(mode, outputShape, B * h * T, S, d, dv), inputs, 'float32');
}

export function softmaxAttention(args: AttentionArgs): TensorInfo {
  return runAttentionRow('out', args);
}

export const softmaxAttentionConfig: KernelConfig = {
  kernelName: KArAtSoftmaxAttention,
  backendName: 'webgpu',
  kernelFunc: softmaxAttention as unknown as KernelFunc,
};
