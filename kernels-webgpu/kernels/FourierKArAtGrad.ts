/**
 * Kernel FourierKArAtGrad for backend 'webgpu': (dy, scores, coeffs) -> [dScores, dCoeffs].
 * Three dispatches: dScores; dCoeffs partial sums over row chunks; the chunk sum
 * (skipped when there is a single chunk).
 */
import type {WebGPUBackend} from '@tensorflow/tfjs-backend-webgpu';
import type {KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {FourierKArAtGrad, fourierKArAtDims, FourierKArAtGradInputs} from '../../core/kernel_names';
import {FourierKArAtGradCoeffsPartialProgram} from '../fourier_karat_grad_coeffs_webgpu';
import {FourierKArAtGradScoresProgram} from '../fourier_karat_grad_scores_webgpu';
import {dimsUniformData} from '../fourier_karat_webgpu';
import {SumChunksProgram} from '../sum_chunks_webgpu';
import {coeffsView} from '../util';

export function fourierKArAtGrad(
    args: {inputs: FourierKArAtGradInputs, backend: WebGPUBackend}): TensorInfo[] {
  const {dy, scores, coeffs} = args.inputs;
  const backend = args.backend;
  const d = fourierKArAtDims(scores, coeffs);
  const dims = dimsUniformData(d);

  const dScores = backend.runWebGPUProgram(
      new FourierKArAtGradScoresProgram(d), [dy, scores, coeffsView(coeffs, d)], 'float32', dims);

  const partialProgram = new FourierKArAtGradCoeffsPartialProgram(d);
  const partial = backend.runWebGPUProgram(
      partialProgram, [dy, scores], 'float32',
      [...dims, {type: 'int32', data: [partialProgram.plan.chunkRows]}]);
  let flat = partial;
  if (partialProgram.plan.chunks > 1) {
    const sum = new SumChunksProgram(partial.shape);
    flat = backend.runWebGPUProgram(
        sum, [partial], 'float32', [{type: 'int32', data: [partialProgram.plan.chunks]}]);
    backend.disposeData(partial.dataId);
  }
  // Same buffer, contract shape [h, 2, r, N, G] (the programs work on rank <= 4 views).
  const dCoeffs: TensorInfo = {dataId: flat.dataId, shape: coeffs.shape.slice(), dtype: 'float32'};
  return [dScores, dCoeffs];
}

export const fourierKArAtGradConfig: KernelConfig = {
  kernelName: FourierKArAtGrad,
  backendName: 'webgpu',
  kernelFunc: fourierKArAtGrad as unknown as KernelFunc,
};
