/** Kernel KArAtBiasGeluGrad for backend 'webgpu': {dy, x, bias} -> [dx, dbias], 2 dispatches. */
import type {WebGPUBackend} from '@tensorflow/tfjs-backend-webgpu';
import type {KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {KArAtBiasGeluGrad} from '../../core/kernel_names';
import {BiasGeluProgram} from '../bias_gelu_webgpu';
import {ColumnSumProgram} from '../column_sum_webgpu';

export function biasGeluGrad(args: {inputs: {dy: TensorInfo, x: TensorInfo, bias: TensorInfo}, backend: WebGPUBackend}): TensorInfo[] {
  const {dy, x, bias} = args.inputs;
  const b = args.backend;
  const dx = b.runWebGPUProgram(new BiasGeluProgram(true, x.shape), [dy, x, bias], 'float32');
  const dbias = b.runWebGPUProgram(new ColumnSumProgram('dbias-gelu', x.shape[1]), [dy, x, bias], 'float32');
  return [dx, dbias];
}

export const biasGeluGradConfig: KernelConfig = {
  kernelName: KArAtBiasGeluGrad,
  backendName: 'webgpu',
  kernelFunc: biasGeluGrad as unknown as KernelFunc,
};
