/**
 * What the kernels for tfjs-node's 'tensorflow' backend share: the backend name, the names of
 * the TensorFlow ops of libkarat_tf_ops.so, and the part of tfjs-node's NodeJSKernelBackend
 * they call (duck typing: the backend object passed to kernelFunc).
 */
import type * as tf from '@tensorflow/tfjs-core';

export const TF_BACKEND = 'tensorflow';
export const TF_FWD_OP = 'KaratFourierKArAt';
export const TF_GRAD_OP = 'KaratFourierKArAtGrad';

/** The part of tfjs-node's NodeJSKernelBackend used here. */
export interface TensorFlowBackendLike {
  executeSingleOutput(name: string, opAttrs: unknown[], inputs: tf.TensorInfo[]): tf.TensorInfo;
  executeMultipleOutputs(name: string, opAttrs: unknown[], inputs: tf.TensorInfo[], numOutputs: number):
      tf.TensorInfo[];
}

export function isTensorFlowBackend(b: unknown): b is TensorFlowBackendLike {
  const x = b as Partial<TensorFlowBackendLike> | null;
  return x != null && typeof x.executeSingleOutput === 'function' &&
      typeof x.executeMultipleOutputs === 'function';
}
