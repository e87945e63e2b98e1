/**
 * Kernel KArAtAdamWInPlace for backend 'webgpu': one dispatch updating param, m and v in
 * their own buffers when that is safe (adamw_inplace.ts), else the three dispatches of KArAtAdamW.
 */
import type {KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';
import {env} from '@tensorflow/tfjs-core';

import {KArAtAdamWInPlace} from '../../core/kernel_names';
import {adamWInPlace} from '../adamw_inplace';
import {adamWUniformData} from '../adamw_webgpu';
import {adamW, AdamWArgs} from './KArAtAdamW';

export function adamWInPlaceKernel(args: AdamWArgs): TensorInfo[] {
  const {param, m, v, grad} = args.inputs;
  const b = args.backend;
  const batchSize = env().getNumber('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE');
  if (adamWInPlace(b, param, m, v, grad, adamWUniformData(args.attrs), {batchSize})) {
    // The outputs are the updated inputs (one more reference each, as Reshape does).
    for (const t of [param, m, v]) b.incRef(t.dataId);
    return [param, m, v].map((t) => ({dataId: t.dataId, shape: t.shape.slice(), dtype: t.dtype}));
  }
  return adamW(args);
}

export const adamWInPlaceConfig: KernelConfig = {
  kernelName: KArAtAdamWInPlace,
  backendName: 'webgpu',
  kernelFunc: adamWInPlaceKernel as unknown as KernelFunc,
};
