/**
 * The mask algebra of KArAtMultiHeadAttention, tfjs-layers' (computeAttentionMask +
 * maskedSoftmax): the query's kerasMask [B,T] -> [B,T,1], the value's (and a distinct key's)
 * [B,S] -> [B,1,S], the causal mask [1,T,S], all ANDed, then ANDed with `attentionMask` ([T,S],
 * [B,T,S] or [B,h,T,S]), giving one boolean mask broadcastable to [B,h,T,S]. A KArAt operator
 * has no normalisation to mask: any mask reaching it is a KArAtArgumentError naming its source.
 */
import * as tf from '@tensorflow/tfjs-core';

import {KArAtArgumentError} from '../../core/validate';
import {LAYER, shapeStr} from './attention_call_args';

/** What the mask algebra needs to know of the layer. */
export interface MaskedLayer {
  readonly name: string;
  readonly numHeads: number;
  /** True for KArAt attention, which takes no mask. */
  readonly isKArAt: boolean;
}

/** The error for a mask (`what`, from argument `arg`) that reached a KArAt layer; nothing for softmax. */
export function rejectMaskForKArAt(layer: MaskedLayer, what: string, arg: string): void {
  if (!layer.isKArAt) return;
  throw new KArAtArgumentError(
      `${LAYER} '${layer.name}': ${what} (${arg}) reached a KArAt attention layer; a KArAt operator ` +
      `has no normalisation to mask, so masks are supported for attentionActivation 'softmax' only`);
}

/**
 * The explicit mask brought to rank 4 by inserting axes before its last two, as tfjs-layers
 * does ([T,S] -> [1,1,T,S], [B,T,S] -> [B,1,T,S]), after checking its shape and dtype.
 */
function explicitMask(layer: MaskedLayer, m: tf.Tensor, B: number, T: number, S: number): tf.Tensor {
  const h = layer.numHeads;
  const bad = () => new KArAtArgumentError(
      `${LAYER} '${layer.name}': argument 'attentionMask' must have shape [T, S], [B, T, S] or ` +
      `[B, numHeads, T, S] (here T = ${T} query tokens, S = ${S} key/value tokens, B = ${B}, ` +
      `numHeads = ${h}; dimensions of size 1 broadcast), got ${shapeStr(m.shape)}`);
  if (!(m instanceof tf.Tensor) || m.rank < 2 || m.rank > 4) throw bad();
  if (m.dtype !== 'bool' && m.dtype !== 'float32' && m.dtype !== 'int32') {
    throw new KArAtArgumentError(
        `${LAYER} '${layer.name}': argument 'attentionMask' must be bool, int32 or float32, got ${m.dtype}`);
  }
  const full: number[] = [...new Array<number>(4 - m.rank).fill(1), ...m.shape];
  // tfjs-layers: rank-2 [T,S] -> [1,1,T,S]; rank-3 [B,T,S] -> [B,1,T,S] (axes inserted at -3).
  const shape4: number[] = m.rank === 3 ? [m.shape[0] as number, 1, m.shape[1] as number, m.shape[2] as number] : full;
  const want = [B, h, T, S];
  if (!shape4.every((d, i) => d === 1 || d === want[i])) throw bad();
  return m.rank === 4 ? m : tf.reshape(m, shape4);
}

type ImplicitMask = [name: string, mask: tf.Tensor | undefined, tokens: number];

/** The implicit masks (kerasMask of query, value and a distinct key) and the causal mask, ANDed; null if none. */
function implicitMask(layer: MaskedLayer, implicit: ImplicitMask[], B: number, T: number, S: number,
                      useCausalMask: boolean): tf.Tensor | null {
  const and = (a: tf.Tensor | null, b: tf.Tensor) => (a == null ? b : tf.logicalAnd(a, b));
  let auto: tf.Tensor | null = null;
  for (const [n, m, len] of implicit) {
    if (m == null) continue;
    if (m.isDisposed) {
      throw new KArAtArgumentError(
          `${LAYER} '${layer.name}': the ${n}'s kerasMask has been disposed (e.g. by a tf.tidy around the ` +
          `layer that made it), so it cannot be applied; keep it alive or pass an explicit attentionMask`);
    }
    if (m.rank !== 2 || m.shape[0] !== B || m.shape[1] !== len) {
      throw new KArAtArgumentError(
          `${LAYER} '${layer.name}': the ${n}'s kerasMask must have shape [${B}, ${len}] (batch, tokens), ` +
          `got ${shapeStr(m.shape)}`);
    }
    const shape = n === 'query' ? [B, 1, T, 1] : [B, 1, 1, S];
    auto = and(auto, tf.reshape(tf.cast(m, 'bool'), shape));
  }
  if (useCausalMask) {
    auto = and(auto, tf.reshape(tf.linalg.bandPart(tf.ones([T, S], 'bool'), -1, 0), [1, 1, T, S]));
  }
  return auto;
}

/**
 * The attention mask [B|1, h|1, T, S] (broadcast over what is 1), or null: the implicit masks
 * of query [B,T,1], value [B,1,S] and a distinct key [B,1,S] (as Keras), the causal mask
 * [1,T,S], ANDed; then ANDed with the explicit mask (cast to bool), or the explicit mask as
 * given when there is no implicit one. KArAt: any mask is an error naming its source.
 */
export function attentionMaskFor(layer: MaskedLayer, query: tf.Tensor, value: tf.Tensor, key: tf.Tensor,
                                 attentionMask: tf.Tensor | null, useCausalMask: boolean): tf.Tensor | null {
  const [B, T] = query.shape as [number, number], S = value.shape[1] as number;
  const implicit: ImplicitMask[] = [
    ['query', query.kerasMask, T], ['value', value.kerasMask, S],
    ['key', key !== value ? key.kerasMask : undefined, S],
  ];
  if (attentionMask != null) rejectMaskForKArAt(layer, 'an attention mask', 'attentionMask');
  if (useCausalMask) rejectMaskForKArAt(layer, 'a causal mask', 'useCausalMask');
  for (const [n, m] of implicit) {
    if (m != null) {
      rejectMaskForKArAt(layer, `the ${n}'s implicit mask (kerasMask, e.g. from Embedding({maskZero: true}))`, `${n}.kerasMask`);
    }
  }
  const explicit = attentionMask == null ? null : explicitMask(layer, attentionMask, B, T, S);
  const auto = implicitMask(layer, implicit, B, T, S, useCausalMask);
  if (auto == null) return explicit;
  return explicit == null ? auto : tf.logicalAnd(tf.cast(explicit, 'bool'), auto);
}
