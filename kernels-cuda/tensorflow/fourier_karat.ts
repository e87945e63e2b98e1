/** FourierKArAt for backend 'tensorflow': runs the TensorFlow op KaratFourierKArAt (zero copy). */
import type {KernelConfig, KernelFunc} from '@tensorflow/tfjs-core';

import {FourierKArAt, FourierKArAtInputs} from '../../core/kernel_names';
import {isTensorFlowBackend, TF_BACKEND, TF_FWD_OP} from './util';

const fourierKArAt: KernelFunc = ({inputs, backend}) => {
  if (!isTensorFlowBackend(backend)) throw new Error(`${FourierKArAt}: backend is not tfjs-node's`);
  const {scores, coeffs} = inputs as unknown as FourierKArAtInputs;
  return backend.executeSingleOutput(TF_FWD_OP, [], [scores, coeffs]);
};

export const fourierKArAtTensorFlowConfig: KernelConfig = {
  kernelName: FourierKArAt,
  backendName: TF_BACKEND,
  kernelFunc: fourierKArAt,
};
