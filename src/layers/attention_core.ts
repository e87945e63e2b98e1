/**
 * The attention math of KArAtMultiHeadAttention, in one place, so that a fused attention
 * kernel can replace it without touching the layer.
 *
 * Inputs are the per-head projections in [B, h, tokens, d] layout; the query is already
 * scaled by 1/√keyDim (as tfjs-layers' MultiHeadAttention does). Softmax attention forms the
 * T x S probabilities (with no mask, dropout or returned scores: softmaxAttention, whose backward
 * recomputes them from q and k instead of keeping them); KArAt attention goes through
 * operatorAttention, i.e. the fold ĥ (Wᵀ V), so the activated N x N matrix σ̂(S) is formed only
 * when `returnScores` is set.
 */
import * as tf from '@tensorflow/tfjs-core';

import {operatorActivation, operatorAttention, operatorHidden, ResolvedOperatorConfig} from '../bases/index';
import {fourierAttention, softmaxAttention} from '../../core/attention';
import {fusedLayerKernelOn, fusedLayersOn} from '../../core/flags';
import {foldedAttention} from '../../core/fourier_karat';
import {softmaxLastAxis} from '../../core/fused_layers';
import {KArAtSoftmax} from '../../core/kernel_names';
import {KArAtArgumentError} from '../../core/validate';

export type CoreActivation =
    {kind: 'softmax'} |
    {kind: 'karat', cfg: ResolvedOperatorConfig, params: Record<string, tf.Tensor>};

export interface AttentionCoreArgs {
  /** [B, h, T, dk], already multiplied by 1/√dk. */
  query: tf.Tensor4D;
  /** [B, h, S, dk] */
  key: tf.Tensor4D;
  /** [B, h, S, dv] */
  value: tf.Tensor4D;
  activation: CoreActivation;
  /** Dropout rate (applied only when `training`). */
  dropout: number;
  training: boolean;
  /** Boolean/0-1 mask broadcastable to [B, h, T, S] (softmax only); false entries are masked. */
  mask?: tf.Tensor | null;
  /** Also return the activated attention matrix σ(S) / σ̂(S), [B, h, T, S]. */
  returnScores: boolean;
}

export interface AttentionCoreResult {
  /** [B, h, T, dv] */
  output: tf.Tensor4D;
  /** [B, h, T, S] when requested. */
  scores?: tf.Tensor4D;
}

/** Raw scores S = Q Kᵀ (query pre-scaled), [B, h, T, S]. */
export function attentionScores(query: tf.Tensor4D, key: tf.Tensor4D): tf.Tensor4D {
  return tf.matMul(query, key, false, true) as tf.Tensor4D;
}

const CORE_KEYS = ['query', 'key', 'value', 'activation', 'dropout', 'training', 'mask', 'returnScores'];

export function attentionCore(a: AttentionCoreArgs): AttentionCoreResult {
  for (const k of Object.keys(a ?? {})) {
    if (!CORE_KEYS.includes(k)) {
      throw new KArAtArgumentError(`attentionCore: unknown argument '${k}'; the arguments are ${CORE_KEYS.join(', ')}`);
    }
  }
  return tf.tidy(() => {
    const drop = a.training && a.dropout > 0;
    if (a.activation.kind === 'softmax' && a.mask == null && !drop && !a.returnScores && fusedLayersOn()) {
      // Flash-style: only q, k, v are kept for the backward pass, which recomputes the probabilities.
      return {output: softmaxAttention(a.query, a.key, a.value)};
    }
    if (a.activation.kind === 'karat') {
      const {cfg, params} = a.activation;
      if (cfg.basis === 'fourier' && cfg.baseActivation === 'zero' && cfg.rank !== 'full' && !drop &&
          !a.returnScores && a.mask == null && fusedLayersOn()) {
        // Keeps q, k, v only; no N x N scores here (fourierAttention forms them itself, or not at all).
        return {output: fourierAttention(a.query, a.key, a.value, params.coeffs as tf.Tensor5D, params.proj as tf.Tensor3D)};
      }
    }
    const s = attentionScores(a.query, a.key);
    if (a.activation.kind === 'softmax') {
      let logits = s;
      if (a.mask != null) {
        // As Keras' Softmax layer with a mask: add a large negative number where masked.
        const keep = tf.cast(a.mask, 'float32');
        logits = tf.add(logits, tf.mul(tf.sub(1, keep), -1e9)) as tf.Tensor4D;
      }
      // On webgpu (flag KARAT_FUSED_LAYERS) a softmax whose backward is one dispatch.
      const p = (a.mask == null && fusedLayerKernelOn(KArAtSoftmax) ?
          softmaxLastAxis(logits) : tf.softmax(logits, -1)) as tf.Tensor4D;
      const pd = drop ? tf.dropout(p, a.dropout) as tf.Tensor4D : p;
      const output = tf.matMul(pd, a.value) as tf.Tensor4D;
      return a.returnScores ? {output, scores: p} : {output};
    }
    if (a.mask != null) {
      throw new KArAtArgumentError(
          'KArAtMultiHeadAttention: attention masks are only defined for softmax attention; ' +
          'a KArAt operator has no normalisation to mask');
    }
    const {cfg, params} = a.activation;
    let output: tf.Tensor4D;
    if (!drop) {
      output = operatorAttention(s, params, cfg, a.value);
    } else {
      // Dropout acts on ĥ (the r-dimensional hidden activation) so the fold still applies.
      const hidden = (x: tf.Tensor4D, p: Record<string, tf.Tensor>) =>
          tf.dropout(operatorHidden(x, p, cfg), a.dropout) as tf.Tensor4D;
      output = cfg.rank === 'full' ?
          tf.matMul(hidden(s, params), a.value) as tf.Tensor4D :
          foldedAttention(hidden, s, params, params.proj as tf.Tensor3D, a.value);
    }
    return a.returnScores ? {output, scores: operatorActivation(s, params, cfg)} : {output};
  });
}
