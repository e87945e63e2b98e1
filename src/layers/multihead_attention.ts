/**
 * KArAtMultiHeadAttention: a drop-in for tfjs-layers' (Keras-style) MultiHeadAttention whose
 * attention activation is softmax (identical math) or a learnable KArAt operator.
 *
 * Weight layout and names match tfjs-layers' MultiHeadAttention (its EinsumDense sublayers):
 *   <name>/query/kernel [dim, h, keyDim]      <name>/query/bias [h, keyDim]
 *   <name>/key/kernel   [dimK, h, keyDim]     <name>/key/bias   [h, keyDim]
 *   <name>/value/kernel [dimV, h, valueDim]   <name>/value/bias [h, valueDim]
 *   <name>/attentionOutput/kernel [h, valueDim, ...outputShape]
 *   <name>/attentionOutput/bias   [...outputShape]
 * followed, for KArAt, by the operator's tensors <name>/karat/<param> (e.g. coeffs
 * [h, 2, r, N, G] and proj [h, N, r] for Fourier) when this layer holds the operator.
 *
 * Calling contract (tfjs-layers' MultiHeadAttention.call):
 *   layer.call(query, {value, key, attentionMask, useCausalMask, training, returnAttentionScores})
 *   layer.apply(query, {same}), eager or symbolic, on fresh and built layers;
 *   layer.apply(query) / apply([query, value(, key)]) too (self-attention works in tf.sequential).
 * Tensor arguments (value, key, attentionMask) become the input list [query, value, key, mask]
 * of the layer's node, because tfjs' graph executor forwards no tensor keyword argument; the
 * boolean options of a symbolic call are kept by the layer (and in the model.json's node), since
 * the executor forwards only `training`.
 *
 * Masks (softmax), with tfjs-layers' mask algebra: the query's kerasMask [B,T] -> [B,T,1], the
 * value's (and a distinct key's) [B,S] -> [B,1,S], the causal mask [1,T,S], all ANDed, then ANDed
 * with `attentionMask` ([T,S], [B,T,S] or [B,h,T,S]); masked logits get -1e9 before the softmax,
 * as tfjs' Softmax layer does. The output carries the query's mask onward. A KArAt operator has
 * no normalisation to mask: any mask reaching it is a KArAtArgumentError naming its source.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type {LayerArgs} from '@tensorflow/tfjs-layers/dist/engine/topology';
import type {Kwargs} from '@tensorflow/tfjs-layers/dist/types';

import {operatorParamSpecs} from '../bases/index';
import {KArAtArgumentError} from '../../core/validate';
import {mergeHeadsProject, projectHeads} from '../../core/attention';
import {fusedLayersOn} from '../../core/flags';
import {attentionCore, CoreActivation} from './attention_core';
import {AttentionActivation, resolveAttention, ResolvedAttention, serializeAttention} from './attention_config';
import {KArAtOperator} from './karat_operator';
import {baseLayerArgs, checkKnownArgs, checkPositiveIntArg, checkRate, cloneInitializer, hasClassName, isShapeList, parseWeightArgs, ParsedWeightArgs, registerClassOnce, rejectActivityRegularizer, serializeWeightArgs, Shape, WEIGHT_ARG_KEYS, WeightArgs, BASE_LAYER_ARG_KEYS} from './layer_utils';

export interface KArAtMultiHeadAttentionArgs extends LayerArgs, WeightArgs {
  /** Number of attention heads h. */
  numHeads: number;
  /** Size of each head for query and key. */
  keyDim: number;
  /** Size of each head for value (default keyDim). */
  valueDim?: number | null;
  /** Dropout rate on the attention (softmax: on the probabilities; KArAt: on ĥ). Default 0. */
  dropout?: number;
  /** Biases in the Q/K/V/output projections. Default true. */
  useBias?: boolean;
  /** Output feature shape (default: the query's last dimension). */
  outputShape?: number | number[] | null;
  /**
   * Axes attention runs over. Only attention over the token axis of rank-3 inputs
   * [batch, tokens, features] is supported: null (default), 1 or -2 (negative axes count from
   * the end of the input shape, as in Keras).
   */
  attentionAxes?: number | number[] | null;
  /**
   * Default of the call option of the same name: also output σ(S) / σ̂(S) per head,
   * [B, h, T, S] (the layer then has two outputs).
   */
  returnAttentionScores?: boolean;
  /** 'softmax' (default) or a KArAt configuration {basis, grid, rank, baseActivation, mode, init, ...}. */
  attentionActivation?: AttentionActivation;
  // Entries of tfjs-layers' / Keras' MultiHeadAttention configs (so their configs load):
  /** The build signature stored by tfjs-layers; checked against the inputs at build time. */
  queryShape?: Shape | null;
  valueShape?: Shape | null;
  keyShape?: Shape | null;
  /** Keras' dropout seed: accepted only when it has no effect (null, or dropout 0). */
  seed?: number | null;
  /** Keras' flash-attention switch: accepted, our softmax takes its flash-style path whenever it can. */
  flashAttention?: boolean | null;
  /** Keras' gated attention: only false/null (not implemented). */
  useGate?: boolean | null;
  /** Keras' sliding-window attention: only null (not implemented). */
  slidingWindow?: number | null;
}

/** The options of `call` / `apply` (tfjs-layers' MultiHeadAttentionOptions plus returnAttentionScores). */
export interface AttentionCallOptions {
  /** [B, S, dimV]; default: the query (self-attention). */
  value?: tf.Tensor | tfl.SymbolicTensor;
  /** [B, S, dimK]; default: the value. */
  key?: tf.Tensor | tfl.SymbolicTensor;
  /** Boolean or 0/1 mask [T, S], [B, T, S] or [B, h, T, S]; false / 0 = do not attend (softmax only). */
  attentionMask?: tf.Tensor | tfl.SymbolicTensor;
  /** Causal (lower-triangular) mask: query token t attends to key tokens <= t (softmax only). */
  useCausalMask?: boolean;
  /** Training mode: attention dropout on. */
  training?: boolean;
  /** Also return the activated attention per head, [B, h, T, S]: the result is [output, scores]. */
  returnAttentionScores?: boolean;
}

const LAYER = 'KArAtMultiHeadAttention';

/** Keys of AttentionCallOptions. */
const CALL_KEYS = ['value', 'key', 'attentionMask', 'useCausalMask', 'training', 'returnAttentionScores'];
/**
 * Keyword arguments tfjs' engine adds by itself. `mask` is not read: tfjs 4.22's graph executor
 * passes only the first input's mask and leaves it in place for later layers; implicit masks are
 * read from the inputs' `kerasMask`, as tfjs-layers' and Keras' MultiHeadAttention do.
 */
const ENGINE_KEYS = ['mask'];

const OWN_KEYS = [
  'numHeads', 'keyDim', 'valueDim', 'dropout', 'useBias', 'outputShape', 'attentionAxes',
  'returnAttentionScores', 'attentionActivation', 'queryShape', 'valueShape', 'keyShape', 'seed',
  'flashAttention', 'useGate', 'slidingWindow',
];

type AnyTensor = tf.Tensor | tfl.SymbolicTensor;

interface ParsedCall {
  query: AnyTensor;
  value: AnyTensor | null;
  key: AnyTensor | null;
  attentionMask: AnyTensor | null;
  useCausalMask?: boolean;
  training?: boolean;
  returnAttentionScores?: boolean;
  symbolic: boolean;
}

/** Options of the layer's symbolic call(s), used when tfjs' graph executor runs the node. */
export interface GraphCallOptions {
  useCausalMask: boolean;
  returnAttentionScores: boolean;
}

function isTensorLike(x: unknown): x is AnyTensor {
  return x instanceof tf.Tensor || x instanceof tfl.SymbolicTensor;
}

function checkBool(arg: string, v: unknown, dflt: boolean): boolean {
  if (v == null) return dflt;
  if (typeof v !== 'boolean') {
    throw new KArAtArgumentError(`${LAYER}: argument '${arg}' must be a boolean, got ${JSON.stringify(v)}`);
  }
  return v;
}

function shapeStr(s: ReadonlyArray<number | null>): string {
  return `[${s.map(d => d ?? 'null').join(', ')}]`;
}

/**
 * Normalises `attentionAxes` for rank-3 inputs (negative axes count from the end of the input
 * shape, as Keras does) and keeps only what is supported: the token axis.
 */
function normaliseAttentionAxes(axes: unknown): number[] | null {
  if (axes == null) return null;
  const list = Array.isArray(axes) ? axes : [axes];
  if (list.length === 0 || !list.every(a => typeof a === 'number' && Number.isInteger(a))) {
    throw new KArAtArgumentError(
        `${LAYER}: argument 'attentionAxes' must be an integer or an array of integers, got ${JSON.stringify(axes)}`);
  }
  const norm = (list as number[]).map(a => (a < 0 ? 3 + a : a));
  if (norm.length !== 1 || norm[0] !== 1) {
    throw new KArAtArgumentError(
        `${LAYER}: argument 'attentionAxes' supports only attention over the token axis of ` +
        `[batch, tokens, features] inputs: null, 1 or -2 (axes normalised for rank-3 inputs), got ` +
        `${JSON.stringify(axes)} -> ${JSON.stringify(norm)}`);
  }
  return [1];
}

export class KArAtMultiHeadAttention extends tfl.layers.Layer {
  static className = 'KArAtMultiHeadAttention';

  readonly numHeads: number;
  readonly keyDim: number;
  readonly valueDim: number;
  readonly dropout: number;
  readonly useBias: boolean;
  readonly outputShapeArg: number[] | null;
  /** Normalised attentionAxes: null (default) or [1]. */
  readonly attentionAxes: number[] | null;
  /** Default of the call option `returnAttentionScores`. */
  readonly returnAttentionScores: boolean;
  readonly attention: ResolvedAttention;
  private readonly w: ParsedWeightArgs;
  private readonly signature: {query: Shape | null, value: Shape | null, key: Shape | null};

  /** The KArAt operator this layer uses (its own, or the shared universal one); null for softmax. */
  operator: KArAtOperator | null = null;

  private kernels: Record<string, tfl.LayerVariable> = {};
  /** Options of the symbolic call(s) of this layer (null until it is applied symbolically). */
  private graphOptions: GraphCallOptions | null = null;
  /** Set while super.apply runs a symbolic call: its returnAttentionScores, for computeOutputShape. */
  private pendingReturnScores: boolean | null = null;
  /** Whether the last eager call returned scores (for computeMask, which tfjs calls right after). */
  private lastCallReturnedScores = false;
  /** True while our apply() runs tfjs' Layer.apply, which builds inside the layer's name scope. */
  private inApply = false;

  constructor(args: KArAtMultiHeadAttentionArgs) {
    if (args == null || typeof args !== 'object') {
      throw new KArAtArgumentError(`${LAYER}: expected an arguments object {numHeads, keyDim, ...}`);
    }
    checkKnownArgs(LAYER, args as unknown as Record<string, unknown>, [...OWN_KEYS, ...WEIGHT_ARG_KEYS, ...BASE_LAYER_ARG_KEYS]);
    super(baseLayerArgs(args as unknown as Record<string, unknown>, LAYER) as LayerArgs);
    this.numHeads = checkPositiveIntArg(LAYER, 'numHeads', args.numHeads);
    this.keyDim = checkPositiveIntArg(LAYER, 'keyDim', args.keyDim);
    this.valueDim = checkPositiveIntArg(LAYER, 'valueDim', args.valueDim ?? args.keyDim);
    this.dropout = checkRate(LAYER, 'dropout', args.dropout ?? 0);
    this.useBias = checkBool('useBias', args.useBias, true);
    if (args.outputShape == null) {
      this.outputShapeArg = null;
    } else {
      const os = Array.isArray(args.outputShape) ? args.outputShape : [args.outputShape];
      os.forEach((d, i) => checkPositiveIntArg(LAYER, `outputShape[${i}]`, d));
      this.outputShapeArg = os;
    }
    this.attentionAxes = normaliseAttentionAxes(args.attentionAxes);
    this.returnAttentionScores = checkBool('returnAttentionScores', args.returnAttentionScores, false);
    this.attention = resolveAttention(args.attentionActivation, 'attentionActivation');
    rejectActivityRegularizer(LAYER, args.activityRegularizer);
    this.w = parseWeightArgs(args);
    if (args.seed != null && this.dropout > 0) {
      throw new KArAtArgumentError(
          `${LAYER}: argument 'seed' (${JSON.stringify(args.seed)}) is not supported with dropout > 0: ` +
          `dropout masks come from tfjs' random generator (tfjs-layers' MultiHeadAttention has no seed either)`);
    }
    if (args.flashAttention != null) checkBool('flashAttention', args.flashAttention, false);
    if (args.useGate != null && checkBool('useGate', args.useGate, false)) {
      throw new KArAtArgumentError(`${LAYER}: argument 'useGate' (gated attention, Keras 3) is not supported; use false`);
    }
    if (args.slidingWindow != null) {
      throw new KArAtArgumentError(
          `${LAYER}: argument 'slidingWindow' (Keras 3) is not supported; pass an explicit attentionMask instead`);
    }
    const sig = (n: string, v: unknown): Shape | null => {
      if (v == null) return null;
      if (!Array.isArray(v) || !v.every(d => d == null || (Number.isInteger(d) && d >= 0))) {
        throw new KArAtArgumentError(`${LAYER}: argument '${n}' must be a shape (array of sizes or null), got ${JSON.stringify(v)}`);
      }
      return v as Shape;
    };
    this.signature = {query: sig('queryShape', args.queryShape), value: sig('valueShape', args.valueShape),
                      key: sig('keyShape', args.keyShape)};
    // Masks are honoured (softmax) or rejected by name (KArAt), never dropped.
    this.supportsMasking = true;
  }

  /**
   * The options of this layer's symbolic call(s) (null until it is applied to SymbolicTensors):
   * what tfjs' graph executor runs the layer with, and what an eager call without these options
   * falls back to.
   */
  get graphCallOptions(): Readonly<GraphCallOptions> | null {
    return this.graphOptions == null ? null : {...this.graphOptions};
  }

  get isKArAt(): boolean {
    return this.attention.kind === 'karat';
  }

  /** True when this layer holds (owns) the variables of its operator. */
  get ownsOperator(): boolean {
    return this.operator != null && this.operator.owner === this;
  }

  // ---------------------------------------------------------------- inputs

  /**
   * Reads (inputs, kwargs) of `apply` or `call` into query, value, key, attentionMask and the
   * options, rejecting anything that would otherwise be ignored.
   */
  private parseCall(inputs: unknown, kwargs: Kwargs | undefined, method: 'apply' | 'call'): ParsedCall {
    const where = `${LAYER} '${this.name}'.${method}`;
    if (kwargs != null && (typeof kwargs !== 'object' || Array.isArray(kwargs))) {
      throw new KArAtArgumentError(`${where}: the options must be an object {value, key, attentionMask, ...}`);
    }
    const kw = (kwargs ?? {}) as Record<string, unknown>;
    for (const k of Object.keys(kw)) {
      if (!CALL_KEYS.includes(k) && !ENGINE_KEYS.includes(k)) {
        throw new KArAtArgumentError(
            `${where}: unknown option '${k}'; the options are ${CALL_KEYS.join(', ')} ` +
            `(those of tfjs-layers' MultiHeadAttention.call, plus returnAttentionScores)`);
      }
    }
    const list = (Array.isArray(inputs) ? inputs : [inputs]) as unknown[];
    if (list.length < 1 || list.length > 4) {
      throw new KArAtArgumentError(
          `${where}: expected query, [query, value], [query, value, key] or [query, value, key, ` +
          `attentionMask], got ${list.length} inputs`);
    }
    const names = ['query', 'value', 'key', 'attentionMask'];
    list.forEach((t, i) => {
      if (!isTensorLike(t)) {
        throw new KArAtArgumentError(`${where}: input '${names[i]}' must be a tf.Tensor or SymbolicTensor, got ${typeof t}`);
      }
    });
    const tensorKw = ['value', 'key', 'attentionMask'].filter(k => kw[k] != null);
    if (tensorKw.length > 0 && list.length > 1) {
      throw new KArAtArgumentError(
          `${where}: pass ${tensorKw.join('/')} either in the input list or as options, not both`);
    }
    for (const k of tensorKw) {
      if (!isTensorLike(kw[k])) {
        throw new KArAtArgumentError(`${where}: option '${k}' must be a tf.Tensor or SymbolicTensor, got ${typeof kw[k]}`);
      }
    }
    const at = (i: number, k: string) => (list[i] ?? kw[k] ?? null) as AnyTensor | null;
    const p: ParsedCall = {
      query: list[0] as AnyTensor, value: at(1, 'value'), key: at(2, 'key'), attentionMask: at(3, 'attentionMask'),
      symbolic: list[0] instanceof tfl.SymbolicTensor,
    };
    if (p.key != null && p.value == null) {
      throw new KArAtArgumentError(`${where}: option 'key' given without 'value'`);
    }
    for (const [n, t] of [['value', p.value], ['key', p.key], ['attentionMask', p.attentionMask]] as const) {
      if (t != null && (t instanceof tfl.SymbolicTensor) !== p.symbolic) {
        throw new KArAtArgumentError(
            `${where}: '${n}' must be a ${p.symbolic ? 'SymbolicTensor' : 'tf.Tensor'} like the query`);
      }
    }
    for (const k of ['useCausalMask', 'training', 'returnAttentionScores'] as const) {
      const v = kw[k];
      if (v == null) continue;
      if (typeof v !== 'boolean') {
        throw new KArAtArgumentError(`${where}: option '${k}' must be a boolean, got ${JSON.stringify(v)}`);
      }
      p[k] = v;
    }
    return p;
  }

  /** The input list of the layer's node: [query], [query, value], [query, value, key] or with the mask. */
  private static inputList(p: ParsedCall): AnyTensor[] {
    if (p.attentionMask != null) {
      const v = p.value ?? p.query;
      return [p.query, v, p.key ?? v, p.attentionMask];
    }
    if (p.key != null) return [p.query, p.value!, p.key];
    if (p.value != null) return [p.query, p.value];
    return [p.query];
  }

  private rejectMaskForKArAt(what: string, arg: string) {
    if (this.attention.kind !== 'karat') return;
    throw new KArAtArgumentError(
        `${LAYER} '${this.name}': ${what} (${arg}) reached a KArAt attention layer; a KArAt operator ` +
        `has no normalisation to mask, so masks are supported for attentionActivation 'softmax' only`);
  }

  /**
   * Accepts query | [query, value(, key(, attentionMask))] | (query, {value, key,
   * attentionMask, useCausalMask, training, returnAttentionScores}), symbolic or eager.
   */
  override apply(
      inputs: tf.Tensor | tf.Tensor[] | tfl.SymbolicTensor | tfl.SymbolicTensor[],
      kwargs?: Kwargs): tf.Tensor | tf.Tensor[] | tfl.SymbolicTensor | tfl.SymbolicTensor[] {
    const p = this.parseCall(inputs, kwargs, 'apply');
    const list = KArAtMultiHeadAttention.inputList(p);
    const x = (list.length === 1 ? list[0] : list) as tf.Tensor | tf.Tensor[];
    if (!p.symbolic) {
      // Eager: call() receives the list and the options.
      const kw: Kwargs = {};
      for (const k of ['useCausalMask', 'training', 'returnAttentionScores'] as const) {
        if (p[k] != null) kw[k] = p[k];
      }
      this.linkUniversalIfNeeded(list);
      return this.superApply(x, kw);
    }
    // Symbolic: tfjs' executor will call us with the node's input list and {training} only, so
    // the boolean options are kept here (and, as the node's kwargs, in the model.json).
    if (p.training != null) {
      throw new KArAtArgumentError(
          `${LAYER} '${this.name}'.apply: option 'training' cannot be fixed in a graph: tfjs' graph ` +
          `executor passes the model's own flag (fit: true, predict: false) to every layer`);
    }
    if (p.attentionMask != null) this.rejectMaskForKArAt('an attention mask', 'attentionMask');
    if (p.useCausalMask) this.rejectMaskForKArAt('a causal mask', 'useCausalMask');
    const graph: GraphCallOptions = {
      useCausalMask: p.useCausalMask ?? false,
      returnAttentionScores: p.returnAttentionScores ?? this.returnAttentionScores,
    };
    if (this.graphOptions != null && (this.graphOptions.useCausalMask !== graph.useCausalMask ||
                                      this.graphOptions.returnAttentionScores !== graph.returnAttentionScores)) {
      throw new KArAtArgumentError(
          `${LAYER} '${this.name}'.apply: this layer is already applied in a graph with ` +
          `${JSON.stringify(this.graphOptions)}; tfjs' executor cannot tell its nodes apart, so every ` +
          `symbolic call of one layer must use the same useCausalMask and returnAttentionScores ` +
          `(got ${JSON.stringify(graph)}); use another layer`);
    }
    const nodeKwargs: Kwargs = {};
    if (p.useCausalMask != null) nodeKwargs.useCausalMask = p.useCausalMask;
    if (p.returnAttentionScores != null) nodeKwargs.returnAttentionScores = p.returnAttentionScores;
    this.linkUniversalIfNeeded(list);
    this.pendingReturnScores = graph.returnAttentionScores;
    try {
      const out = this.superApply(x, nodeKwargs);
      this.graphOptions = graph;
      return out;
    } finally {
      this.pendingReturnScores = null;
    }
  }

  private superApply(x: tf.Tensor | tf.Tensor[], kwargs: Kwargs) {
    this.inApply = true;
    try {
      return super.apply(x, kwargs);
    } finally {
      this.inApply = false;
    }
  }

  private linkUniversalIfNeeded(list: AnyTensor[]) {
    if (this.attention.kind === 'karat' && this.attention.mode === 'universal' && this.operator == null) {
      this.linkUniversal(list);
    }
  }

  /**
   * Universal mode: finds, upstream in the graph, the layer holding the shared operator of the
   * same `shareName` and uses it. Without one, this layer becomes the holder when it builds.
   */
  private linkUniversal(inputs: AnyTensor[]) {
    const att = this.attention as Extract<ResolvedAttention, {kind: 'karat'}>;
    const seen = new Set<unknown>();
    const queue: unknown[] = [];
    for (const t of inputs) {
      if (t instanceof tfl.SymbolicTensor) queue.push(t.sourceLayer);
    }
    let holder: KArAtMultiHeadAttention | null = null;
    while (queue.length > 0 && holder == null) {
      const layer = queue.shift() as {inboundNodes?: Array<{inboundLayers: unknown[]}>};
      if (layer == null || seen.has(layer)) continue;
      seen.add(layer);
      // Duck-typed: the holder may come from another loaded copy of this package.
      const cand = layer as unknown as KArAtMultiHeadAttention;
      if (hasClassName(layer, KArAtMultiHeadAttention.className) && cand !== this && cand.ownsOperator &&
          cand.attention.kind === 'karat' && cand.attention.mode === 'universal' &&
          cand.attention.shareName === att.shareName) {
        holder = cand;
        break;
      }
      for (const node of layer.inboundNodes ?? []) queue.push(...node.inboundLayers);
    }
    if (holder == null) return;
    const op = holder.operator!;
    const tokens = this.tokensOf(inputs);
    if (tokens != null && tokens !== op.tokens) {
      throw new KArAtArgumentError(
          `${LAYER} '${this.name}': attentionActivation.mode 'universal' shares one operator ` +
          `across blocks, but this layer attends over N = ${tokens} tokens while '${holder.name}', ` +
          `which holds the shared operator '${att.shareName}', attends over N = ${op.tokens}. ` +
          `Use mode 'blockwise' or a different shareName for blocks with other token counts.`);
    }
    if (this.numHeads !== op.heads) {
      throw new KArAtArgumentError(
          `${LAYER} '${this.name}': attentionActivation.mode 'universal' needs the same numHeads in ` +
          `every block; this layer has ${this.numHeads}, '${holder.name}' has ${op.heads}`);
    }
    if (JSON.stringify(att.operator) !== JSON.stringify(op.cfg)) {
      throw new KArAtArgumentError(
          `${LAYER} '${this.name}': attentionActivation differs from that of '${holder.name}', ` +
          `which holds the shared universal operator '${att.shareName}': ` +
          `${JSON.stringify(att.operator)} vs ${JSON.stringify(op.cfg)}`);
    }
    this.operator = op;
  }

  private tokensOf(inputs: AnyTensor[]): number | null {
    const v = inputs.length > 1 ? inputs[1] : inputs[0];
    const n = v.shape[1];
    return n == null ? null : n;
  }

  /**
   * Shapes as tfjs passes them: one shape (self-attention), [query, value], [query, value, key]
   * (key may be null, tfjs-layers' form), or [query, value, key, attentionMask].
   */
  private splitShapes(inputShape: Shape | Array<Shape | null>):
      {query: Shape, value: Shape, key: Shape, mask: Shape | null} {
    if (!Array.isArray(inputShape) || inputShape.length === 0) {
      throw new KArAtArgumentError(
          `${LAYER} '${this.name}': expected an input shape or a list [queryShape, valueShape, keyShape?], ` +
          `got ${JSON.stringify(inputShape)}`);
    }
    const isList = isShapeList(inputShape as Shape | Shape[]);
    const list = (isList ? inputShape : [inputShape]) as Array<Shape | null>;
    if (list.length > 4) {
      throw new KArAtArgumentError(
          `${LAYER} '${this.name}': expected at most 4 input shapes (query, value, key, attentionMask), got ${list.length}`);
    }
    const query = list[0];
    if (query == null) throw new KArAtArgumentError(`${LAYER} '${this.name}': the query shape is missing`);
    const value = list[1] ?? query;
    const key = list[2] ?? value;
    const names = ['query', 'value', 'key'];
    [query, value, key].forEach((s, i) => {
      if (!Array.isArray(s) || s.length !== 3 || s[2] == null) {
        throw new KArAtArgumentError(
            `${LAYER} '${this.name}': input '${names[i]}' must have shape [batch, tokens, features] ` +
            `with a known feature size (attention over other axes is not supported), got ` +
            `${Array.isArray(s) ? shapeStr(s) : JSON.stringify(s)}`);
      }
    });
    if (value[1] != null && key[1] != null && value[1] !== key[1]) {
      throw new KArAtArgumentError(
          `${LAYER} '${this.name}': all dimensions of 'value' and 'key' except the last one must be ` +
          `equal (the same number of tokens), got value ${shapeStr(value)} and key ${shapeStr(key)}`);
    }
    const mask = list[3] ?? null;
    if (mask != null) {
      const [T, S] = [query[1], value[1]];
      const fits = (d: number | null | undefined, n: number | null | undefined) => d == null || n == null || d === 1 || d === n;
      if (mask.length < 2 || mask.length > 4 || !fits(mask[mask.length - 2], T) || !fits(mask[mask.length - 1], S)) {
        throw new KArAtArgumentError(
            `${LAYER} '${this.name}': argument 'attentionMask' must have shape [T, S], [B, T, S] or ` +
            `[B, numHeads, T, S] (T = ${T} query tokens, S = ${S} key/value tokens), got ${shapeStr(mask)}`);
      }
    }
    return {query, value, key, mask};
  }

  /** The shapes of a tfjs-layers config (queryShape, ...) must match the inputs the layer builds for. */
  private checkSignature(s: {query: Shape, value: Shape, key: Shape}) {
    for (const n of ['query', 'value', 'key'] as const) {
      const want = this.signature[n];
      if (want == null) continue;
      const got = s[n];
      const ok = want.length === got.length && want.every((d, i) => i === 0 || d == null || got[i] == null || d === got[i]);
      if (!ok) {
        throw new KArAtArgumentError(
            `${LAYER} '${this.name}': argument '${n}Shape' ${shapeStr(want)} (from the layer config) does not ` +
            `match the '${n}' input ${shapeStr(got)}`);
      }
    }
  }

  // ---------------------------------------------------------------- weights

  override build(inputShape: Shape | Shape[]): void {
    const s = this.splitShapes(inputShape);
    this.checkSignature(s);
    const h = this.numHeads, dk = this.keyDim, dv = this.valueDim;
    const out = this.outShape(s.query);
    // Built by tfjs' apply: inside the layer's name scope, so weights are named <layer>/<name>.
    // Built directly (call() on a fresh layer, or build()): the same names, given explicitly.
    const prefix = this.inApply ? '' : `${this.name}/`;
    const add = (name: string, shape: number[], kind: 'kernel' | 'bias') => {
      this.kernels[name] = this.addWeight(
          prefix + name, shape, 'float32',
          cloneInitializer(kind === 'kernel' ? this.w.kernelInitializer : this.w.biasInitializer),
          (kind === 'kernel' ? this.w.kernelRegularizer : this.w.biasRegularizer) ?? undefined, true,
          (kind === 'kernel' ? this.w.kernelConstraint : this.w.biasConstraint) ?? undefined);
    };
    add('query/kernel', [s.query[2] as number, h, dk], 'kernel');
    if (this.useBias) add('query/bias', [h, dk], 'bias');
    add('key/kernel', [s.key[2] as number, h, dk], 'kernel');
    if (this.useBias) add('key/bias', [h, dk], 'bias');
    add('value/kernel', [s.value[2] as number, h, dv], 'kernel');
    if (this.useBias) add('value/bias', [h, dv], 'bias');
    add('attentionOutput/kernel', [h, dv, ...out], 'kernel');
    if (this.useBias) add('attentionOutput/bias', out, 'bias');

    if (this.attention.kind === 'karat') {
      const T = s.query[1], S = s.value[1];
      if (S == null || T == null) {
        throw new KArAtArgumentError(
            `${LAYER} '${this.name}': a KArAt operator has parameters per token, so the number of ` +
            `tokens must be known; got query [${s.query}] and value [${s.value}]`);
      }
      if (S !== T) {
        throw new KArAtArgumentError(
            `${LAYER} '${this.name}': KArAt attention needs as many query tokens as key/value tokens ` +
            `(square N x N scores); got ${T} query and ${S} value tokens`);
      }
      if (this.operator == null) {
        const specs = operatorParamSpecs(this.attention.operator, h, S);
        const vars: Record<string, tfl.LayerVariable> = {};
        for (const spec of specs) {
          vars[spec.name] = this.addWeight(
              `${prefix}karat/${spec.name}`, spec.shape, 'float32', spec.initializer, undefined, true);
        }
        this.operator = new KArAtOperator(this.attention.operator, h, S, this, vars,
                                          this.attention.mode, this.attention.shareName);
      }
    }
    this.built = true;
  }

  private outShape(query: Shape): number[] {
    return this.outputShapeArg ?? [query[2] as number];
  }

  /**
   * Output shape for [queryShape, valueShape, keyShape | null] (tfjs-layers' form), a single
   * shape, or the layer's node form [query, value, key, attentionMask]. As tfjs-layers'
   * MultiHeadAttention, a direct call rejects query and value of different feature sizes (the
   * layer itself accepts them: applying it to such inputs works).
   */
  override computeOutputShape(inputShape: Shape | Shape[]): Shape | Shape[] {
    const s = this.splitShapes(inputShape as Array<Shape | null>);
    if (this.pendingReturnScores == null && s.query[2] !== s.value[2]) {
      throw new KArAtArgumentError(
          `${LAYER} '${this.name}'.computeOutputShape: the last dimension of 'queryShape' and ` +
          `'valueShape' must be equal (as in tfjs-layers' MultiHeadAttention), but are ${s.query[2]} and ` +
          `${s.value[2]}. Received: queryShape=${shapeStr(s.query)}, valueShape=${shapeStr(s.value)}`);
    }
    const out: Shape = [s.query[0], s.query[1], ...this.outShape(s.query)];
    const scores = this.pendingReturnScores ?? this.graphOptions?.returnAttentionScores ?? this.returnAttentionScores;
    if (!scores) return out;
    return [out, [s.query[0], this.numHeads, s.query[1], s.value[1]]];
  }

  /** The query's mask goes on to the output (as Keras); tfjs calls this right after `call`. */
  override computeMask(inputs: tf.Tensor | tf.Tensor[], mask?: tf.Tensor | tf.Tensor[]): tf.Tensor | tf.Tensor[] {
    const q = Array.isArray(inputs) ? inputs[0] : inputs;
    let qm = (Array.isArray(mask) ? mask[0] : mask) ?? null;
    if (qm == null && q instanceof tf.Tensor && q.kerasMask != null && !q.kerasMask.isDisposed) qm = q.kerasMask;
    // A copy: the query (and its mask) may be disposed while the output lives on.
    const out = qm == null ? null : tf.clone(qm);
    return (this.lastCallReturnedScores ? [out, null] : out) as unknown as tf.Tensor;
  }

  // ---------------------------------------------------------------- compute

  /**
   * call(query, {value, key, attentionMask, useCausalMask, training, returnAttentionScores}) as
   * tfjs-layers' MultiHeadAttention.call (also [query, value, key, attentionMask] lists). Builds
   * the layer on first use. Returns the output, or [output, scores] with returnAttentionScores.
   */
  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor | tf.Tensor[] {
    const p = this.parseCall(inputs, kwargs, 'call');
    if (p.symbolic) {
      throw new KArAtArgumentError(`${LAYER} '${this.name}'.call: takes tf.Tensors; use apply() for SymbolicTensors`);
    }
    const query = p.query as tf.Tensor;
    const value = (p.value ?? query) as tf.Tensor;
    const key = (p.key ?? value) as tf.Tensor;
    if (!this.built) {
      this.build([query.shape, value.shape, key.shape]);
      const initial = (this as unknown as {initialWeights?: tf.Tensor[]}).initialWeights;
      if (initial != null) this.setWeights(initial);
    }
    const returnScores = p.returnAttentionScores ?? this.graphOptions?.returnAttentionScores ?? this.returnAttentionScores;
    const useCausalMask = p.useCausalMask ?? this.graphOptions?.useCausalMask ?? false;
    this.lastCallReturnedScores = returnScores;
    return tf.tidy(() => {
      const {output, scores} = this.compute(query, value, key, p.attentionMask as tf.Tensor | null,
                                            useCausalMask, p.training === true, returnScores);
      return returnScores ? [output, scores!] : output;
    });
  }

  /** Exactly like `call(query, {...options, returnAttentionScores: true})`: [output, scores]. */
  callAndReturnAttentionScores(query: tf.Tensor, options: AttentionCallOptions = {}): [tf.Tensor, tf.Tensor] {
    if (options == null || typeof options !== 'object') {
      throw new KArAtArgumentError(`${LAYER} '${this.name}'.callAndReturnAttentionScores: options must be an object`);
    }
    return this.call(query, {...options, returnAttentionScores: true} as Kwargs) as [tf.Tensor, tf.Tensor];
  }

  /**
   * x [B, N, F] -> scale · (x W + b) as heads [B, h, N, d]. With KARAT_FUSED_LAYERS on
   * (default) the lean op that keeps only x and W for backward; off: the stock tfjs ops.
   */
  private projectHeads(x: tf.Tensor, which: 'query' | 'key' | 'value', scale = 1): tf.Tensor4D {
    const w = this.kernels[`${which}/kernel`].read() as tf.Tensor3D;
    const bias = this.useBias ? this.kernels[`${which}/bias`].read() as tf.Tensor2D : null;
    if (fusedLayersOn()) return projectHeads(x as tf.Tensor3D, w, bias, scale);
    const [B, N, F] = x.shape, [, h, d] = w.shape;
    let y = tf.matMul(tf.reshape(x, [B * N, F]), tf.reshape(w, [F, h * d]));
    if (bias != null) y = tf.add(y, tf.reshape(bias, [h * d]));
    const heads = tf.transpose(tf.reshape(y, [B, N, h, d]), [0, 2, 1, 3]) as tf.Tensor4D;
    return scale === 1 ? heads : tf.mul(heads, scale) as tf.Tensor4D;
  }

  /** o [B, h, T, dv] -> [B, T, ...outputShape]: heads merged, output projection (lean op or stock ops). */
  private projectOutput(o: tf.Tensor4D): tf.Tensor {
    const w = this.kernels['attentionOutput/kernel'].read();
    const bias = this.useBias ? this.kernels['attentionOutput/bias'].read() : null;
    if (fusedLayersOn()) return mergeHeadsProject(o, w, bias);
    const [B, h, T, dv] = o.shape, out = w.shape.slice(2), n = out.reduce((a, c) => a * c, 1);
    let y = tf.matMul(tf.reshape(tf.transpose(o, [0, 2, 1, 3]), [B * T, h * dv]), tf.reshape(w, [h * dv, n]));
    if (bias != null) y = tf.add(y, tf.reshape(bias, [n]));
    return tf.reshape(y, [B, T, ...out]);
  }

  private compute(query: tf.Tensor, value: tf.Tensor, key: tf.Tensor, attentionMask: tf.Tensor | null,
                  useCausalMask: boolean, training: boolean, returnScores: boolean): {output: tf.Tensor, scores?: tf.Tensor} {
    for (const [name, t] of [['query', query], ['value', value], ['key', key]] as const) {
      if (t.rank !== 3) {
        throw new KArAtArgumentError(
            `${LAYER} '${this.name}': input '${name}' must have rank 3 [batch, tokens, features], ` +
            `got shape [${t.shape}]`);
      }
    }
    if (value.shape[1] !== key.shape[1] || value.shape[0] !== key.shape[0]) {
      throw new KArAtArgumentError(
          `${LAYER} '${this.name}': 'value' ${shapeStr(value.shape)} and 'key' ${shapeStr(key.shape)} must ` +
          `have the same batch size and number of tokens`);
    }
    const T = query.shape[1] as number, S = value.shape[1] as number;
    if (query.shape[0] === 0) {
      // An empty batch gives an empty result (some backends, e.g. wasm, cannot project 0 rows).
      const out = this.kernels['attentionOutput/kernel'].read().shape.slice(2);
      return {output: tf.zeros([0, T, ...out]), scores: returnScores ? tf.zeros([0, this.numHeads, T, S]) : undefined};
    }
    const mask = this.attentionMaskFor(query, value, key, attentionMask, useCausalMask);
    const q = this.projectHeads(query, 'query', 1 / Math.sqrt(this.keyDim));
    const k = this.projectHeads(key, 'key');
    const v = this.projectHeads(value, 'value');
    let activation: CoreActivation = {kind: 'softmax'};
    if (this.attention.kind === 'karat') {
      const op = this.operator!;
      if (S !== op.tokens || T !== op.tokens) {
        throw new KArAtArgumentError(
            `${LAYER} '${this.name}': the KArAt operator was built for N = ${op.tokens} tokens, ` +
            `got ${T} query and ${S} value tokens`);
      }
      activation = {kind: 'karat', cfg: op.cfg, params: op.params()};
    }
    const {output, scores} = attentionCore({
      query: q, key: k, value: v, activation, dropout: this.dropout, training, mask, returnScores,
    });
    return {output: this.projectOutput(output), scores};
  }

  /**
   * The attention mask [B|1, h|1, T, S] (broadcast over what is 1), or null: tfjs-layers' algebra
   * (computeAttentionMask + maskedSoftmax) — implicit masks of query [B,T,1], value [B,1,S] and a
   * distinct key [B,1,S] (as Keras), the causal mask [1,T,S], ANDed; then ANDed with the explicit
   * mask (cast to bool), or the explicit mask as given when there is no implicit one. The explicit
   * mask is brought to rank 4 by inserting axes before its last two, as tfjs-layers does.
   * KArAt: any mask is an error naming its source.
   */
  private attentionMaskFor(query: tf.Tensor, value: tf.Tensor, key: tf.Tensor, attentionMask: tf.Tensor | null,
                           useCausalMask: boolean): tf.Tensor | null {
    const [B, T] = query.shape as [number, number], S = value.shape[1] as number;
    const implicit: Array<[string, tf.Tensor | undefined, number]> = [
      ['query', query.kerasMask, T], ['value', value.kerasMask, S],
      ['key', key !== value ? key.kerasMask : undefined, S],
    ];
    if (attentionMask != null) this.rejectMaskForKArAt('an attention mask', 'attentionMask');
    if (useCausalMask) this.rejectMaskForKArAt('a causal mask', 'useCausalMask');
    for (const [n, m] of implicit) {
      if (m != null) this.rejectMaskForKArAt(`the ${n}'s implicit mask (kerasMask, e.g. from Embedding({maskZero: true}))`, `${n}.kerasMask`);
    }
    let explicit: tf.Tensor | null = null;
    if (attentionMask != null) {
      const m = attentionMask;
      const h = this.numHeads;
      const bad = () => new KArAtArgumentError(
          `${LAYER} '${this.name}': argument 'attentionMask' must have shape [T, S], [B, T, S] or ` +
          `[B, numHeads, T, S] (here T = ${T} query tokens, S = ${S} key/value tokens, B = ${B}, ` +
          `numHeads = ${h}; dimensions of size 1 broadcast), got ${shapeStr(m.shape)}`);
      if (!(m instanceof tf.Tensor) || m.rank < 2 || m.rank > 4) throw bad();
      if (m.dtype !== 'bool' && m.dtype !== 'float32' && m.dtype !== 'int32') {
        throw new KArAtArgumentError(
            `${LAYER} '${this.name}': argument 'attentionMask' must be bool, int32 or float32, got ${m.dtype}`);
      }
      const full: number[] = [...new Array<number>(4 - m.rank).fill(1), ...m.shape];
      // tfjs-layers: rank-2 [T,S] -> [1,1,T,S]; rank-3 [B,T,S] -> [B,1,T,S] (axes inserted at -3).
      const shape4: number[] = m.rank === 3 ? [m.shape[0] as number, 1, m.shape[1] as number, m.shape[2] as number] : full;
      const want = [B, h, T, S];
      if (!shape4.every((d, i) => d === 1 || d === want[i])) throw bad();
      explicit = m.rank === 4 ? m : tf.reshape(m, shape4);
    }
    const and = (a: tf.Tensor | null, b: tf.Tensor) => (a == null ? b : tf.logicalAnd(a, b));
    let auto: tf.Tensor | null = null;
    for (const [n, m, len] of implicit) {
      if (m == null) continue;
      if (m.isDisposed) {
        throw new KArAtArgumentError(
            `${LAYER} '${this.name}': the ${n}'s kerasMask has been disposed (e.g. by a tf.tidy around the ` +
            `layer that made it), so it cannot be applied; keep it alive or pass an explicit attentionMask`);
      }
      if (m.rank !== 2 || m.shape[0] !== B || m.shape[1] !== len) {
        throw new KArAtArgumentError(
            `${LAYER} '${this.name}': the ${n}'s kerasMask must have shape [${B}, ${len}] (batch, tokens), ` +
            `got ${shapeStr(m.shape)}`);
      }
      const shape = n === 'query' ? [B, 1, T, 1] : [B, 1, 1, S];
      auto = and(auto, tf.reshape(tf.cast(m, 'bool'), shape));
    }
    if (useCausalMask) {
      auto = and(auto, tf.reshape(tf.linalg.bandPart(tf.ones([T, S], 'bool'), -1, 0), [1, 1, T, S]));
    }
    if (auto == null) return explicit;
    return explicit == null ? auto : tf.logicalAnd(tf.cast(explicit, 'bool'), auto);
  }

  override getConfig(): tf.serialization.ConfigDict {
    const config: tf.serialization.ConfigDict = {
      numHeads: this.numHeads,
      keyDim: this.keyDim,
      valueDim: this.valueDim,
      dropout: this.dropout,
      useBias: this.useBias,
      outputShape: this.outputShapeArg,
      attentionAxes: this.attentionAxes,
      returnAttentionScores: this.returnAttentionScores,
      attentionActivation: serializeAttention(this.attention) as tf.serialization.ConfigDictValue,
      ...serializeWeightArgs(this.w),
    };
    return {...config, ...super.getConfig()};
  }

  static override fromConfig<T extends tf.serialization.Serializable>(
      cls: tf.serialization.SerializableConstructor<T>, config: tf.serialization.ConfigDict): T {
    return new cls(config);
  }
}
registerClassOnce(KArAtMultiHeadAttention);
