/** Kernel KArAtAdamW for backend 'webgpu': {param, m, v, grad} -> [param', m', v'], 3 dispatches. */
import type {WebGPUBackend} from '@tensorflow/tfjs-backend-webgpu';
import type {KernelConfig, KernelFunc, NamedAttrMap, TensorInfo} from '@tensorflow/tfjs-core';

import {KArAtAdamW} from '../../core/kernel_names';
import {AdamWProgram, adamWUniformData} from '../adamw_webgpu';

export type AdamWArgs = {inputs: {param: TensorInfo, m: TensorInfo, v: TensorInfo, grad: TensorInfo}, backend: WebGPUBackend,
                         attrs?: NamedAttrMap};

export function adamW(args: AdamWArgs): TensorInfo[] {
  const {param, m, v, grad} = args.inputs;
  const b = args.backend;
  const u = adamWUniformData(args.attrs);
  const shape = param.shape;
  const m1 = b.runWebGPUProgram(new AdamWProgram('m', shape), [m, grad], 'float32', u);
  const v1 = b.runWebGPUProgram(new AdamWProgram('v', shape), [v, grad], 'float32', u);
  const p1 = b.runWebGPUProgram(new AdamWProgram('param', shape), [param, m, v, grad], 'float32', u);
  return [p1, m1, v1];
}

export const adamWConfig: KernelConfig = {
  kernelName: KArAtAdamW,
  backendName: 'webgpu',
  kernelFunc: adamW as unknown as KernelFunc,
};
