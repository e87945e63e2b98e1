/**
 * The op contract's public surface: kernel names (kernel_names.ts), flags (flags.ts), the
 * Fourier-KArAt, attention, layer and AdamW ops, and the registration of every gradient.
 */
import './register_all_gradients';

export * from './kernel_names';
export {KARAT_FUSED_FLAG, KARAT_COMPOSITE_MAX_FLOATS_FLAG, KARAT_FUSED_LAYERS_FLAG, KARAT_WEBGPU_FUSED_LAYERS_FLAG, KARAT_WEBGL_FUSED_FLAG, KARAT_WASM_SIMD_FLAG, hasFusedKernel, fusedLayersOn, fusedLayerKernelOn, fusedLayersEnabled, useFusedLayers, useLayerNormOp, useLeanAttention} from './flags';
export * from './fused_layers';
export * from './adamw';
export {fourierKArAtHidden, fourierKArAtGrad, karatActivation, karatAttention, foldedAttention} from './fourier_karat';
export {compositeFourierKArAtHidden, compositeFourierKArAtGrad, fourierFeatures} from './composite';
export {compositeFloats} from './composite_limits';
export {KArAtArgumentError} from './validate';
export type {LeanGradients} from './lean_grads';
export {leanGradients, leanVariableGrads, leanGradientsAvailable, enableLeanGradients, leanGradientsEnabled, leanGradientsSupportsVersion, LEAN_GRADIENTS_TFJS_VERSIONS} from './lean_grads';
export {projectHeads, mergeHeadsProject, softmaxAttention, fourierAttention, fourierAttentionPath} from './attention';
