/**
 * Kernel FourierKArAt for backend 'wasm': scores, coeffs -> ĥ [B,h,N,r].
 * Runs the cpu kernel's implementation (kernels-cpu/fourier_karat_impl.ts) in place on the
 * wasm heap: reads scores and coeffs where the backend stores them and writes ĥ into the
 * output tensor's memory, with no copy in or out and no [B,h,N,N,2G] feature tensor.
 */
import type {BackendWasm} from '@tensorflow/tfjs-backend-wasm';
import type {KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {FourierKArAt, fourierKArAtDims, FourierKArAtInputs} from '../src/ops/kernel_names';
import {fourierKArAtInto} from '../kernels-cpu/fourier_karat_impl';
import {heapF32} from './util';

export function fourierKArAt(args: {inputs: FourierKArAtInputs, backend: BackendWasm}): TensorInfo {
  const {scores, coeffs} = args.inputs;
  const b = args.backend;
  const d = fourierKArAtDims(scores, coeffs);
  const out = b.makeOutput([d.batch, d.heads, d.tokens, d.rank], 'float32');
  fourierKArAtInto(heapF32(b, scores), heapF32(b, coeffs), d, heapF32(b, out));
  return out;
}

export const fourierKArAtConfig: KernelConfig = {
  kernelName: FourierKArAt,
  backendName: 'wasm',
  kernelFunc: fourierKArAt as unknown as KernelFunc,
};
