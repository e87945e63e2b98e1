/**
 * Gradient kernel FourierKArAtGrad for backend 'webgl': [dScores, dCoeffs] from
 * dy = dL/dĥ, scores and coeffs. dScores in one pass; dCoeffs as partial sums over chunks
 * of the B·N rows, then one reduce pass that also restores the [h,2,r,N,G] layout.
 */
import * as tf from '@tensorflow/tfjs-core';
import type {KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {compositeFourierKArAtGrad} from '../core/composite';
import {FourierKArAtGrad, FourierKArAtGradInputs} from '../core/kernel_names';
import {CoeffPackProgram, coeffChunks, GradCoeffsPartialProgram, GradCoeffsReduceProgram, GradScoresProgram, webglDims} from './fourier_karat_gpu';
import {asTensor, fusedUnsupportedReason, noteFallback, WebGLLikeBackend} from './util';

export function fourierKArAtGradWebGL(
    args: {inputs: FourierKArAtGradInputs, backend: WebGLLikeBackend}): TensorInfo[] {
  const {dy, scores, coeffs} = args.inputs;
  const backend = args.backend;
  const d = webglDims(scores, coeffs);
  const reason = fusedUnsupportedReason(d.G);
  if (reason != null) {
    noteFallback(FourierKArAtGrad, reason);
    return tf.tidy(() => compositeFourierKArAtGrad(asTensor(dy), asTensor(scores), asTensor(coeffs)));
  }
  const temps: TensorInfo[] = [];
  try {
    const packed = backend.runWebGLProgram(new CoeffPackProgram(d), [coeffs], 'float32', undefined, true);
    temps.push(packed);
    const dScores = backend.runWebGLProgram(new GradScoresProgram(d), [dy, scores, packed], 'float32');
    const {chunks, chunkPairs} = coeffChunks(d);
    const partial = backend.runWebGLProgram(
        new GradCoeffsPartialProgram(d, chunks, chunkPairs), [dy, scores], 'float32', undefined, true);
    temps.push(partial);
    const dFlat = backend.runWebGLProgram(new GradCoeffsReduceProgram(d, chunks), [partial], 'float32');
    // Unpacked textures are row-major, so [h,2,r,N·G] -> [h,2,r,N,G] only renames the shape
    // (what tfjs-backend-webgl's own reshape does for unpacked tensors).
    const dCoeffs: TensorInfo = {dataId: dFlat.dataId, shape: coeffs.shape.slice(), dtype: 'float32'};
    return [dScores, dCoeffs];
  } finally {
    temps.forEach((t) => backend.disposeIntermediateTensorInfo(t));
  }
}

export const fourierKArAtGradWebGLConfig: KernelConfig = {
  kernelName: FourierKArAtGrad,
  backendName: 'webgl',
  kernelFunc: fourierKArAtGradWebGL as unknown as KernelFunc,
};
