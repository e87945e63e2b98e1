/**
 * KArAtMultiHeadAttention: a drop-in for tfjs-layers' (Keras-style) MultiHeadAttention whose
 * attention activation is softmax (identical math) or a learnable KArAt operator. This module is
 * the layer: its config, weights, and the orchestration of a call; the calling contract lives in
 * attention_call_args.ts, the mask algebra in attention_mask.ts, the attention math in
 * attention_core.ts and universal-operator sharing in operator_sharing.ts.
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
 * the executor forwards only `training`. The output carries the query's mask onward.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type {LayerArgs} from '@tensorflow/tfjs-layers/dist/engine/topology';
import type {Kwargs} from '@tensorflow/tfjs-layers/dist/types';

import {operatorParamSpecs} from '../bases/index';
import {KArAtArgumentError} from '../../core/validate';
import {mergeHeadsProject, projectHeads} from '../../core/attention';
import {fusedLayersOn} from '../../core/flags';
import {AnyTensor, AttentionCallOptions, checkBool, checkComputeInputs, checkSignature, flagKwargs, GraphCallOptions, inputList, LAYER, normaliseAttentionAxes, outputFeatures, outputShapeFor, parseCall, ParsedCall, parseOutputShape, parseSignature, ShapeSignature, splitShapes, tokensOf} from './attention_call_args';
import {attentionCore, CoreActivation} from './attention_core';
import {AttentionActivation, resolveAttention, ResolvedAttention, serializeAttention} from './attention_config';
import {attentionMaskFor, rejectMaskForKArAt} from './attention_mask';
import {KArAtOperator} from './karat_operator';
import {baseLayerArgs, checkKnownArgs, checkPositiveIntArg, checkRate, cloneInitializer, parseWeightArgs, ParsedWeightArgs, registerClassOnce, rejectActivityRegularizer, serializeWeightArgs, Shape, WEIGHT_ARG_KEYS, WeightArgs, BASE_LAYER_ARG_KEYS} from './layer_utils';
import {checkCanShare, checkLinkInGraph, findUpstreamHolder, OperatorSharer, sharedOperator, universalAttention} from './operator_sharing';

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

const OWN_KEYS = [
  'numHeads', 'keyDim', 'valueDim', 'dropout', 'useBias', 'outputShape', 'attentionAxes',
  'returnAttentionScores', 'attentionActivation', 'queryShape', 'valueShape', 'keyShape', 'seed',
  'flashAttention', 'useGate', 'slidingWindow',
];


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
  private readonly signature: ShapeSignature;

  /** The KArAt operator this layer uses (its own, or the shared universal one); null for softmax. */
  operator: KArAtOperator | null = null;
  /** Universal mode: the layer whose operator this one shares, as linked by shareOperatorWith. */
  private shareSource: OperatorSharer | null = null;

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
    this.outputShapeArg = parseOutputShape(args.outputShape);
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
    this.signature = parseSignature(args);
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

  // ---------------------------------------------------------------- universal sharing

  /**
   * Universal mode: this layer uses the operator held by `holder` (a universal-mode layer of the
   * same shareName, numHeads and operator config) instead of holding its own. Call it before this
   * layer is applied or built; apply `holder` first, upstream of this layer in a graph (that is
   * how a saved model's sharing is re-made on load). Incompatible layers, a built layer, or a
   * holder that is not built when this layer builds are named errors. Returns this layer.
   * Model builders use UniversalOperatorSharing, which calls this.
   */
  shareOperatorWith(holder: KArAtMultiHeadAttention): this {
    this.shareSource = checkCanShare(this, holder);
    return this;
  }

  /**
   * Universal mode, before the layer builds: the operator of the holder linked by
   * shareOperatorWith, else of the holder found upstream of `list` in the graph (a layer made by
   * tfjs' deserialiser, or by hand); with neither, this layer holds its own when it builds.
   */
  private linkUniversalIfNeeded(list: AnyTensor[]) {
    if (universalAttention(this) == null || this.operator != null) return;
    const holder = this.shareSource ?? findUpstreamHolder(this, list);
    if (holder == null) return;
    const op = sharedOperator(this, holder, tokensOf(list));
    if (this.shareSource != null) checkLinkInGraph(this, holder, list);
    this.operator = op;
  }

  // ---------------------------------------------------------------- apply

  /**
   * Accepts query | [query, value(, key(, attentionMask))] | (query, {value, key,
   * attentionMask, useCausalMask, training, returnAttentionScores}), symbolic or eager.
   */
  override apply(
      inputs: tf.Tensor | tf.Tensor[] | tfl.SymbolicTensor | tfl.SymbolicTensor[],
      kwargs?: Kwargs): tf.Tensor | tf.Tensor[] | tfl.SymbolicTensor | tfl.SymbolicTensor[] {
    const p = parseCall(this.name, inputs, kwargs, 'apply');
    const list = inputList(p);
    const x = (list.length === 1 ? list[0] : list) as tf.Tensor | tf.Tensor[];
    if (!p.symbolic) {
      // Eager: call() receives the list and the options.
      this.linkUniversalIfNeeded(list);
      return this.superApply(x, flagKwargs(p));
    }
    return this.applySymbolic(p, list, x);
  }

  /**
   * Symbolic: tfjs' executor will call us with the node's input list and {training} only, so
   * the boolean options are kept here (and, as the node's kwargs, in the model.json).
   */
  private applySymbolic(p: ParsedCall, list: AnyTensor[], x: tf.Tensor | tf.Tensor[]) {
    if (p.training != null) {
      throw new KArAtArgumentError(
          `${LAYER} '${this.name}'.apply: option 'training' cannot be fixed in a graph: tfjs' graph ` +
          `executor passes the model's own flag (fit: true, predict: false) to every layer`);
    }
    if (p.attentionMask != null) rejectMaskForKArAt(this, 'an attention mask', 'attentionMask');
    if (p.useCausalMask) rejectMaskForKArAt(this, 'a causal mask', 'useCausalMask');
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
    const nodeKwargs = flagKwargs(p, ['useCausalMask', 'returnAttentionScores']);
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

  // ---------------------------------------------------------------- weights

  override build(inputShape: Shape | Shape[]): void {
    const s = splitShapes(this.name, inputShape);
    checkSignature(this.name, this.signature, s);
    // Built by tfjs' apply: inside the layer's name scope, so weights are named <layer>/<name>.
    // Built directly (call() on a fresh layer, or build()): the same names, given explicitly.
    const prefix = this.inApply ? '' : `${this.name}/`;
    this.addProjectionWeights(prefix, s.query[2] as number, s.key[2] as number, s.value[2] as number,
                              outputFeatures(this.outputShapeArg, s.query));
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
        this.operator = this.shareSource != null ? sharedOperator(this, this.shareSource, S) :
                                                   this.addOperatorWeights(prefix, S);
      }
    }
    this.built = true;
  }

  /** The Q/K/V/output projections, named and shaped as tfjs-layers' MultiHeadAttention's. */
  private addProjectionWeights(prefix: string, dimQ: number, dimK: number, dimV: number, out: number[]) {
    const h = this.numHeads, dk = this.keyDim, dv = this.valueDim;
    const add = (name: string, shape: number[], kind: 'kernel' | 'bias') => {
      this.kernels[name] = this.addWeight(
          prefix + name, shape, 'float32',
          cloneInitializer(kind === 'kernel' ? this.w.kernelInitializer : this.w.biasInitializer),
          (kind === 'kernel' ? this.w.kernelRegularizer : this.w.biasRegularizer) ?? undefined, true,
          (kind === 'kernel' ? this.w.kernelConstraint : this.w.biasConstraint) ?? undefined);
    };
    add('query/kernel', [dimQ, h, dk], 'kernel');
    if (this.useBias) add('query/bias', [h, dk], 'bias');
    add('key/kernel', [dimK, h, dk], 'kernel');
    if (this.useBias) add('key/bias', [h, dk], 'bias');
    add('value/kernel', [dimV, h, dv], 'kernel');
    if (this.useBias) add('value/bias', [h, dv], 'bias');
    add('attentionOutput/kernel', [h, dv, ...out], 'kernel');
    if (this.useBias) add('attentionOutput/bias', out, 'bias');
  }

  /** This layer's own operator over N tokens: its variables are this layer's weights <name>/karat/*. */
  private addOperatorWeights(prefix: string, N: number): KArAtOperator {
    const att = this.attention as Extract<ResolvedAttention, {kind: 'karat'}>;
    const vars: Record<string, tfl.LayerVariable> = {};
    for (const spec of operatorParamSpecs(att.operator, this.numHeads, N)) {
      vars[spec.name] = this.addWeight(
          `${prefix}karat/${spec.name}`, spec.shape, 'float32', spec.initializer, undefined, true);
    }
    return new KArAtOperator(att.operator, this.numHeads, N, this, vars, att.mode, att.shareName);
  }

  /**
   * Output shape for [queryShape, valueShape, keyShape | null] (tfjs-layers' form), a single
   * shape, or the layer's node form [query, value, key, attentionMask]. As tfjs-layers'
   * MultiHeadAttention, a direct call rejects query and value of different feature sizes (the
   * layer itself accepts them: applying it to such inputs works).
   */
  override computeOutputShape(inputShape: Shape | Shape[]): Shape | Shape[] {
    const s = splitShapes(this.name, inputShape as Array<Shape | null>);
    return outputShapeFor(this.name, s, {
      numHeads: this.numHeads, outputShape: this.outputShapeArg, strict: this.pendingReturnScores == null,
      returnScores: this.pendingReturnScores ?? this.graphOptions?.returnAttentionScores ?? this.returnAttentionScores,
    });
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
    const p = parseCall(this.name, inputs, kwargs, 'call');
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
    checkComputeInputs(this.name, query, value, key);
    const T = query.shape[1] as number, S = value.shape[1] as number;
    if (query.shape[0] === 0) {
      // An empty batch gives an empty result (some backends, e.g. wasm, cannot project 0 rows).
      const out = this.kernels['attentionOutput/kernel'].read().shape.slice(2);
      return {output: tf.zeros([0, T, ...out]), scores: returnScores ? tf.zeros([0, this.numHeads, T, S]) : undefined};
    }
    const mask = attentionMaskFor(this, query, value, key, attentionMask, useCausalMask);
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
