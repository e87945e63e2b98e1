/**
 * tfjs-karat/node, the Node.js entry: everything `tfjs-karat` exports, plus the parts that need
 * Node built-ins.
 *
 * - `io`: the in-memory handlers and `fileSystem` (a `file://` IO handler, registered with tf.io
 *   when this module is imported);
 * - `data`: datasets on disk (CIFAR, MNIST-style IDX, image folders, the embedded subset,
 *   downloads) and the batching loader;
 * - `training`: the training recipe, checkpoints, backend selection and run logs;
 * - the CUDA kernels through tfjs-node-gpu (`loadTensorFlowKernels`, `loadCudaAddon`);
 * - `cli`: the `karat` command's entry point, `main(argv)`.
 */
import * as io from './io/node';

export * from './index';
// Replaces the root's `io` (in-memory only) with one that also has the file system handler.
export {io};
export * as training from './training/index';
export * as data from './data/index';
export * as cli from './cli/main';

// CUDA via tfjs-node-gpu's 'tensorflow' backend: loads lazily.
import '../kernels-cuda/register';
export {loadTensorFlowKernels, tensorFlowKernelStatus, loadCudaAddon} from '../kernels-cuda/register';
export type {TensorFlowKernelOptions, TensorFlowKernelStatus, CudaAddonStatus, KaratCudaAddon} from '../kernels-cuda/register';
