/**
 * Kernel FourierKArAtGrad for backend 'wasm': dy, scores, coeffs -> [dScores, dCoeffs].
 * The cpu kernel's implementation, in place on the wasm heap (see fourier_karat.ts): both
 * outputs are allocated first, then every input and output is a view of the heap.
 */
import type {BackendWasm} from '@tensorflow/tfjs-backend-wasm';
import type {KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {FourierKArAtGrad, fourierKArAtDims, FourierKArAtGradInputs} from '../src/ops/kernel_names';
import {fourierKArAtGradInto} from '../kernels-cpu/fourier_karat_impl';
import {heapF32} from './util';

export function fourierKArAtGrad(
    args: {inputs: FourierKArAtGradInputs, backend: BackendWasm}): TensorInfo[] {
  const {dy, scores, coeffs} = args.inputs;
  const b = args.backend;
  const d = fourierKArAtDims(scores, coeffs);
  const dS = b.makeOutput(scores.shape, 'float32');
  const dC = b.makeOutput(coeffs.shape, 'float32');
  fourierKArAtGradInto(heapF32(b, dy), heapF32(b, scores), heapF32(b, coeffs), d, heapF32(b, dS), heapF32(b, dC));
  return [dS, dC];
}

export const fourierKArAtGradConfig: KernelConfig = {
  kernelName: FourierKArAtGrad,
  backendName: 'wasm',
  kernelFunc: fourierKArAtGrad as unknown as KernelFunc,
};
