/**
 * Vision-transformer building blocks: patch embedding, class token, learned position
 * embedding, stochastic depth (drop path), and the pre-norm transformer encoder block
 * (a function composing layers, Keras-example style, so each attention layer stays a
 * top-level layer of the model that swapAttention can find).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type {LayerArgs} from '@tensorflow/tfjs-layers/dist/engine/topology';
import type {Kwargs} from '@tensorflow/tfjs-layers/dist/types';

import {KArAtArgumentError} from '../../core/validate';
import {AttentionActivation} from './attention_config';
import {BASE_LAYER_ARG_KEYS, baseLayerArgs, checkKnownArgs, checkPositiveIntArg, checkRate, InitializerArg, parseWeightArgs, ParsedWeightArgs, registerClassOnce, rejectActivityRegularizer, serializeObject, serializeWeightArgs, Shape, WEIGHT_ARG_KEYS, WeightArgs} from './layer_utils';
import {fusedDense, fusedLayerNormalization} from './fused_layers';
import {KArAtMultiHeadAttention} from './multihead_attention';
import {UniversalOperatorSharing} from './operator_sharing';

function one(s: Shape | Shape[]): Shape {
  return (Array.isArray(s[0]) ? s[0] : s) as Shape;
}

function oneTensor(x: tf.Tensor | tf.Tensor[]): tf.Tensor {
  return Array.isArray(x) ? x[0] : x;
}

// ------------------------------------------------------------------ PatchEmbedding

export interface PatchEmbeddingArgs extends LayerArgs, WeightArgs {
  /** Side of the square patches (kernel size and stride). */
  patchSize: number;
  /** Embedding dimension. */
  dim: number;
}

/**
 * [B, H, W, C] images -> [B, (H/p)·(W/p), dim] patch tokens: one p x p stride-p convolution
 * (weights 'kernel' [p, p, C, dim] and 'bias' [dim]), flattened row-major over patches;
 * computed as a matmul over the patches.
 */
export class PatchEmbedding extends tfl.layers.Layer {
  static className = 'PatchEmbedding';
  readonly patchSize: number;
  readonly dim: number;
  private readonly w: ParsedWeightArgs;
  private kernel: tfl.LayerVariable | null = null;
  private bias: tfl.LayerVariable | null = null;

  constructor(args: PatchEmbeddingArgs) {
    checkKnownArgs('PatchEmbedding', args as unknown as Record<string, unknown>,
                   ['patchSize', 'dim', ...WEIGHT_ARG_KEYS, ...BASE_LAYER_ARG_KEYS]);
    super(baseLayerArgs(args as unknown as Record<string, unknown>, 'PatchEmbedding') as LayerArgs);
    this.patchSize = checkPositiveIntArg('PatchEmbedding', 'patchSize', args.patchSize);
    this.dim = checkPositiveIntArg('PatchEmbedding', 'dim', args.dim);
    rejectActivityRegularizer('PatchEmbedding', args.activityRegularizer);
    this.w = parseWeightArgs(args);
  }

  private check(s: Shape): [number, number] {
    if (s.length !== 4 || s[1] == null || s[2] == null || s[3] == null) {
      throw new KArAtArgumentError(
          `PatchEmbedding '${this.name}': input must be images [batch, height, width, channels] of ` +
          `known size, got [${s.map(d => d ?? 'null')}]`);
    }
    const p = this.patchSize;
    if (s[1] % p !== 0 || s[2] % p !== 0) {
      throw new KArAtArgumentError(
          `PatchEmbedding '${this.name}': imageSize ${s[1]}x${s[2]} is not divisible by ` +
          `patchSize ${p}`);
    }
    return [s[1] / p, s[2] / p];
  }

  override build(inputShape: Shape | Shape[]): void {
    const s = one(inputShape);
    this.check(s);
    const p = this.patchSize;
    this.kernel = this.addWeight(
        'kernel', [p, p, s[3] as number, this.dim], 'float32', this.w.kernelInitializer,
        this.w.kernelRegularizer ?? undefined, true, this.w.kernelConstraint ?? undefined);
    this.bias = this.addWeight(
        'bias', [this.dim], 'float32', this.w.biasInitializer, this.w.biasRegularizer ?? undefined,
        true, this.w.biasConstraint ?? undefined);
    this.built = true;
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const s = one(inputShape);
    const [gh, gw] = this.check(s);
    return [s[0], gh * gw, this.dim];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      // The stride-p p x p convolution as one matmul over non-overlapping patches: images
      // [B, H, W, C] -> patch rows [B·gh·gw, p·p·C] (row-major (ky, kx, c), the kernel's layout)
      // by reshape + one rank-4 transpose. Same result as conv2d; its backward is one matmul
      // (tfjs's Conv2DBackpropFilter was ~30% of a cpu training step, and tfjs-backend-wasm has
      // none, so this also lets wasm train).
      const x = oneTensor(inputs) as tf.Tensor4D;
      const [B, H, W, C] = x.shape;
      const p = this.patchSize, gh = H / p, gw = W / p;
      const rows = tf.reshape(tf.transpose(tf.reshape(x, [B * gh, p, gw, p * C]), [0, 2, 1, 3]), [B * gh * gw, p * p * C]);
      const y = tf.add(tf.matMul(rows as tf.Tensor2D, tf.reshape(this.kernel!.read(), [p * p * C, this.dim]) as tf.Tensor2D),
                       this.bias!.read());
      return tf.reshape(y, [B, gh * gw, this.dim]);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {patchSize: this.patchSize, dim: this.dim, ...serializeWeightArgs(this.w), ...super.getConfig()};
  }
}
registerClassOnce(PatchEmbedding);

// ------------------------------------------------------------------ ClassToken

/** Initializer of a learned embedding: the given one, or truncatedNormal(stddev 0.02). */
function embeddingInitializer(arg: InitializerArg | undefined): ParsedWeightArgs['kernelInitializer'] {
  return parseWeightArgs({
    kernelInitializer: arg ?? {className: 'TruncatedNormal', config: {mean: 0, stddev: 0.02}},
  }).kernelInitializer;
}

export interface ClassTokenArgs extends LayerArgs {
  /** Initializer of the token [1, 1, dim] (default truncatedNormal stddev 0.02). */
  initializer?: InitializerArg;
}

/** Prepends one learned token: [B, N, dim] -> [B, N + 1, dim]. Weight 'token' [1, 1, dim]. */
export class ClassToken extends tfl.layers.Layer {
  static className = 'ClassToken';
  private readonly init: ParsedWeightArgs['kernelInitializer'];
  private token: tfl.LayerVariable | null = null;

  constructor(args: ClassTokenArgs = {}) {
    checkKnownArgs('ClassToken', args as unknown as Record<string, unknown>, ['initializer', ...BASE_LAYER_ARG_KEYS]);
    super(baseLayerArgs(args as unknown as Record<string, unknown>, 'ClassToken') as LayerArgs);
    this.init = embeddingInitializer(args.initializer);
  }

  override build(inputShape: Shape | Shape[]): void {
    const s = one(inputShape);
    if (s.length !== 3 || s[2] == null) {
      throw new KArAtArgumentError(
          `ClassToken '${this.name}': input must be tokens [batch, tokens, dim], got [${s}]`);
    }
    this.token = this.addWeight('token', [1, 1, s[2]], 'float32', this.init, undefined, true);
    this.built = true;
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const s = one(inputShape);
    return [s[0], s[1] == null ? null : s[1] + 1, s[2]];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = oneTensor(inputs);
      const t = tf.tile(this.token!.read(), [x.shape[0], 1, 1]);
      return tf.concat([t, x], 1);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {initializer: serializeObject(this.init), ...super.getConfig()};
  }
}
registerClassOnce(ClassToken);

// ------------------------------------------------------------------ LearnedPositionEmbedding

export interface LearnedPositionEmbeddingArgs extends LayerArgs {
  /** Initializer of the embedding [1, N, dim] (default truncatedNormal stddev 0.02). */
  initializer?: InitializerArg;
}

/** Adds a learned embedding per token position: weight 'embedding' [1, N, dim]. */
export class LearnedPositionEmbedding extends tfl.layers.Layer {
  static className = 'LearnedPositionEmbedding';
  private readonly init: ParsedWeightArgs['kernelInitializer'];
  private embedding: tfl.LayerVariable | null = null;

  constructor(args: LearnedPositionEmbeddingArgs = {}) {
    checkKnownArgs('LearnedPositionEmbedding', args as unknown as Record<string, unknown>, ['initializer', ...BASE_LAYER_ARG_KEYS]);
    super(baseLayerArgs(args as unknown as Record<string, unknown>, 'LearnedPositionEmbedding') as LayerArgs);
    this.init = embeddingInitializer(args.initializer);
  }

  override build(inputShape: Shape | Shape[]): void {
    const s = one(inputShape);
    if (s.length !== 3 || s[1] == null || s[2] == null) {
      throw new KArAtArgumentError(
          `LearnedPositionEmbedding '${this.name}': input must be tokens [batch, tokens, dim] with a ` +
          `known number of tokens, got [${s.map(d => d ?? 'null')}]`);
    }
    this.embedding = this.addWeight('embedding', [1, s[1], s[2]], 'float32', this.init, undefined, true);
    this.built = true;
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return one(inputShape);
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => tf.add(oneTensor(inputs), this.embedding!.read()));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {initializer: serializeObject(this.init), ...super.getConfig()};
  }
}
registerClassOnce(LearnedPositionEmbedding);

// ------------------------------------------------------------------ StochasticDepth

export interface StochasticDepthArgs extends LayerArgs {
  /** Probability of dropping the whole residual branch of an example during training. */
  rate: number;
}

/**
 * Drop path: in training, zeroes the input for a random subset of examples (probability
 * `rate`) and scales the rest by 1/(1 - rate); identity at inference.
 */
export class StochasticDepth extends tfl.layers.Layer {
  static className = 'StochasticDepth';
  readonly rate: number;

  constructor(args: StochasticDepthArgs) {
    checkKnownArgs('StochasticDepth', args as unknown as Record<string, unknown>, ['rate', ...BASE_LAYER_ARG_KEYS]);
    super(baseLayerArgs(args as unknown as Record<string, unknown>, 'StochasticDepth') as LayerArgs);
    this.rate = checkRate('StochasticDepth', 'rate', args.rate);
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return one(inputShape);
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const x = oneTensor(inputs);
      if (kwargs?.training !== true || this.rate === 0) return tf.clone(x);
      const keep = 1 - this.rate;
      const shape = [x.shape[0], ...x.shape.slice(1).map(() => 1)];
      const mask = tf.floor(tf.add(tf.randomUniform(shape), keep));
      return tf.mul(x, tf.div(mask, keep));
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {rate: this.rate, ...super.getConfig()};
  }
}
registerClassOnce(StochasticDepth);

// ------------------------------------------------------------------ encoder block

export interface TransformerEncoderBlockArgs {
  /** Token dimension (must be divisible by heads). */
  dim: number;
  heads: number;
  /** MLP hidden size = mlpRatio · dim (default 4). */
  mlpRatio?: number;
  /** Dropout after the MLP layers and the attention projection (default 0). */
  dropout?: number;
  /** Dropout inside attention (default 0). */
  attentionDropout?: number;
  /** Stochastic-depth rate of this block (default 0). */
  dropPath?: number;
  attentionActivation?: AttentionActivation;
  /**
   * Universal mode: the model's UniversalOperatorSharing, to which the block attaches its
   * attention layer, so that all blocks given the same one share one operator (the first
   * block's). Without it, the layer shares the operator of a universal layer upstream in the graph.
   */
  operatorSharing?: UniversalOperatorSharing;
  layerNormEpsilon?: number;
  /** Prefix of the layer names (default 'block'). */
  name?: string;
}

export function checkHeads(arg: string, dim: number, heads: number): number {
  checkPositiveIntArg('vit', 'dim', dim);
  checkPositiveIntArg('vit', arg, heads);
  if (dim % heads !== 0) {
    throw new KArAtArgumentError(
        `argument '${arg}' (${heads}) must divide the embedding dimension dim (${dim})`);
  }
  return dim / heads;
}

/**
 * Applies one pre-norm encoder block to `x` [B, N, dim]:
 *   x = x + DropPath(MHA(LN(x)));  x = x + DropPath(Dropout(W2 · Dropout(GELU(W1 · LN(x)))))
 * LayerNorms and MLP Dense layers are KArAtLayerNormalization / KArAtDense: the stock tfjs-layers
 * classes with fused paths, under their own class names (fused_layers.ts; same weights, weight
 * names and configs as the stock layers).
 * Layer names: `${name}_norm1`, `${name}_attn`, `${name}_drop_path1`, `${name}_add1`,
 * `${name}_norm2`, `${name}_mlp_fc1`, `${name}_mlp_drop1`, `${name}_mlp_fc2`, `${name}_mlp_drop2`,
 * `${name}_drop_path2`, `${name}_add2`.
 */
export function transformerEncoderBlock(
    x: tfl.SymbolicTensor, args: TransformerEncoderBlockArgs): tfl.SymbolicTensor {
  if (args == null || typeof args !== 'object') {
    throw new KArAtArgumentError(`transformerEncoderBlock: expected an arguments object {dim, heads, ...}`);
  }
  checkKnownArgs('transformerEncoderBlock', args as unknown as Record<string, unknown>, [
    'dim', 'heads', 'mlpRatio', 'dropout', 'attentionDropout', 'dropPath', 'attentionActivation',
    'operatorSharing', 'layerNormEpsilon', 'name']);
  const keyDim = checkHeads('heads', args.dim, args.heads);
  const n = args.name ?? 'block';
  const eps = args.layerNormEpsilon ?? 1e-6;
  const mlpRatio = args.mlpRatio ?? 4;
  if (!(mlpRatio > 0)) {
    throw new KArAtArgumentError(`argument 'mlpRatio' must be > 0, got ${JSON.stringify(mlpRatio)}`);
  }
  const dropout = checkRate('transformerEncoderBlock', 'dropout', args.dropout ?? 0);
  const dropPath = checkRate('transformerEncoderBlock', 'dropPath', args.dropPath ?? 0);
  const hidden = Math.round(args.dim * mlpRatio);

  let h = fusedLayerNormalization({epsilon: eps, name: `${n}_norm1`}).apply(x) as tfl.SymbolicTensor;
  const attention = new KArAtMultiHeadAttention({
    numHeads: args.heads, keyDim, dropout: args.attentionDropout ?? 0,
    attentionActivation: args.attentionActivation ?? 'softmax', name: `${n}_attn`,
  });
  if (args.operatorSharing != null) {
    if (!(args.operatorSharing instanceof UniversalOperatorSharing)) {
      throw new KArAtArgumentError(
          `transformerEncoderBlock: argument 'operatorSharing' must be a UniversalOperatorSharing, got ` +
          `${typeof args.operatorSharing}`);
    }
    args.operatorSharing.attach(attention);
  }
  h = attention.apply(h) as tfl.SymbolicTensor;
  if (dropout > 0) h = tfl.layers.dropout({rate: dropout, name: `${n}_attn_drop`}).apply(h) as tfl.SymbolicTensor;
  if (dropPath > 0) h = new StochasticDepth({rate: dropPath, name: `${n}_drop_path1`}).apply(h) as tfl.SymbolicTensor;
  const x1 = tfl.layers.add({name: `${n}_add1`}).apply([x, h]) as tfl.SymbolicTensor;

  let m = fusedLayerNormalization({epsilon: eps, name: `${n}_norm2`}).apply(x1) as tfl.SymbolicTensor;
  m = fusedDense({units: hidden, activation: 'gelu', name: `${n}_mlp_fc1`}).apply(m) as tfl.SymbolicTensor;
  if (dropout > 0) m = tfl.layers.dropout({rate: dropout, name: `${n}_mlp_drop1`}).apply(m) as tfl.SymbolicTensor;
  m = fusedDense({units: args.dim, name: `${n}_mlp_fc2`}).apply(m) as tfl.SymbolicTensor;
  if (dropout > 0) m = tfl.layers.dropout({rate: dropout, name: `${n}_mlp_drop2`}).apply(m) as tfl.SymbolicTensor;
  if (dropPath > 0) m = new StochasticDepth({rate: dropPath, name: `${n}_drop_path2`}).apply(m) as tfl.SymbolicTensor;
  return tfl.layers.add({name: `${n}_add2`}).apply([x1, m]) as tfl.SymbolicTensor;
}

// ------------------------------------------------------------------ SelectToken

export interface SelectTokenArgs extends LayerArgs {
  /** Token index to take (default 0, the class token). */
  index?: number;
}

/** [B, N, dim] -> [B, dim]: the token at `index` (the class token for the classifier head). */
export class SelectToken extends tfl.layers.Layer {
  static className = 'SelectToken';
  readonly index: number;

  constructor(args: SelectTokenArgs = {}) {
    checkKnownArgs('SelectToken', args as unknown as Record<string, unknown>, ['index', ...BASE_LAYER_ARG_KEYS]);
    super(baseLayerArgs(args as unknown as Record<string, unknown>, 'SelectToken') as LayerArgs);
    const i = args.index ?? 0;
    if (!Number.isInteger(i) || i < 0) {
      throw new KArAtArgumentError(`SelectToken: argument 'index' must be an integer >= 0, got ${JSON.stringify(i)}`);
    }
    this.index = i;
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const s = one(inputShape);
    if (s.length !== 3 || (s[1] != null && this.index >= s[1])) {
      throw new KArAtArgumentError(
          `SelectToken '${this.name}': input must be [batch, tokens, dim] with more than ` +
          `${this.index} tokens, got [${s.map(d => d ?? 'null')}]`);
    }
    return [s[0], s[2]];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = oneTensor(inputs);
      return tf.reshape(tf.slice(x, [0, this.index, 0], [-1, 1, -1]), [x.shape[0], x.shape[2] as number]);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {index: this.index, ...super.getConfig()};
  }
}
registerClassOnce(SelectToken);
