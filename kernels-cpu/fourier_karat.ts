import type {KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {FourierKArAt, fourierKArAtDims, FourierKArAtInputs} from '../core/kernel_names';
import {fourierKArAtImpl} from './fourier_karat_impl';
import {CpuLikeBackend, readValues} from './util';

export function fourierKArAt(args: {inputs: FourierKArAtInputs, backend: CpuLikeBackend}): TensorInfo {
  const {scores, coeffs} = args.inputs;
  const d = fourierKArAtDims(scores, coeffs);
  const out = fourierKArAtImpl(readValues(args.backend, scores), readValues(args.backend, coeffs), d);
  return args.backend.makeTensorInfo([d.batch, d.heads, d.tokens, d.rank], 'float32', out);
}

export const fourierKArAtConfig: KernelConfig = {
  kernelName: FourierKArAt,
  backendName: 'cpu',
  kernelFunc: fourierKArAt as unknown as KernelFunc,
};
