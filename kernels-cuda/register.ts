/**
 * kernels-cuda entry (imported by src/node.ts, the tfjs-karat/node entry). Registers nothing eagerly: CUDA is reached
 * through the 'tensorflow' backend of @tensorflow/tfjs-node-gpu, whose kernels are registered by
 * loadTensorFlowKernels() once that backend, the addon and the op library are all present
 * (see tensorflow/loader.ts). As a convenience, when this module is imported after tfjs-node
 * registered its backend, the load is attempted right away (set KARAT_TF_KERNELS=0 to disable);
 * the outcome is available from tensorFlowKernelStatus().
 */
import * as tf from '@tensorflow/tfjs-core';

import {loadTensorFlowKernels} from './tensorflow/loader';
import {TF_BACKEND} from './tensorflow/util';

export {loadCudaAddon} from './addon';
export type {CudaAddonStatus, KaratCudaAddon} from './addon';
export {loadTensorFlowKernels, tensorFlowKernelStatus} from './tensorflow/loader';
export type {TensorFlowKernelOptions, TensorFlowKernelStatus} from './tensorflow/loader';

if (process.env.KARAT_TF_KERNELS !== '0' && tf.findBackendFactory(TF_BACKEND) != null) {
  loadTensorFlowKernels();
}
