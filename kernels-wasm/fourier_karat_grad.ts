/**
 * Kernel FourierKArAtGrad for backend 'wasm': dy, scores, coeffs -> [dScores, dCoeffs].
 * Like fourier_karat.ts: the SIMD module, else the cpu kernel's implementation in place on
 * the heap. Both outputs are allocated first, then inputs and outputs are views of the heap.
 */
import type {BackendWasm} from '@tensorflow/tfjs-backend-wasm';
import type {KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {FourierKArAtGrad, fourierKArAtDims, FourierKArAtGradInputs} from '../core/kernel_names';
import {fourierKArAtGradInto} from '../kernels-cpu/fourier_karat_impl';
import {fourierKArAtGradSimd} from './simd';
import {heapF32} from './util';

export function fourierKArAtGrad(
    args: {inputs: FourierKArAtGradInputs, backend: BackendWasm}): TensorInfo[] {
  const {dy, scores, coeffs} = args.inputs;
  const b = args.backend;
  const d = fourierKArAtDims(scores, coeffs);
  const dS = b.makeOutput(scores.shape, 'float32');
  const dC = b.makeOutput(coeffs.shape, 'float32');
  const g = heapF32(b, dy), S = heapF32(b, scores), C = heapF32(b, coeffs);
  const oS = heapF32(b, dS), oC = heapF32(b, dC);
  if (!fourierKArAtGradSimd(g, S, C, d, oS, oC)) fourierKArAtGradInto(g, S, C, d, oS, oC);
  return [dS, dC];
}

export const fourierKArAtGradConfig: KernelConfig = {
  kernelName: FourierKArAtGrad,
  backendName: 'wasm',
  kernelFunc: fourierKArAtGrad as unknown as KernelFunc,
};
