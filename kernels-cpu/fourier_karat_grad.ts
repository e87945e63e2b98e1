import type {KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {FourierKArAtGrad, fourierKArAtDims, FourierKArAtGradInputs} from '../core/kernel_names';
import {fourierKArAtGradImpl} from './fourier_karat_impl';
import {CpuLikeBackend, readValues} from './util';

export function fourierKArAtGrad(
    args: {inputs: FourierKArAtGradInputs, backend: CpuLikeBackend}): TensorInfo[] {
  const {dy, scores, coeffs} = args.inputs;
  const b = args.backend;
  const d = fourierKArAtDims(scores, coeffs);
  const [dS, dC] = fourierKArAtGradImpl(
      readValues(b, dy), readValues(b, scores), readValues(b, coeffs), d);
  return [
    b.makeTensorInfo(scores.shape, 'float32', dS),
    b.makeTensorInfo(coeffs.shape, 'float32', dC),
  ];
}

export const fourierKArAtGradConfig: KernelConfig = {
  kernelName: FourierKArAtGrad,
  backendName: 'cpu',
  kernelFunc: fourierKArAtGrad as unknown as KernelFunc,
};
