/**
 * The op contract: kernel names, inputs and attributes that every backend implements.
 *
 * This file knows no backend. A backend folder (kernels-cpu/, kernels-wasm/, kernels-webgl/,
 * kernels-webgpu/, kernels-cuda/) imports these names and registers a
 * `KernelConfig` {kernelName, backendName, kernelFunc} for each of them with
 * `tf.registerKernel`. Backends without a registered kernel use the composite
 * implementation in `composite.ts` automatically.
 *
 * Shapes (see docs/spec.md):
 *   scores  [B, h, N, N]      float32
 *   coeffs  [h, 2, r, N, G]   float32 (index 0 = cosine A, 1 = sine B)
 *   hidden  [B, h, N, r]      float32
 */
import type {TensorInfo} from '@tensorflow/tfjs-core';

/** Forward: (scores, coeffs) -> hidden ĥ. */
export const FourierKArAt = 'FourierKArAt';
export interface FourierKArAtInputs {
  scores: TensorInfo;
  coeffs: TensorInfo;
}

/**
 * Backward: (dy = dL/dĥ, scores, coeffs) -> [dScores, dCoeffs].
 * dScores has the shape of scores, dCoeffs the shape of coeffs.
 */
export const FourierKArAtGrad = 'FourierKArAtGrad';
export interface FourierKArAtGradInputs {
  dy: TensorInfo;
  scores: TensorInfo;
  coeffs: TensorInfo;
}

/** Neither kernel takes attributes: r and G are read from the coeffs shape. */
export interface FourierKArAtAttrs {}

/** Largest grid size the fused GPU kernels are required to support. */
export const MAX_FUSED_GRID = 8;

/** Sizes implied by the inputs, shared by every kernel. */
export interface FourierKArAtDims {
  batch: number;
  heads: number;
  tokens: number;
  rank: number;
  grid: number;
}

export function fourierKArAtDims(scores: TensorInfo, coeffs: TensorInfo): FourierKArAtDims {
  const [batch, heads, tokens] = scores.shape;
  return {batch, heads, tokens, rank: coeffs.shape[2], grid: coeffs.shape[4]};
}
