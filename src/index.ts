/**
 * tfjs-karat, the browser-safe entry: ops, kernels (cpu, webgl, webgpu), layers, models, attention
 * swap, analyses and in-memory model IO. Nothing here imports a Node built-in, so the package
 * bundles for browsers as is. The Node-only parts (datasets on disk, training, file IO, the CUDA
 * kernels through tfjs-node-gpu, the CLI's building blocks) are in `tfjs-karat/node` (src/node.ts).
 *
 * The only place that wires the op contract (core/) to the backend kernel folders; each
 * kernels-* folder registers itself on import.
 */
// tfjs-layers registers every stock gradient (tfjs-core alone does not), which the
// composite paths rely on.
import '@tensorflow/tfjs-layers';

export * from '../core/index';
export * from './bases/index';
export {version} from './version';

import '../kernels-cpu/register';
import '../kernels-webgpu/register';
import '../kernels-webgl/register';
import '../kernels-wasm/register';
export {wasmKernelStatus} from '../kernels-wasm/simd';
export type {WasmKernelStatus} from '../kernels-wasm/simd';
// Layers and ViT models.
export * from './layers/index';
export * as models from './models/index';
export {swapAttention, swapAttentionWithReport} from './swap';
export type {SwapOptions, SwapReport, SwapSource} from './swap';
// Keras ViTs converted by tensorflowjs_converter, with MultiHeadAttention mapped onto ours.
export {checkKerasViTTopology, KerasViTError, loadKerasViT} from './keras';
export * as io from './io/index';
// Analyses: attention maps, spectra, activation curves, loss landscape.
export * as analysis from './analysis/index';
// The fused LayerNorm and bias+GELU layers (their ops and the AdamW ops come with core/ above).
export {fusedDense, fusedLayerNormalization, FUSED_DENSE_CLASS, FUSED_LAYER_NORMALIZATION_CLASS} from './layers/fused_layers';
import '../kernels-webgpu/register_layers';
// Fine-tuning a pretrained ViT with KArAt: attention swap, new head, position-embedding resampling.
export {adaptForFinetune, describeViT} from './finetune';
export type {FinetuneAdaptation, FinetuneAdaptOptions, ViTDescription} from './finetune';
export {vitSpecOf} from './models/vit_spec';
export type {ViTLayerNames, ViTSpec} from './models/vit_spec';
export {resamplePositionEmbedding, resizeGrid, resizeTaps} from './models/pos_embedding';
export type {PosEmbedInterpolation} from './models/pos_embedding';
// Fine-tuning on the user's own images (browser-safe): image-list dataset and the training loop.
export {DEFAULT_MAX_PIXELS, imageList, ImageListError, resizeToSquareRGB, splitHeldOut} from './data/image_list';
export type {ImageInput, ImageList, ImageListErrorCode, ImageListOptions, PixelArray} from './data/image_list';
export {evaluateImageList, fineTune, FineTuneDivergedError, trainableUnder, withNewHead} from './training/finetune_loop';
export type {BatchProgress, EpochResult, FineTuneOptions, FineTuneResult} from './training/finetune_loop';
