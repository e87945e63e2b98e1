/**
 * A general KArAt operator (spec §1): ĥ_p = Σ_q φ̂_pq(s_q) with φ̂ = w_b·b(x) + basis(x),
 * then σ̂(s) = W ĥ (modular, rank r) or σ̃(s) = ĥ (rank 'full', r = N, no W).
 *
 * Parameters (per operator set, h heads, N tokens, R = r or N):
 *   basis params (see each basis), 'proj' [h, N, r] unless rank 'full',
 *   'baseWeight' [h, R, N] (initialised to 1) unless baseActivation is 'zero'.
 * Fourier with zero base therefore has exactly h·N·r·(2G+1) parameters.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

import {foldedAttention} from '../../core/fourier_karat';
import {matMulPerHead} from '../../core/head_matmul';
import {checkTensor, KArAtArgumentError} from '../../core/validate';
import {getBasis} from './registry';
import {KArAtParamSpec, normalInit, OperatorDims, ResolvedOperatorConfig} from './types';

export function operatorDims(cfg: ResolvedOperatorConfig, heads: number, tokens: number,
                             argName = 'attentionActivation'): OperatorDims {
  if (cfg.rank !== 'full' && cfg.rank > tokens) {
    throw new KArAtArgumentError(
        `${argName}.rank must be <= the number of tokens N = ${tokens}, got ${cfg.rank}`);
  }
  return {heads, tokens, outputs: cfg.rank === 'full' ? tokens : cfg.rank};
}

/** Every learnable tensor of one operator set (h heads, N tokens). */
export function operatorParamSpecs(
    cfg: ResolvedOperatorConfig, heads: number, tokens: number): KArAtParamSpec[] {
  const d = operatorDims(cfg, heads, tokens);
  const specs = [...getBasis(cfg.basis).params(cfg, d)];
  if (cfg.rank !== 'full') {
    specs.push({
      name: 'proj',
      shape: [heads, tokens, cfg.rank],
      initializer: cfg.projInit === 'glorot' ?
          tfl.initializers.glorotNormal({seed: cfg.seed == null ? undefined : cfg.seed + 11}) :
          normalInit(cfg, 1 / Math.sqrt(cfg.rank), 11),
    });
  }
  if (cfg.baseActivation !== 'zero') {
    specs.push({name: 'baseWeight', shape: [heads, d.outputs, tokens], initializer: tfl.initializers.ones()});
  }
  return specs;
}

export function operatorParamCount(cfg: ResolvedOperatorConfig, heads: number, tokens: number): number {
  return operatorParamSpecs(cfg, heads, tokens)
      .reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
}

function baseActivation(name: string, x: tf.Tensor4D): tf.Tensor4D {
  switch (name) {
    case 'silu': return tf.mul(x, tf.sigmoid(x));
    case 'identity': return x;
    default: throw new KArAtArgumentError(`attentionActivation.baseActivation: unknown '${name}'`);
  }
}

function checkParams(op: string, params: Record<string, tf.Tensor>, specs: KArAtParamSpec[]) {
  if (params == null || typeof params !== 'object') {
    throw new KArAtArgumentError(`${op}: argument 'params' must be an object of tensors`);
  }
  for (const s of specs) {
    checkTensor(op, `params.${s.name}`, params[s.name], s.shape.map((_, i) => `d${i}`), s.shape);
  }
}

function scoresDims(op: string, scores: tf.Tensor4D) {
  const s = checkTensor(op, 'scores', scores, ['B', 'h', 'N', 'N']) as tf.Tensor4D;
  if (s.shape[2] !== s.shape[3]) {
    throw new KArAtArgumentError(`${op}: argument 'scores' must be [B, h, N, N], got [${s.shape}]`);
  }
  return {h: s.shape[1], N: s.shape[2]};
}

/** ĥ [B, h, N, R] (R = r, or N for rank 'full'), base term included. */
export function operatorHidden(
    scores: tf.Tensor4D, params: Record<string, tf.Tensor>, cfg: ResolvedOperatorConfig): tf.Tensor4D {
  const op = 'operatorHidden';
  const {h, N} = scoresDims(op, scores);
  checkParams(op, params, operatorParamSpecs(cfg, h, N));
  const d = operatorDims(cfg, h, N);
  return tf.tidy(() => {
    let hidden = getBasis(cfg.basis).hidden(scores, params, cfg, d);
    if (cfg.baseActivation !== 'zero') {
      // Σ_q w_b[h,p,q] b(s_q): one per-head matmul with baseWeight [h, R, N].
      const term = matMulPerHead(
          baseActivation(cfg.baseActivation, scores), params.baseWeight as tf.Tensor3D, true);
      hidden = tf.add(hidden, term);
    }
    return hidden;
  });
}

/** σ̂(S) [B, h, N, N]: the activated attention (forms the N x N matrix). */
export function operatorActivation(
    scores: tf.Tensor4D, params: Record<string, tf.Tensor>, cfg: ResolvedOperatorConfig): tf.Tensor4D {
  return tf.tidy(() => {
    const hidden = operatorHidden(scores, params, cfg);
    if (cfg.rank === 'full') return hidden;
    return matMulPerHead(hidden, params.proj as tf.Tensor3D, true);
  });
}

/** σ̂(S)·V [B, h, N, dv], through the fold ĥ (Wᵀ V) for modular operators. */
export function operatorAttention(
    scores: tf.Tensor4D, params: Record<string, tf.Tensor>, cfg: ResolvedOperatorConfig,
    values: tf.Tensor4D): tf.Tensor4D {
  const op = 'operatorAttention';
  const {h, N} = scoresDims(op, scores);
  checkTensor(op, 'values', values, ['B', 'h', 'N', 'dv'], [scores.shape[0], h, N, null]);
  if (cfg.rank === 'full') {
    return tf.tidy(() => tf.matMul(operatorHidden(scores, params, cfg), values) as tf.Tensor4D);
  }
  return foldedAttention(
      (s: tf.Tensor4D, p: Record<string, tf.Tensor>) => operatorHidden(s, p, cfg), scores, params,
      params.proj as tf.Tensor3D, values);
}
