/**
 * The op contract: every kernel name of the package with its inputs and attributes, which
 * every backend implements.
 *
 * This file knows no backend. A backend folder (kernels-cpu/, kernels-wasm/, kernels-webgl/,
 * kernels-webgpu/, kernels-cuda/) imports these names and registers a
 * `KernelConfig` {kernelName, backendName, kernelFunc} for each kernel it implements with
 * `tf.registerKernel`. An op whose kernel is not registered for the active backend (or with
 * flag KARAT_FUSED off, see flags.ts) runs its composite of stock tfjs ops instead.
 *
 * Fourier-KArAt shapes (see docs/spec.md):
 *   scores  [B, h, N, N]      float32
 *   coeffs  [h, 2, r, N, G]   float32 (index 0 = cosine A, 1 = sine B)
 *   hidden  [B, h, N, r]      float32
 */
import type {TensorInfo} from '@tensorflow/tfjs-core';

import type {AdamWUpdateAttrs} from './adamw';


// ------------------------------------------------------------------ Fourier-KArAt

/** Forward: (scores, coeffs) -> hidden ĥ. */
export const FourierKArAt = 'FourierKArAt';
export interface FourierKArAtInputs {scores: TensorInfo, coeffs: TensorInfo}

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

// ------------------------------------------------------------------ layer ops (rows [M, C])

/** {x [M,C], gamma [C], beta [C]} -> y [M,C]: LayerNorm over C. */
export const KArAtLayerNorm = 'KArAtLayerNorm';
export interface KArAtLayerNormInputs {
  x: TensorInfo;
  gamma: TensorInfo;
  beta: TensorInfo;
}
/** Attributes of KArAtLayerNorm and KArAtLayerNormGrad. */
export interface LayerNormAttrs {epsilon: number}

/** {dy [M,C], x [M,C], gamma [C]} -> [dx, dgamma, dbeta]. */
export const KArAtLayerNormGrad = 'KArAtLayerNormGrad';
export interface KArAtLayerNormGradInputs {
  dy: TensorInfo;
  x: TensorInfo;
  gamma: TensorInfo;
}

/** {x [M,C], bias [C]} -> gelu(x + bias) [M,C] (exact, erf-based GELU). */
export const KArAtBiasGelu = 'KArAtBiasGelu';
export interface KArAtBiasGeluInputs {x: TensorInfo, bias: TensorInfo}

/** {dy [M,C], x [M,C], bias [C]} -> [dx, dbias]. */
export const KArAtBiasGeluGrad = 'KArAtBiasGeluGrad';
export interface KArAtBiasGeluGradInputs {
  dy: TensorInfo;
  x: TensorInfo;
  bias: TensorInfo;
}

/** {logits [M,C]} -> softmax over C. */
export const KArAtSoftmax = 'KArAtSoftmax';
export interface KArAtSoftmaxInputs {logits: TensorInfo}

/** {dy [M,C], y [M,C]} -> y·(dy - Σ dy·y), for the softmax output y. */
export const KArAtSoftmaxGrad = 'KArAtSoftmaxGrad';
export interface KArAtSoftmaxGradInputs {dy: TensorInfo, y: TensorInfo}

// ------------------------------------------------------------------ AdamW

/** {param, m, v, grad} (one shape), attrs AdamWUpdateAttrs (adamw.ts) -> [param', m', v']. */
export const KArAtAdamW = 'KArAtAdamW';
/** As KArAtAdamW, but the kernel may update param, m, v in place and return them (used by adamWUpdateVariables). */
export const KArAtAdamWInPlace = 'KArAtAdamWInPlace';
export interface KArAtAdamWInputs {
  param: TensorInfo;
  m: TensorInfo;
  v: TensorInfo;
  grad: TensorInfo;
}
export type {AdamWUpdateAttrs};

// ------------------------------------------------------------------ softmax attention

/** {q [B,h,T,d], k [B,h,S,d], v [B,h,S,dv]} -> softmax(q kᵀ) v [B,h,T,dv]. */
export const KArAtSoftmaxAttention = 'KArAtSoftmaxAttention';
export interface KArAtSoftmaxAttentionInputs {
  q: TensorInfo;
  k: TensorInfo;
  v: TensorInfo;
}

/** {q, k} -> P = softmax(q kᵀ) [B,h,T,S]. */
export const KArAtSoftmaxAttentionProbs = 'KArAtSoftmaxAttentionProbs';
export interface KArAtSoftmaxAttentionProbsInputs {q: TensorInfo, k: TensorInfo}

/** {q, k, v, dy} -> dS = P ∘ (dP − rowsum(dP ∘ P)), dP = dy vᵀ [B,h,T,S]. */
export const KArAtSoftmaxAttentionGradScores = 'KArAtSoftmaxAttentionGradScores';
export interface KArAtSoftmaxAttentionGradScoresInputs {
  q: TensorInfo;
  k: TensorInfo;
  v: TensorInfo;
  dy: TensorInfo;
}

/** Sizes the fused softmax-attention kernels accept (the score row lives in workgroup memory). */
export const SOFTMAX_ATTENTION_LIMITS = {keys: 2048, headDim: 256};

// ------------------------------------------------------------------ flash Fourier-KArAt attention
// u = projᵀ v [B,h,r,dv], dh = dL/dĥ [B,h,N,r]; dS is the score gradient of spec §3.

/** {q, k, coeffs, u} -> ĥ(q kᵀ) u [B,h,N,dv]. */
export const KArAtFourierAttention = 'KArAtFourierAttention';
export interface KArAtFourierAttentionInputs {
  q: TensorInfo;
  k: TensorInfo;
  coeffs: TensorInfo;
  u: TensorInfo;
}

/** {q, k, coeffs} -> ĥ(q kᵀ) [B,h,N,r]. */
export const KArAtFourierAttentionHidden = 'KArAtFourierAttentionHidden';
export interface KArAtFourierAttentionHiddenInputs {
  q: TensorInfo;
  k: TensorInfo;
  coeffs: TensorInfo;
}

/** {q, k, coeffs, dh} -> dS k [B,h,N,d]. */
export const KArAtFourierAttentionGradQ = 'KArAtFourierAttentionGradQ';
/** {q, k, coeffs, dh} -> dSᵀ q [B,h,N,d]. */
export const KArAtFourierAttentionGradK = 'KArAtFourierAttentionGradK';
/** {q, k, coeffs, dh} -> dCoeffs [h,2,r,N,G]. */
export const KArAtFourierAttentionGradCoeffs = 'KArAtFourierAttentionGradCoeffs';
/** Inputs of KArAtFourierAttentionGradQ, GradK and GradCoeffs. */
export interface KArAtFourierAttentionGradInputs {
  q: TensorInfo;
  k: TensorInfo;
  coeffs: TensorInfo;
  dh: TensorInfo;
}

/** {v, du} -> Σ_b v duᵀ [h,N,r]. */
export const KArAtFourierAttentionGradProj = 'KArAtFourierAttentionGradProj';
export interface KArAtFourierAttentionGradProjInputs {v: TensorInfo, du: TensorInfo}

/**
 * Sizes the flash-style Fourier-KArAt kernels accept: rank r and grid G (one output p per
 * thread, unrolled harmonics), the q/k head dim (staged in workgroup memory), tokens N and B·h
 * (one dispatch dimension of at most 65535 workgroups each). The value head dim is free.
 */
export const FOURIER_ATTENTION_LIMITS = {rank: 64, grid: 8, headDim: 256, tokens: 65535, batchHeads: 65535};
