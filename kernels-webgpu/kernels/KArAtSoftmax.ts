/** Kernel KArAtSoftmax for backend 'webgpu': {logits} -> softmax over the last axis, 1 dispatch. */
import type {WebGPUBackend} from '@tensorflow/tfjs-backend-webgpu';
import type {KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {KArAtSoftmax} from '../../core/kernel_names';
import {SoftmaxRowProgram} from '../softmax_webgpu';

export function softmax(args: {inputs: {logits: TensorInfo}, backend: WebGPUBackend}): TensorInfo {
  const {logits} = args.inputs;
  const [M, C] = logits.shape;
  return args.backend.runWebGPUProgram(new SoftmaxRowProgram(M, C), [logits], 'float32');
}

export const softmaxConfig: KernelConfig = {
  kernelName: KArAtSoftmax,
  backendName: 'webgpu',
  kernelFunc: softmax as unknown as KernelFunc,
};
