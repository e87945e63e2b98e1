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
 * Inputs: `query` alone (self-attention; works in tf.sequential), or [query, value] /
 * [query, value, key] in functional models. The Keras call style
 * `layer.apply(query, {value, key})` is accepted too and turned into the list form, because
 * the tfjs graph executor does not forward tensor keyword arguments.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type {LayerArgs} from '@tensorflow/tfjs-layers/dist/engine/topology';
import type {Kwargs} from '@tensorflow/tfjs-layers/dist/types';

import {operatorParamSpecs} from '../bases/index';
import {KArAtArgumentError} from '../ops/validate';
import {mergeHeadsProject, projectHeads, useLeanAttention} from '../ops/attention';
import {attentionCore, CoreActivation} from './attention_core';
import {AttentionActivation, resolveAttention, ResolvedAttention, serializeAttention} from './attention_config';
import {KArAtOperator} from './karat_operator';
import {baseLayerArgs, checkPositiveIntArg, checkRate, cloneInitializer, hasClassName, isShapeList, parseWeightArgs, ParsedWeightArgs, registerClassOnce, serializeWeightArgs, Shape, WeightArgs} from './layer_utils';

export interface KArAtMultiHeadAttentionArgs extends LayerArgs, WeightArgs {
  /** Number of attention heads h. */
  numHeads: number;
  /** Size of each head for query and key. */
  keyDim: number;
  /** Size of each head for value (default keyDim). */
  valueDim?: number;
  /** Dropout rate on the attention (softmax: on the probabilities; KArAt: on ĥ). Default 0. */
  dropout?: number;
  /** Biases in the Q/K/V/output projections. Default true. */
  useBias?: boolean;
  /** Output feature shape (default: the query's last dimension). */
  outputShape?: number | number[];
  /** Only the default (attention over axis 1 of rank-3 inputs) is supported. */
  attentionAxes?: number | number[] | null;
  /** Also output σ(S) / σ̂(S) per head, [B, h, T, S]: the layer then has two outputs. */
  returnAttentionScores?: boolean;
  /** 'softmax' (default) or a KArAt configuration {basis, grid, rank, baseActivation, mode, init, ...}. */
  attentionActivation?: AttentionActivation;
}

export interface AttentionCallOptions {
  value?: tf.Tensor;
  key?: tf.Tensor;
  training?: boolean;
  /** Softmax only: boolean [B, T, S] mask, false = do not attend. */
  attentionMask?: tf.Tensor;
  /** Softmax only: causal (lower-triangular) mask. */
  useCausalMask?: boolean;
}

const LAYER = 'KArAtMultiHeadAttention';

/** Keys found in tfjs/Keras MultiHeadAttention configs that carry no information for us. */
const IGNORED_KEYS = ['queryShape', 'keyShape', 'valueShape', 'seed', 'flashAttention'];

export class KArAtMultiHeadAttention extends tfl.layers.Layer {
  static className = 'KArAtMultiHeadAttention';

  readonly numHeads: number;
  readonly keyDim: number;
  readonly valueDim: number;
  readonly dropout: number;
  readonly useBias: boolean;
  readonly outputShapeArg: number[] | null;
  readonly returnAttentionScores: boolean;
  readonly attention: ResolvedAttention;
  private readonly w: ParsedWeightArgs;

  /** The KArAt operator this layer uses (its own, or the shared universal one); null for softmax. */
  operator: KArAtOperator | null = null;

  private kernels: Record<string, tfl.LayerVariable> = {};

  constructor(args: KArAtMultiHeadAttentionArgs) {
    if (args == null || typeof args !== 'object') {
      throw new KArAtArgumentError(`${LAYER}: expected an arguments object {numHeads, keyDim, ...}`);
    }
    const a = {...args} as Record<string, unknown>;
    for (const k of IGNORED_KEYS) delete a[k];
    super(baseLayerArgs(a) as LayerArgs);
    this.numHeads = checkPositiveIntArg(LAYER, 'numHeads', args.numHeads);
    this.keyDim = checkPositiveIntArg(LAYER, 'keyDim', args.keyDim);
    this.valueDim = checkPositiveIntArg(LAYER, 'valueDim', args.valueDim ?? args.keyDim);
    this.dropout = checkRate(LAYER, 'dropout', args.dropout ?? 0);
    this.useBias = args.useBias ?? true;
    if (args.outputShape == null) {
      this.outputShapeArg = null;
    } else {
      const os = Array.isArray(args.outputShape) ? args.outputShape : [args.outputShape];
      os.forEach((d, i) => checkPositiveIntArg(LAYER, `outputShape[${i}]`, d));
      this.outputShapeArg = os;
    }
    const axes = args.attentionAxes;
    if (axes != null && !((Array.isArray(axes) && axes.length === 1 && axes[0] === 1) || axes === 1)) {
      throw new KArAtArgumentError(
          `${LAYER}: argument 'attentionAxes' supports only the default [1] (attention over the ` +
          `token axis of [batch, tokens, features] inputs), got ${JSON.stringify(axes)}`);
    }
    this.returnAttentionScores = args.returnAttentionScores ?? false;
    this.attention = resolveAttention(args.attentionActivation, 'attentionActivation');
    this.w = parseWeightArgs(args);
    if (this.w.activityRegularizer != null) this.activityRegularizer = this.w.activityRegularizer;
    this.supportsMasking = this.attention.kind === 'softmax';
  }

  get isKArAt(): boolean {
    return this.attention.kind === 'karat';
  }

  /** True when this layer holds (owns) the variables of its operator. */
  get ownsOperator(): boolean {
    return this.operator != null && this.operator.owner === this;
  }

  // ---------------------------------------------------------------- inputs

  /** Accepts query | [query, value(, key)] | (query, {value, key}). */
  override apply(
      inputs: tf.Tensor | tf.Tensor[] | tfl.SymbolicTensor | tfl.SymbolicTensor[],
      kwargs?: Kwargs): tf.Tensor | tf.Tensor[] | tfl.SymbolicTensor | tfl.SymbolicTensor[] {
    let list = (Array.isArray(inputs) ? inputs : [inputs]) as Array<tf.Tensor | tfl.SymbolicTensor>;
    let kw = kwargs;
    if (kwargs != null && (kwargs.value != null || kwargs.key != null)) {
      if (list.length > 1) {
        throw new KArAtArgumentError(
            `${LAYER}: pass value/key either in the input list or as keyword arguments, not both`);
      }
      if (kwargs.value == null) {
        throw new KArAtArgumentError(`${LAYER}: argument 'key' given without 'value'`);
      }
      list = [list[0], kwargs.value, ...(kwargs.key != null ? [kwargs.key] : [])];
      kw = {...kwargs};
      delete kw.value;
      delete kw.key;
    }
    if (list.length < 1 || list.length > 3) {
      throw new KArAtArgumentError(
          `${LAYER}: expected query, [query, value] or [query, value, key], got ${list.length} inputs`);
    }
    if (this.attention.kind === 'karat' && this.attention.mode === 'universal' && this.operator == null) {
      this.linkUniversal(list);
    }
    const x = list.length === 1 ? list[0] : list;
    return super.apply(x as tf.Tensor | tf.Tensor[], kw);
  }

  /**
   * Universal mode: finds, upstream in the graph, the layer holding the shared operator of the
   * same `shareName` and uses it. Without one, this layer becomes the holder when it builds.
   */
  private linkUniversal(inputs: Array<tf.Tensor | tfl.SymbolicTensor>) {
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

  private tokensOf(inputs: Array<tf.Tensor | tfl.SymbolicTensor>): number | null {
    const v = inputs.length > 1 ? inputs[1] : inputs[0];
    const n = v.shape[1];
    return n == null ? null : n;
  }

  private splitShapes(inputShape: Shape | Shape[]): {query: Shape, value: Shape, key: Shape} {
    const list = isShapeList(inputShape) ? inputShape : [inputShape];
    const [query, value = query, key = value] = list;
    const names = ['query', 'value', 'key'];
    [query, value, key].forEach((s, i) => {
      if (s.length !== 3 || s[2] == null) {
        throw new KArAtArgumentError(
            `${LAYER} '${this.name}': input '${names[i]}' must have shape [batch, tokens, features] ` +
            `with a known feature size, got [${s.map(d => d ?? 'null').join(', ')}]`);
      }
    });
    if (value[1] != null && key[1] != null && value[1] !== key[1]) {
      throw new KArAtArgumentError(
          `${LAYER} '${this.name}': 'value' and 'key' must have the same number of tokens, got ` +
          `${value[1]} and ${key[1]}`);
    }
    return {query, value, key};
  }

  // ---------------------------------------------------------------- weights

  override build(inputShape: Shape | Shape[]): void {
    const s = this.splitShapes(inputShape);
    const h = this.numHeads, dk = this.keyDim, dv = this.valueDim;
    const out = this.outShape(s.query);
    const add = (name: string, shape: number[], kind: 'kernel' | 'bias') => {
      this.kernels[name] = this.addWeight(
          name, shape, 'float32',
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
              `karat/${spec.name}`, spec.shape, 'float32', spec.initializer, undefined, true);
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

  override computeOutputShape(inputShape: Shape | Shape[]): Shape | Shape[] {
    const s = this.splitShapes(inputShape);
    const out: Shape = [s.query[0], s.query[1], ...this.outShape(s.query)];
    if (!this.returnAttentionScores) return out;
    return [out, [s.query[0], this.numHeads, s.query[1], s.value[1]]];
  }

  override computeMask(): tf.Tensor | tf.Tensor[] {
    // No mask propagation (as tfjs-layers' MultiHeadAttention).
    return (this.returnAttentionScores ? [null, null] : null) as unknown as tf.Tensor[];
  }

  // ---------------------------------------------------------------- compute

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor | tf.Tensor[] {
    return tf.tidy(() => {
      const list = Array.isArray(inputs) ? inputs : [inputs];
      const [query, value = query, key = value] = list;
      const {output, scores} = this.compute(
          query, value, key, {training: kwargs?.training === true}, this.returnAttentionScores);
      return this.returnAttentionScores ? [output, scores!] : output;
    });
  }

  /** Exactly like calling the layer, but also returns the activated attention per head. */
  callAndReturnAttentionScores(query: tf.Tensor, options: AttentionCallOptions = {}): [tf.Tensor, tf.Tensor] {
    return tf.tidy(() => {
      const value = options.value ?? query;
      const key = options.key ?? value;
      if (!this.built) {
        this.apply(query, {value, key});
      }
      const {output, scores} = this.compute(query, value, key, options, true);
      return [output, scores!] as [tf.Tensor, tf.Tensor];
    });
  }

  /**
   * x [B, N, F] -> scale · (x W + b) as heads [B, h, N, d]. With KARAT_WEBGPU_FUSED_LAYERS on
   * (default) the lean op that keeps only x and W for backward; off: the stock tfjs ops.
   */
  private projectHeads(x: tf.Tensor, which: 'query' | 'key' | 'value', scale = 1): tf.Tensor4D {
    const w = this.kernels[`${which}/kernel`].read() as tf.Tensor3D;
    const bias = this.useBias ? this.kernels[`${which}/bias`].read() as tf.Tensor2D : null;
    if (useLeanAttention()) return projectHeads(x as tf.Tensor3D, w, bias, scale);
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
    if (useLeanAttention()) return mergeHeadsProject(o, w, bias);
    const [B, h, T, dv] = o.shape, out = w.shape.slice(2), n = out.reduce((a, c) => a * c, 1);
    let y = tf.matMul(tf.reshape(tf.transpose(o, [0, 2, 1, 3]), [B * T, h * dv]), tf.reshape(w, [h * dv, n]));
    if (bias != null) y = tf.add(y, tf.reshape(bias, [n]));
    return tf.reshape(y, [B, T, ...out]);
  }

  private compute(query: tf.Tensor, value: tf.Tensor, key: tf.Tensor, options: AttentionCallOptions,
                  returnScores: boolean): {output: tf.Tensor, scores?: tf.Tensor} {
    for (const [name, t] of [['query', query], ['value', value], ['key', key]] as const) {
      if (t.rank !== 3) {
        throw new KArAtArgumentError(
            `${LAYER} '${this.name}': input '${name}' must have rank 3 [batch, tokens, features], ` +
            `got shape [${t.shape}]`);
      }
    }
    const T = query.shape[1] as number, S = value.shape[1] as number;
    if (query.shape[0] === 0) {
      // An empty batch gives an empty result (some backends, e.g. wasm, cannot project 0 rows).
      const out = this.kernels['attentionOutput/kernel'].read().shape.slice(2);
      return {output: tf.zeros([0, T, ...out]), scores: returnScores ? tf.zeros([0, this.numHeads, T, S]) : undefined};
    }
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
    const mask = this.buildMask(options, T, S);
    const {output, scores} = attentionCore({
      query: q, key: k, value: v, activation, dropout: this.dropout,
      training: options.training === true, mask, returnScores,
    });
    return {output: this.projectOutput(output), scores};
  }

  private buildMask(options: AttentionCallOptions, T: number, S: number): tf.Tensor | null {
    let mask: tf.Tensor | null = null;
    if (options.attentionMask != null) {
      const m = options.attentionMask;
      mask = tf.expandDims(tf.cast(m, 'bool'), m.rank === 3 ? 1 : 0);  // [B, 1, T, S]
    }
    if (options.useCausalMask) {
      const causal = tf.reshape(tf.linalg.bandPart(tf.ones([T, S], 'bool'), -1, 0), [1, 1, T, S]);
      mask = mask == null ? causal : tf.logicalAnd(mask, causal);
    }
    return mask;
  }

  override getConfig(): tf.serialization.ConfigDict {
    const config: tf.serialization.ConfigDict = {
      numHeads: this.numHeads,
      keyDim: this.keyDim,
      valueDim: this.valueDim,
      dropout: this.dropout,
      useBias: this.useBias,
      outputShape: this.outputShapeArg,
      attentionAxes: null,
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
