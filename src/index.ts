/**
 * tfjs-karat package entry point. The only place that wires the op contract (src/ops)
 * to the backend kernel folders; each kernels-* folder registers itself on import.
 */
// tfjs-layers registers every stock gradient (tfjs-core alone does not), which the
// composite paths rely on.
import '@tensorflow/tfjs-layers';

export * from './ops/index';
export * from './bases/index';
export {version} from './version';

import '../kernels-cpu/register';
import '../kernels-webgpu/register';
import '../kernels-webgl/register';
// CUDA via tfjs-node-gpu's 'tensorflow' backend (issue 7): loads lazily, Node only.
import '../kernels-cuda/register';
export {loadTensorFlowKernels, tensorFlowKernelStatus, loadCudaAddon} from '../kernels-cuda/register';
export type {TensorFlowKernelOptions, TensorFlowKernelStatus, CudaAddonStatus, KaratCudaAddon} from '../kernels-cuda/register';
export {KARAT_WEBGL_FUSED_FLAG} from '../kernels-webgl/util';
// Layers, ViT models (issue 3).
export * from './layers/index';
export * as models from './models/index';
export {swapAttention, swapAttentionWithReport} from './swap';
export type {SwapOptions, SwapReport, SwapSource} from './swap';
export * as io from './io/index';
// Analyses: attention maps, spectra, activation curves, loss landscape (issue 8).
export * as analysis from './analysis/index';
// Fast training on WebGPU (issue 9): fused LayerNorm, bias+GELU, AdamW ops and their webgpu kernels.
export * from './ops/fused_layers';
export {fusedDense, fusedLayerNormalization, FUSED_DENSE_CLASS, FUSED_LAYER_NORMALIZATION_CLASS} from './layers/fused_layers';
import '../kernels-webgpu/register_layers';
// Training recipe, datasets and the `karat` CLI's building blocks (issue 4).
export * as training from './training/index';
export * as data from './data/index';
