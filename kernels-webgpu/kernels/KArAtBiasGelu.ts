/** Kernel KArAtBiasGelu for backend 'webgpu': {x, bias} -> gelu(x + bias), 1 dispatch. */
import type {WebGPUBackend} from '@tensorflow/tfjs-backend-webgpu';
import type {KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {KArAtBiasGelu} from '../../core/kernel_names';
import {BiasGeluProgram} from '../bias_gelu_webgpu';

export function biasGelu(args: {inputs: {x: TensorInfo, bias: TensorInfo}, backend: WebGPUBackend}): TensorInfo {
  const {x, bias} = args.inputs;
  return args.backend.runWebGPUProgram(new BiasGeluProgram(false, x.shape), [x, bias], 'float32');
}

export const biasGeluConfig: KernelConfig = {
  kernelName: KArAtBiasGelu,
  backendName: 'webgpu',
  kernelFunc: biasGelu as unknown as KernelFunc,
};
