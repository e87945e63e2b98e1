/** Kernel KArAtLayerNorm for backend 'webgpu': {x, gamma, beta} -> LayerNorm over the last axis, 1 dispatch. */
import type {WebGPUBackend} from '@tensorflow/tfjs-backend-webgpu';
import type {KernelConfig, KernelFunc, NamedAttrMap, TensorInfo} from '@tensorflow/tfjs-core';

import {KArAtLayerNorm} from '../../core/kernel_names';
import {LayerNormProgram} from '../layer_norm_webgpu';

/** The epsilon attr (default 1e-3) as the uniform data of the LayerNorm programs. */
export function epsilonUniform(attrs?: NamedAttrMap): Array<{type: string, data: number[]}> {
  return [{type: 'float32', data: [Number(attrs?.epsilon ?? 1e-3)]}];
}

export function layerNorm(args: {inputs: {x: TensorInfo, gamma: TensorInfo, beta: TensorInfo}, backend: WebGPUBackend,
                                 attrs?: NamedAttrMap}): TensorInfo {
  const {x, gamma, beta} = args.inputs;
  const [M, C] = x.shape;
  return args.backend.runWebGPUProgram(new LayerNormProgram(M, C), [x, gamma, beta], 'float32', epsilonUniform(args.attrs));
}

export const layerNormConfig: KernelConfig = {
  kernelName: KArAtLayerNorm,
  backendName: 'webgpu',
  kernelFunc: layerNorm as unknown as KernelFunc,
};
