/**
 * Universal-mode operator sharing of KArAtMultiHeadAttention: which layer holds the one KArAt
 * operator that the universal-mode attention layers of a model share, and the checks that a layer
 * can use it. A model builder links its layers explicitly before applying them — one
 * UniversalOperatorSharing per model, `sharing.attach(layer)` for every attention layer (the
 * first universal layer of a `shareName` holds the operator, the others use it), or
 * `layer.shareOperatorWith(holder)`. A layer applied without a link (made by tfjs' deserialiser
 * from a model.json, or by hand in a functional graph) uses the holder that it finds upstream of
 * its inputs; that is how `tf.loadLayersModel` re-makes the sharing (the model.json stores none),
 * so an explicit link that the graph would not re-make is a named error.
 */
import * as tfl from '@tensorflow/tfjs-layers';

import {KArAtArgumentError} from '../../core/validate';
import {LAYER} from './attention_call_args';
import type {ResolvedAttention} from './attention_config';
import type {KArAtOperator} from './karat_operator';
import {hasClassName} from './layer_utils';

/**
 * What sharing reads of an attention layer; duck-typed, because a holder may come from another
 * loaded copy of this package.
 */
export interface OperatorSharer {
  readonly name: string;
  readonly numHeads: number;
  readonly attention: ResolvedAttention;
  readonly operator: KArAtOperator | null;
  readonly ownsOperator: boolean;
  getClassName(): string;
}

/** An attention layer that can be linked to a holder (KArAtMultiHeadAttention). */
export interface OperatorSharingLayer extends OperatorSharer {
  shareOperatorWith(holder: OperatorSharingLayer): unknown;
}

type KArAtAttention = Extract<ResolvedAttention, {kind: 'karat'}>;

/** The layer's KArAt attention when it is in universal mode, else null. */
export function universalAttention(layer: OperatorSharer): KArAtAttention | null {
  const a = layer.attention;
  return a.kind === 'karat' && a.mode === 'universal' ? a : null;
}

/**
 * Checks, when `layer.shareOperatorWith(holder)` is called, that the two can share: both
 * universal-mode KArAtMultiHeadAttention layers of one shareName, with the same heads and
 * operator config, and `layer` not built yet.
 */
export function checkCanShare(layer: OperatorSharer & {built: boolean}, holder: unknown): OperatorSharer {
  const where = `${LAYER} '${layer.name}'.shareOperatorWith`;
  const own = universalAttention(layer);
  if (own == null) {
    throw new KArAtArgumentError(
        `${where}: only a layer with attentionActivation.mode 'universal' shares an operator; this ` +
        `layer's attention is ${layer.attention.kind === 'karat' ? `KArAt, mode '${layer.attention.mode}'` : 'softmax'}`);
  }
  if (!hasClassName(holder, LAYER) || holder === layer) {
    throw new KArAtArgumentError(`${where}: argument 'holder' must be another ${LAYER} layer`);
  }
  const h = holder as OperatorSharer;
  const theirs = universalAttention(h);
  if (theirs == null || theirs.shareName !== own.shareName) {
    throw new KArAtArgumentError(
        `${where}: '${h.name}' is not a universal-mode layer of shareName '${own.shareName}', so it ` +
        `holds no operator this layer can share`);
  }
  if (layer.built) {
    throw new KArAtArgumentError(
        `${where}: this layer is already built with its own operator; link it before it is applied or built`);
  }
  checkSameOperator(layer, own, h.name, h.numHeads, theirs.operator);
  return h;
}

/** Same heads and operator config as the holder `holderName`. */
function checkSameOperator(layer: OperatorSharer, own: KArAtAttention, holderName: string, heads: number,
                           cfg: KArAtAttention['operator']) {
  if (layer.numHeads !== heads) {
    throw new KArAtArgumentError(
        `${LAYER} '${layer.name}': attentionActivation.mode 'universal' needs the same numHeads in ` +
        `every block; this layer has ${layer.numHeads}, '${holderName}' has ${heads}`);
  }
  if (JSON.stringify(own.operator) !== JSON.stringify(cfg)) {
    throw new KArAtArgumentError(
        `${LAYER} '${layer.name}': attentionActivation differs from that of '${holderName}', ` +
        `which holds the shared universal operator '${own.shareName}': ` +
        `${JSON.stringify(own.operator)} vs ${JSON.stringify(cfg)}`);
  }
}

/**
 * The operator `layer` uses when it shares `holder`'s, checked against the layer: the same
 * number of tokens (when `tokens` is known), heads and config.
 */
export function sharedOperator(layer: OperatorSharer, holder: OperatorSharer, tokens: number | null): KArAtOperator {
  const own = universalAttention(layer)!;
  const op = holder.operator;
  if (op == null) {
    throw new KArAtArgumentError(
        `${LAYER} '${layer.name}': it shares the universal operator '${own.shareName}' of '${holder.name}', ` +
        `which is not built yet; apply (or build) '${holder.name}' before this layer`);
  }
  const ownerName = op.owner.name;
  if (tokens != null && tokens !== op.tokens) {
    throw new KArAtArgumentError(
        `${LAYER} '${layer.name}': attentionActivation.mode 'universal' shares one operator ` +
        `across blocks, but this layer attends over N = ${tokens} tokens while '${ownerName}', ` +
        `which holds the shared operator '${own.shareName}', attends over N = ${op.tokens}. ` +
        `Use mode 'blockwise' or a different shareName for blocks with other token counts.`);
  }
  checkSameOperator(layer, own, ownerName, op.heads, op.cfg);
  return op;
}

/**
 * The nearest layer upstream of `inputs` in the graph that holds the universal operator of
 * `layer`'s shareName, or null (eager tensors, or no holder upstream).
 */
export function findUpstreamHolder(layer: OperatorSharer, inputs: ReadonlyArray<unknown>): OperatorSharer | null {
  const shareName = universalAttention(layer)?.shareName;
  if (shareName == null) return null;
  const seen = new Set<unknown>();
  const queue: unknown[] = inputs.filter(t => t instanceof tfl.SymbolicTensor)
      .map(t => (t as tfl.SymbolicTensor).sourceLayer);
  while (queue.length > 0) {
    const node = queue.shift() as {inboundNodes?: Array<{inboundLayers: unknown[]}>};
    if (node == null || seen.has(node)) continue;
    seen.add(node);
    const cand = node as unknown as OperatorSharer;
    if (hasClassName(node, LAYER) && cand !== layer && cand.ownsOperator &&
        universalAttention(cand)?.shareName === shareName) {
      return cand;
    }
    for (const n of node.inboundNodes ?? []) queue.push(...n.inboundLayers);
  }
  return null;
}

/**
 * Checks that a symbolic apply of `layer`, explicitly linked to `holder`, is re-made by a reload:
 * the holder found upstream of `inputs` is the one that holds the linked operator.
 */
export function checkLinkInGraph(layer: OperatorSharer, holder: OperatorSharer, inputs: ReadonlyArray<unknown>) {
  if (!inputs.some(t => t instanceof tfl.SymbolicTensor)) return;
  const owner = holder.operator?.owner ?? holder;
  const found = findUpstreamHolder(layer, inputs);
  if (found === owner) return;
  throw new KArAtArgumentError(
      `${LAYER} '${layer.name}': it shares the universal operator of '${owner.name}', but the graph ` +
      `upstream of this layer reaches ${found == null ? 'no holder' : `'${found.name}'`} of shareName ` +
      `'${universalAttention(layer)!.shareName}'. A model.json stores no link: tf.loadLayersModel ` +
      `re-makes it from the holder upstream, so apply '${owner.name}' before this layer, in its graph`);
}

/**
 * Universal-operator sharing for the attention layers of one model: a model builder creates one
 * and attaches every attention layer it makes, before applying it. For each `shareName`, the
 * first universal-mode layer attached holds the operator (its weights `<layer>/karat/*`); every
 * later one shares it (`layer.shareOperatorWith(holder)`). Softmax and blockwise layers are
 * left as they are.
 *
 * ```js
 * const sharing = new karat.UniversalOperatorSharing();
 * for (let i = 0; i < depth; i++) {
 *   const attn = new karat.KArAtMultiHeadAttention({numHeads: 3, keyDim: 64, attentionActivation: act});
 *   sharing.attach(attn);
 *   x = attn.apply(x);
 * }
 * ```
 */
export class UniversalOperatorSharing {
  private readonly holders = new Map<string, OperatorSharingLayer>();

  /** Links `layer` to the holder of its shareName, or makes it that holder. */
  attach(layer: OperatorSharingLayer): void {
    const u = universalAttention(layer);
    if (u == null) return;
    const holder = this.holders.get(u.shareName);
    if (holder == null) {
      this.holders.set(u.shareName, layer);
    } else {
      layer.shareOperatorWith(holder);
    }
  }
}
