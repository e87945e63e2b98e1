/**
 * Kernel KArAtLayerNormGrad for backend 'webgpu': {dy, x, gamma} -> [dx, dgamma, dbeta],
 * 4 dispatches (row statistics, dx, dgamma, dbeta).
 */
import type {WebGPUBackend} from '@tensorflow/tfjs-backend-webgpu';
import type {KernelConfig, KernelFunc, NamedAttrMap, TensorInfo} from '@tensorflow/tfjs-core';

import {KArAtLayerNormGrad} from '../../core/kernel_names';
import {ColumnSumProgram} from '../column_sum_webgpu';
import {LayerNormGradDxProgram} from '../layer_norm_grad_dx_webgpu';
import {LayerNormStatsProgram} from '../layer_norm_stats_webgpu';
import {epsilonUniform} from './KArAtLayerNorm';

export function layerNormGrad(args: {inputs: {dy: TensorInfo, x: TensorInfo, gamma: TensorInfo}, backend: WebGPUBackend,
                                     attrs?: NamedAttrMap}): TensorInfo[] {
  const {dy, x, gamma} = args.inputs;
  const b = args.backend;
  const [M, C] = x.shape;
  const stats = b.runWebGPUProgram(new LayerNormStatsProgram(M), [x], 'float32', epsilonUniform(args.attrs));
  const dx = b.runWebGPUProgram(new LayerNormGradDxProgram(M, C), [dy, x, gamma, stats], 'float32');
  const dgamma = b.runWebGPUProgram(new ColumnSumProgram('dgamma', C), [dy, x, stats], 'float32');
  const dbeta = b.runWebGPUProgram(new ColumnSumProgram('dbeta', C), [dy], 'float32');
  b.disposeData(stats.dataId);
  return [dx, dgamma, dbeta];
}

export const layerNormGradConfig: KernelConfig = {
  kernelName: KArAtLayerNormGrad,
  backendName: 'webgpu',
  kernelFunc: layerNormGrad as unknown as KernelFunc,
};
