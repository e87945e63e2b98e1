/**
 * Vision transformers with softmax or KArAt attention (spec §6): presets tiny/small/base and
 * the paper's configurations by name (tiny-G3B, tiny-G3U, small-G3B, small-G3U, base-G1B,
 * base-G1U, and <preset>-softmax baselines).
 */
import * as tfl from '@tensorflow/tfjs-layers';

import {KArAtArgumentError} from '../../core/validate';
import {AttentionActivation, KArAtAttentionConfig, resolveAttention} from '../layers/attention_config';
import {fusedLayerNormalization} from '../layers/fused_layers';
import {checkKnownArgs, checkRate} from '../layers/layer_utils';
import {UniversalOperatorSharing} from '../layers/operator_sharing';
import {checkHeads, ClassToken, LearnedPositionEmbedding, PatchEmbedding, SelectToken, transformerEncoderBlock} from '../layers/vit_blocks';

export type ViTPresetName = 'tiny' | 'small' | 'base';

export interface ViTPreset {
  dim: number;
  depth: number;
  heads: number;
  mlpRatio: number;
}

/** ViT-Tiny/Small/Base (DeiT / the paper): MLP ratio 4, pre-norm, class token. */
export const VIT_PRESETS: Readonly<Record<ViTPresetName, Readonly<ViTPreset>>> = {
  tiny: {dim: 192, depth: 12, heads: 3, mlpRatio: 4},
  small: {dim: 384, depth: 12, heads: 6, mlpRatio: 4},
  base: {dim: 768, depth: 12, heads: 12, mlpRatio: 4},
};

export interface ViTArgs {
  /** A paper configuration by name, e.g. 'tiny-G3B' (sets preset and attention). */
  config?: string;
  preset?: ViTPresetName;
  dim?: number;
  depth?: number;
  heads?: number;
  mlpRatio?: number;
  /** Image side (square) or [height, width]. */
  imageSize: number | [number, number];
  patchSize: number;
  /** Image channels (default 3). */
  channels?: number;
  numClasses: number;
  /**
   * 'softmax' (default) or a KArAt config, e.g. {type: 'fourier', grid: 3, rank: 12,
   * mode: 'blockwise' | 'universal'} (every field of KArAtMultiHeadAttention's
   * attentionActivation is accepted).
   */
  attention?: AttentionActivation;
  /** Dropout after the embeddings, attention projection and MLP layers (default 0). */
  dropout?: number;
  /** Dropout inside attention (default 0). */
  attentionDropout?: number;
  /** Stochastic depth: maximal drop-path rate, increasing linearly over blocks (default 0). */
  dropPath?: number;
  /** 'token' (class token, default) or 'gap' (global average of all tokens, no class token). */
  pool?: 'token' | 'gap';
  /**
   * Where the final LayerNorm sits: false (default) normalises the tokens before pooling
   * (layer 'norm'); true normalises the pooled features instead (layer 'fc_norm', timm's
   * `fc_norm`, what global_pool='avg' models such as MAE / DeiT-III checkpoints use).
   */
  fcNorm?: boolean;
  /** Activation of the classifier: 'softmax' (default, for tfjs' categoricalCrossentropy) or 'linear' (logits). */
  classifierActivation?: 'softmax' | 'linear';
  layerNormEpsilon?: number;
  /** Model name (default 'vit'). Layer names are fixed: patch_embed, cls_token, pos_embed, block{i}_*, norm (or fc_norm), head. */
  name?: string;
}

const VIT_ARG_KEYS: readonly string[] = [
  'config', 'preset', 'dim', 'depth', 'heads', 'mlpRatio', 'imageSize', 'patchSize', 'channels', 'numClasses',
  'attention', 'dropout', 'attentionDropout', 'dropPath', 'pool', 'fcNorm', 'classifierActivation', 'layerNormEpsilon', 'name',
];

/** The resolved architecture of a ViT (what paperConfig returns, minus the input sizes). */
export interface ViTConfig {
  preset?: ViTPresetName;
  dim: number;
  depth: number;
  heads: number;
  mlpRatio: number;
  attention: AttentionActivation;
}

/** Rank used by the paper for its Fourier-KArAt results. */
export const PAPER_RANK = 12;

const PAPER_NAMES: Record<string, {preset: ViTPresetName, grid: number | null, mode: 'blockwise' | 'universal' | null}> = {
  'tiny-softmax': {preset: 'tiny', grid: null, mode: null},
  'tiny-g3b': {preset: 'tiny', grid: 3, mode: 'blockwise'},
  'tiny-g3u': {preset: 'tiny', grid: 3, mode: 'universal'},
  'small-softmax': {preset: 'small', grid: null, mode: null},
  'small-g3b': {preset: 'small', grid: 3, mode: 'blockwise'},
  'small-g3u': {preset: 'small', grid: 3, mode: 'universal'},
  'base-softmax': {preset: 'base', grid: null, mode: null},
  'base-g1b': {preset: 'base', grid: 1, mode: 'blockwise'},
  'base-g1u': {preset: 'base', grid: 1, mode: 'universal'},
};

/** Names accepted by paperConfig and vit({config}). */
export const PAPER_CONFIG_NAMES: readonly string[] = [
  'tiny-softmax', 'tiny-G3B', 'tiny-G3U', 'small-softmax', 'small-G3B', 'small-G3U',
  'base-softmax', 'base-G1B', 'base-G1U',
];

/**
 * The paper's configuration `name` (case-insensitive), e.g. 'tiny-G3B' = ViT-Tiny with
 * Fourier-KArAt, grid 3, rank 12, zero base activation, blockwise.
 */
export function paperConfig(name: string): ViTConfig {
  const e = typeof name === 'string' ? PAPER_NAMES[name.toLowerCase()] : undefined;
  if (e == null) {
    throw new KArAtArgumentError(
        `argument 'config' must be one of ${PAPER_CONFIG_NAMES.join(', ')}, got ${JSON.stringify(name)}`);
  }
  const attention: AttentionActivation = e.grid == null ? 'softmax' : {
    type: 'fourier', grid: e.grid, rank: PAPER_RANK, baseActivation: 'zero', mode: e.mode!,
  } as KArAtAttentionConfig;
  return {preset: e.preset, ...VIT_PRESETS[e.preset], attention};
}

function positiveInt(arg: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new KArAtArgumentError(`vit: argument '${arg}' must be an integer >= 1, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** Fills preset / paper-config defaults; explicit dims override them. */
export function resolveViTConfig(args: Partial<ViTArgs>): ViTConfig {
  let base: Partial<ViTConfig> = {};
  if (args.config != null) base = paperConfig(args.config);
  if (args.preset != null) {
    const p = VIT_PRESETS[args.preset];
    if (p == null) {
      throw new KArAtArgumentError(
          `vit: argument 'preset' must be one of ${Object.keys(VIT_PRESETS).join(', ')}, ` +
          `got ${JSON.stringify(args.preset)}`);
    }
    if (base.preset != null && base.preset !== args.preset) {
      throw new KArAtArgumentError(
          `vit: argument 'preset' ('${args.preset}') contradicts config '${args.config}' ('${base.preset}')`);
    }
    base = {...base, preset: args.preset, ...p};
  }
  const dim = args.dim ?? base.dim;
  const depth = args.depth ?? base.depth;
  const heads = args.heads ?? base.heads;
  if (dim == null || depth == null || heads == null) {
    throw new KArAtArgumentError(
        `vit: give a 'preset' ('tiny', 'small', 'base'), a paper 'config' or all of dim, depth, heads`);
  }
  positiveInt('dim', dim);
  positiveInt('depth', depth);
  checkHeads('heads', dim, heads);
  const mlpRatio = args.mlpRatio ?? base.mlpRatio ?? 4;
  if (typeof mlpRatio !== 'number' || !(mlpRatio > 0)) {
    throw new KArAtArgumentError(`vit: argument 'mlpRatio' must be > 0, got ${JSON.stringify(mlpRatio)}`);
  }
  const attention = args.attention ?? base.attention ?? 'softmax';
  resolveAttention(attention, 'attention');  // validate early, naming the argument
  return {...(base.preset != null ? {preset: base.preset} : {}), dim, depth, heads, mlpRatio, attention};
}

/** Number of tokens N (patches, plus the class token with pool 'token'). */
export function vitTokens(imageSize: number | [number, number], patchSize: number, pool: 'token' | 'gap' = 'token'): number {
  const [ih, iw] = typeof imageSize === 'number' ? [imageSize, imageSize] : imageSize;
  return (ih / patchSize) * (iw / patchSize) + (pool === 'token' ? 1 : 0);
}

/**
 * Builds a ViT as a tf.LayersModel (uncompiled): patch embedding, class token, learned
 * position embedding, `depth` pre-norm encoder blocks, final LayerNorm (before pooling, or after
 * it with `fcNorm`), linear head.
 *
 * ```js
 * const model = karat.models.vit({config: 'tiny-G3B', imageSize: 32, patchSize: 4, numClasses: 10});
 * const small = karat.models.vit({preset: 'tiny', depth: 6, imageSize: 32, patchSize: 4,
 *     numClasses: 100, attention: {type: 'fourier', grid: 3, rank: 12, mode: 'universal'}});
 * ```
 */
export function vit(args: ViTArgs): tfl.LayersModel {
  if (args == null || typeof args !== 'object') {
    throw new KArAtArgumentError(`vit: expected an arguments object {imageSize, patchSize, numClasses, ...}`);
  }
  checkKnownArgs('vit', args as unknown as Record<string, unknown>, VIT_ARG_KEYS);
  const cfg = resolveViTConfig(args);
  const patch = positiveInt('patchSize', args.patchSize);
  const [ih, iw] = typeof args.imageSize === 'number' ? [args.imageSize, args.imageSize] :
      Array.isArray(args.imageSize) && args.imageSize.length === 2 ? args.imageSize :
      [NaN, NaN];
  positiveInt('imageSize', ih);
  positiveInt('imageSize', iw);
  if (ih % patch !== 0 || iw % patch !== 0) {
    throw new KArAtArgumentError(
        `vit: argument 'imageSize' (${ih}x${iw}) must be divisible by 'patchSize' (${patch})`);
  }
  const channels = positiveInt('channels', args.channels ?? 3);
  const numClasses = positiveInt('numClasses', args.numClasses);
  const dropout = checkRate('vit', 'dropout', args.dropout ?? 0);
  const dropPath = checkRate('vit', 'dropPath', args.dropPath ?? 0);
  const pool = args.pool ?? 'token';
  if (pool !== 'token' && pool !== 'gap') {
    throw new KArAtArgumentError(`vit: argument 'pool' must be 'token' or 'gap', got ${JSON.stringify(pool)}`);
  }
  const fcNorm = args.fcNorm ?? false;
  if (typeof fcNorm !== 'boolean') throw new KArAtArgumentError(`vit: argument 'fcNorm' must be a boolean, got ${JSON.stringify(fcNorm)}`);
  const eps = args.layerNormEpsilon ?? 1e-6;
  const classifierActivation = args.classifierActivation ?? 'softmax';
  if (classifierActivation !== 'softmax' && classifierActivation !== 'linear') {
    throw new KArAtArgumentError(
        `vit: argument 'classifierActivation' must be 'softmax' or 'linear', got ${JSON.stringify(classifierActivation)}`);
  }
  const N = vitTokens([ih, iw], patch, pool);
  const att = resolveAttention(cfg.attention, 'attention');
  if (att.kind === 'karat' && att.operator.rank !== 'full' && att.operator.rank > N) {
    throw new KArAtArgumentError(
        `vit: argument 'attention.rank' (${att.operator.rank}) must be <= the number of tokens ` +
        `N = ${N} (imageSize ${ih}x${iw}, patchSize ${patch})`);
  }

  const input = tfl.input({shape: [ih, iw, channels], name: 'image'});
  let x = new PatchEmbedding({patchSize: patch, dim: cfg.dim, name: 'patch_embed'}).apply(input) as tfl.SymbolicTensor;
  if (pool === 'token') x = new ClassToken({name: 'cls_token'}).apply(x) as tfl.SymbolicTensor;
  x = new LearnedPositionEmbedding({name: 'pos_embed'}).apply(x) as tfl.SymbolicTensor;
  if (dropout > 0) x = tfl.layers.dropout({rate: dropout, name: 'pos_drop'}).apply(x) as tfl.SymbolicTensor;
  // Universal mode: block0's attention layer holds the one operator; every later block shares it.
  const operatorSharing = new UniversalOperatorSharing();
  for (let i = 0; i < cfg.depth; i++) {
    x = transformerEncoderBlock(x, {
      dim: cfg.dim, heads: cfg.heads, mlpRatio: cfg.mlpRatio, dropout,
      attentionDropout: args.attentionDropout ?? 0,
      dropPath: cfg.depth > 1 ? dropPath * i / (cfg.depth - 1) : dropPath,
      attentionActivation: cfg.attention, operatorSharing, layerNormEpsilon: eps, name: `block${i}`,
    });
  }
  // KArAtLayerNormalization: the stock layer with the fused paths (layers/fused_layers.ts).
  if (!fcNorm) x = fusedLayerNormalization({epsilon: eps, name: 'norm'}).apply(x) as tfl.SymbolicTensor;
  if (pool === 'token') {
    x = new SelectToken({index: 0, name: 'take_cls'}).apply(x) as tfl.SymbolicTensor;
  } else {
    x = tfl.layers.globalAveragePooling1d({name: 'gap'}).apply(x) as tfl.SymbolicTensor;
  }
  if (fcNorm) x = fusedLayerNormalization({epsilon: eps, name: 'fc_norm'}).apply(x) as tfl.SymbolicTensor;
  const out = tfl.layers.dense({units: numClasses, activation: classifierActivation, name: 'head'})
      .apply(x) as tfl.SymbolicTensor;
  return tfl.model({inputs: input, outputs: out, name: args.name ?? 'vit'});
}
