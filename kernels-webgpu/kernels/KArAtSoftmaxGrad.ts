/** Kernel KArAtSoftmaxGrad for backend 'webgpu': {dy, y} -> y · (dy - Σ dy·y), 1 dispatch. */
import type {WebGPUBackend} from '@tensorflow/tfjs-backend-webgpu';
import type {KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {KArAtSoftmaxGrad} from '../../core/kernel_names';
import {SoftmaxGradRowProgram} from '../softmax_grad_webgpu';

export function softmaxGrad(args: {inputs: {dy: TensorInfo, y: TensorInfo}, backend: WebGPUBackend}): TensorInfo {
  const {dy, y} = args.inputs;
  const [M, C] = y.shape;
  return args.backend.runWebGPUProgram(new SoftmaxGradRowProgram(M, C), [dy, y], 'float32');
}

export const softmaxGradConfig: KernelConfig = {
  kernelName: KArAtSoftmaxGrad,
  backendName: 'webgpu',
  kernelFunc: softmaxGrad as unknown as KernelFunc,
};
