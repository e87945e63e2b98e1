/** Forward kernel FourierKArAt for backend 'webgl': ĥ [B,h,N,r] from scores and coeffs. */
import * as tf from '@tensorflow/tfjs-core';
import type {KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {compositeFourierKArAtHidden} from '../core/composite';
import {FourierKArAt, FourierKArAtInputs} from '../core/kernel_names';
import {CoeffPackProgram, ForwardProgram, webglDims} from './fourier_karat_gpu';
import {asTensor, fusedUnsupportedReason, noteFallback, WebGLLikeBackend} from './util';

export function fourierKArAtWebGL(
    args: {inputs: FourierKArAtInputs, backend: WebGLLikeBackend}): TensorInfo {
  const {scores, coeffs} = args.inputs;
  const backend = args.backend;
  const d = webglDims(scores, coeffs);
  const reason = fusedUnsupportedReason(d.G);
  if (reason != null) {
    noteFallback(FourierKArAt, reason);
    return tf.tidy(() => compositeFourierKArAtHidden(asTensor(scores), asTensor(coeffs)));
  }
  const packed = backend.runWebGLProgram(new CoeffPackProgram(d), [coeffs], 'float32', undefined, true);
  try {
    return backend.runWebGLProgram(new ForwardProgram(d), [scores, packed], 'float32');
  } finally {
    backend.disposeIntermediateTensorInfo(packed);
  }
}

export const fourierKArAtWebGLConfig: KernelConfig = {
  kernelName: FourierKArAt,
  backendName: 'webgl',
  kernelFunc: fourierKArAtWebGL as unknown as KernelFunc,
};
