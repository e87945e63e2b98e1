/** Kernel FourierKArAt for backend 'webgpu': scores, coeffs -> ĥ [B,h,N,r]. */
import type {WebGPUBackend} from '@tensorflow/tfjs-backend-webgpu';
import type {KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {FourierKArAt, fourierKArAtDims, FourierKArAtInputs} from '../../core/kernel_names';
import {dimsUniformData, FourierKArAtProgram} from '../fourier_karat_webgpu';
import {coeffsView} from '../util';

export function fourierKArAt(args: {inputs: FourierKArAtInputs, backend: WebGPUBackend}): TensorInfo {
  const {scores, coeffs} = args.inputs;
  const d = fourierKArAtDims(scores, coeffs);
  const program = new FourierKArAtProgram(d);
  return args.backend.runWebGPUProgram(
      program, [scores, coeffsView(coeffs, d)], 'float32', dimsUniformData(d));
}

export const fourierKArAtConfig: KernelConfig = {
  kernelName: FourierKArAt,
  backendName: 'webgpu',
  kernelFunc: fourierKArAt as unknown as KernelFunc,
};
