/**
 * One description of a vision transformer's structure, read from a built tf.LayersModel or
 * from a saved topology (model.json `modelTopology`, a Keras `model_config` wrapper, or a
 * whole model.json): image size, patch grid, tokens, class token / pooling, width, depth,
 * heads, MLP, final norm, attention, and the names of the layers that the fine-tuning,
 * conversion and analysis code reads or rewrites. Understood: models.vit (PatchEmbedding,
 * ClassToken, LearnedPositionEmbedding, KArAtMultiHeadAttention) and Keras-style ViTs of stock
 * layers (a stride-p Conv2D patch embedding reshaped to tokens, MultiHeadAttention).
 */
import type * as tfl from '@tensorflow/tfjs-layers';

import {KArAtArgumentError} from '../../core/validate';
import {FUSED_DENSE_CLASS, FUSED_LAYER_NORMALIZATION_CLASS} from '../layers/fused_layers';

type Json = any;  // tslint:disable-line:no-any

/** Names of the layers of a ViT that its users read or rewrite (null: the model has none). */
export interface ViTLayerNames {
  input: string;
  /** The patch embedding: a PatchEmbedding, or a Conv2D whose stride equals its square kernel. */
  patchEmbed: string | null;
  /** The Reshape that turns a Conv2D patch embedding's grid into tokens. */
  tokensReshape: string | null;
  /** The ClassToken layer (first, when several). */
  classToken: string | null;
  /** The LearnedPositionEmbedding layer (only when exactly one). */
  posEmbed: string | null;
  /** Attention layers (MultiHeadAttention or KArAtMultiHeadAttention), in order. */
  attention: string[];
  /** The first Dense layer other than the output: the first block's MLP expansion. */
  mlp: string | null;
  /** LayerNormalization layers, in order. */
  norms: string[];
  /** The output layer (a Dense classification head in a ViT). */
  output: string;
}

/** The structure of a ViT. */
export interface ViTSpec {
  imageSize: [number, number];
  channels: number;
  /** Patch side (null when no patch embedding is recognised). */
  patchSize: number | null;
  /** Patch grid [rows, cols] (null without a patch size). */
  grid: [number, number] | null;
  /** Number of class tokens prepended to the patch tokens. */
  classTokens: number;
  /** Tokens N = class tokens + grid rows x cols (null without a grid). */
  tokens: number | null;
  /** 'token' (the class token is pooled) with a class token, 'gap' (average) without. */
  pool: 'token' | 'gap';
  /** Embedding width (heads x key dim of the first attention layer). */
  dim: number;
  /** Number of attention layers. */
  depth: number;
  heads: number;
  keyDim: number;
  /** Hidden width of the MLP (units of layers.mlp; null when none is found). */
  mlpHidden: number | null;
  /** mlpHidden / dim (null when no MLP is found). */
  mlpRatio: number | null;
  /** The final LayerNorm follows the pooling (models.vit fcNorm: a layer named 'fc_norm'). */
  fcNorm: boolean;
  /** Units of the output layer when it is a Dense layer, else null. */
  numClasses: number | null;
  /** Class of the output layer. */
  outputClass: string;
  /** Attention of the first attention layer: 'softmax' or its KArAt config (snake_case, as saved). */
  attention: 'softmax' | Record<string, unknown>;
  /** 'karat' when the first attention layer is KArAt attention (an operator config), else 'softmax'. */
  attentionKind: 'softmax' | 'karat';
  /** Class of the first attention layer. */
  attentionClass: 'MultiHeadAttention' | 'KArAtMultiHeadAttention';
  layers: ViTLayerNames;
}

const ATTENTION = ['MultiHeadAttention', 'KArAtMultiHeadAttention'];
const DENSE = ['Dense', FUSED_DENSE_CLASS];
const LAYER_NORM = ['LayerNormalization', FUSED_LAYER_NORMALIZATION_CLASS];

/** The model config inside a topology (Keras files wrap it in `model_config`). */
export function topologyModelConfig(topology: Json): Json {
  const t = topology?.modelTopology != null ? topology.modelTopology : topology;
  return t?.model_config != null ? t.model_config : t;
}

/** The top-level layer configs of a topology ([] when it has none). */
export function topologyLayers(topology: Json): Json[] {
  const layers = topologyModelConfig(topology)?.config?.layers;
  return Array.isArray(layers) ? layers : [];
}

function isLayersModel(x: unknown): x is tfl.LayersModel {
  return x != null && typeof x === 'object' && Array.isArray((x as tfl.LayersModel).layers) &&
      typeof (x as tfl.LayersModel).toJSON === 'function';
}

/** The patch embedding: a PatchEmbedding, or the first Conv2D with stride = square kernel. */
function patchEmbedding(layers: Json[]): {patch: number | null, layer: Json} {
  for (const l of layers) {
    if (l?.class_name === 'PatchEmbedding') return {patch: Number(l.config.patch_size), layer: l};
    if (l?.class_name === 'Conv2D') {
      const k = l.config.kernel_size, s = l.config.strides;
      const kk = Array.isArray(k) ? k : [k, k], ss = Array.isArray(s) ? s : [s, s];
      if (kk[0] === kk[1] && ss[0] === kk[0] && ss[1] === kk[1]) return {patch: Number(kk[0]), layer: l};
    }
  }
  return {patch: null, layer: null};
}

/** The image input [batch, H, W, C] of a topology; throws (prefixed `caller`) when there is not exactly one of known size. */
function imageInput(layers: Json[], caller: string): {layer: Json, shape: number[]} {
  const inputs = layers.filter((l) => l?.class_name === 'InputLayer');
  if (inputs.length !== 1) throw new KArAtArgumentError(`${caller}: the model must have one image input, found ${inputs.length} input layers`);
  const c = inputs[0].config;
  const shape = (c?.batch_input_shape != null ? c.batch_input_shape : c?.batch_shape) as Array<number | null> | undefined;
  if (!Array.isArray(shape) || shape.length !== 4 || shape.slice(1).some((d) => !(typeof d === 'number' && d > 0))) {
    throw new KArAtArgumentError(`${caller}: the model's input must be images [batch, height, width, channels] of known size, got ${JSON.stringify(shape)}`);
  }
  return {layer: inputs[0], shape: shape as number[]};
}

/** The structure of a topology (see vitSpecOf). */
function specOfTopology(topology: Json, caller: string): ViTSpec {
  const layers = topologyLayers(topology);
  const att = layers.filter((l) => ATTENTION.includes(l?.class_name));
  if (att.length === 0) {
    throw new KArAtArgumentError(`${caller}: the model has no attention layer (MultiHeadAttention or KArAtMultiHeadAttention); layers: ` +
        `${layers.map((l) => `${l?.config?.name}:${l?.class_name}`).join(', ')}`);
  }
  const input = imageInput(layers, caller);
  const [imageSize, channels] = [[input.shape[1], input.shape[2]] as [number, number], input.shape[3]];
  const {patch, layer: pe} = patchEmbedding(layers);
  const reshape = pe?.class_name === 'Conv2D' ?
      layers.find((l) => l?.class_name === 'Reshape' && JSON.stringify(l.inbound_nodes ?? []).includes(`"${pe.config.name}"`)) ?? null :
      null;
  const pos = layers.filter((l) => l?.class_name === 'LearnedPositionEmbedding');
  const cls = layers.filter((l) => l?.class_name === 'ClassToken');
  const outName = topologyModelConfig(topology)?.config?.output_layers?.[0]?.[0];
  const out = layers.find((l) => l?.config?.name === outName);
  const mlp = layers.find((l) => DENSE.includes(l?.class_name) && l.config.name !== outName) ?? null;
  const c = att[0].config, act = c.attention_activation;
  const heads = Number(c.num_heads), keyDim = Number(c.key_dim), dim = heads * keyDim;
  const grid: [number, number] | null = patch != null ? [imageSize[0] / patch, imageSize[1] / patch] : null;
  const names = (ls: Json[]) => ls.map((l) => String(l.config.name));
  return {
    imageSize, channels, patchSize: patch, grid, classTokens: cls.length, tokens: grid != null ? cls.length + grid[0] * grid[1] : null,
    pool: cls.length > 0 ? 'token' : 'gap', dim, depth: att.length, heads, keyDim,
    mlpHidden: mlp != null ? Number(mlp.config.units) : null, mlpRatio: mlp != null ? Number(mlp.config.units) / dim : null,
    fcNorm: layers.some((l) => l?.config?.name === 'fc_norm'),
    numClasses: out != null && DENSE.includes(out.class_name) ? Number(out.config.units) : null, outputClass: String(out?.class_name ?? 'none'),
    attention: act == null || act === 'softmax' ? 'softmax' : act as Record<string, unknown>, attentionClass: att[0].class_name,
    attentionKind: att[0].class_name === 'KArAtMultiHeadAttention' && act != null && typeof act === 'object' ? 'karat' : 'softmax',
    layers: {
      input: String(input.layer.config?.name ?? input.layer.name), patchEmbed: pe != null ? String(pe.config.name) : null,
      tokensReshape: reshape != null ? String(reshape.config.name) : null, classToken: cls.length ? String(cls[0].config.name) : null,
      posEmbed: pos.length === 1 ? String(pos[0].config.name) : null, attention: names(att),
      mlp: mlp != null ? String(mlp.config.name) : null, norms: names(layers.filter((l) => LAYER_NORM.includes(l?.class_name))),
      output: String(outName),
    },
  };
}

/**
 * The structure of a ViT, from a built tf.LayersModel or a saved topology. Throws a
 * KArAtArgumentError (its message prefixed with `caller`) when the model has no attention
 * layer, or not exactly one image input [batch, H, W, C] of known size.
 *
 * ```js
 * const spec = karat.vitSpecOf(model);  // {imageSize: [32, 32], patchSize: 4, grid: [8, 8], tokens: 65, dim: 192, ...}
 * ```
 */
export function vitSpecOf(source: tfl.LayersModel | object, caller = 'vitSpecOf'): ViTSpec {
  if (source == null || typeof source !== 'object') {
    throw new KArAtArgumentError(`${caller}: expected a tf.LayersModel or a model topology, got ${source === null ? 'null' : typeof source}`);
  }
  return specOfTopology(isLayersModel(source) ? source.toJSON(null, false) : source, caller);
}
