/** FourierKArAtGrad for backend 'tensorflow': runs the TensorFlow op KaratFourierKArAtGrad (zero copy). */
import type {KernelConfig, KernelFunc} from '@tensorflow/tfjs-core';

import {FourierKArAtGrad, FourierKArAtGradInputs} from '../../core/kernel_names';
import {isTensorFlowBackend, TF_BACKEND, TF_GRAD_OP} from './util';

const fourierKArAtGrad: KernelFunc = ({inputs, backend}) => {
  if (!isTensorFlowBackend(backend)) throw new Error(`${FourierKArAtGrad}: backend is not tfjs-node's`);
  const {dy, scores, coeffs} = inputs as unknown as FourierKArAtGradInputs;
  return backend.executeMultipleOutputs(TF_GRAD_OP, [], [dy, scores, coeffs], 2);
};

export const fourierKArAtGradTensorFlowConfig: KernelConfig = {
  kernelName: FourierKArAtGrad,
  backendName: TF_BACKEND,
  kernelFunc: fourierKArAtGrad,
};
