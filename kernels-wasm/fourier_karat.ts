/**
 * Kernel FourierKArAt for backend 'wasm': scores, coeffs -> ĥ [B,h,N,r].
 * Reads scores and coeffs where tfjs-backend-wasm stores them and writes ĥ into the output
 * tensor's memory on its heap; computes with the WebAssembly SIMD module (simd.ts), or, where
 * that is unavailable, with the cpu kernel's implementation (kernels-cpu/fourier_karat_impl.ts)
 * in place on the heap. Never a [B,h,N,N,2G] feature tensor.
 */
import type {BackendWasm} from '@tensorflow/tfjs-backend-wasm';
import type {KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {FourierKArAt, fourierKArAtDims, FourierKArAtInputs} from '../core/kernel_names';
import {fourierKArAtInto} from '../kernels-cpu/fourier_karat_impl';
import {fourierKArAtSimd} from './simd';
import {heapF32} from './util';

export function fourierKArAt(args: {inputs: FourierKArAtInputs, backend: BackendWasm}): TensorInfo {
  const {scores, coeffs} = args.inputs;
  const b = args.backend;
  const d = fourierKArAtDims(scores, coeffs);
  const out = b.makeOutput([d.batch, d.heads, d.tokens, d.rank], 'float32');
  const S = heapF32(b, scores), C = heapF32(b, coeffs), o = heapF32(b, out);
  if (!fourierKArAtSimd(S, C, d, o)) fourierKArAtInto(S, C, d, o);
  return out;
}

export const fourierKArAtConfig: KernelConfig = {
  kernelName: FourierKArAt,
  backendName: 'wasm',
  kernelFunc: fourierKArAt as unknown as KernelFunc,
};
