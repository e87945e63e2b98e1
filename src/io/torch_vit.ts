/**
 * PyTorch (timm) ViT weights <-> models.vit, through safetensors bytes (Node and browser).
 *
 *   const model = karat.io.vitFromSafetensors(bytes, {arch: 'vit_tiny_patch16_224'});
 *   const bytes = karat.io.vitToSafetensors(model);
 *
 * Tensor names follow timm's VisionTransformer, in PyTorch layouts (Linear weight [out, in]):
 *
 *   patch_embed.proj.weight [D, C, p, p]    <-> patch_embed/kernel [p, p, C, D]
 *   patch_embed.proj.bias [D]               <-> patch_embed/bias
 *   cls_token [1, 1, D] (pool 'token')      <-> cls_token/token
 *   pos_embed [1, N, D]                     <-> pos_embed/embedding
 *   blocks.{i}.norm1.weight|bias            <-> block{i}_norm1/gamma|beta
 *   blocks.{i}.attn.qkv.weight [3D, D]      <-> block{i}_attn/{query,key,value}/kernel [D, h, d]
 *   blocks.{i}.attn.qkv.bias [3D]           <-> block{i}_attn/{query,key,value}/bias [h, d]
 *   blocks.{i}.attn.proj.weight [D, D]|bias <-> block{i}_attn/attentionOutput/kernel [h, d, D]|bias
 *   blocks.{i}.norm2.weight|bias            <-> block{i}_norm2/gamma|beta
 *   blocks.{i}.mlp.fc1.weight [H, D]|bias   <-> block{i}_mlp_fc1/kernel [D, H]|bias
 *   blocks.{i}.mlp.fc2.weight [D, H]|bias   <-> block{i}_mlp_fc2/kernel [H, D]|bias
 *   norm.weight|bias                        <-> norm/gamma|beta
 *   fc_norm.weight|bias (instead of norm)   <-> fc_norm/gamma|beta (models.vit fcNorm: LayerNorm after pooling)
 *   head.weight [K, D]|bias                 <-> head/kernel [D, K]|bias
 *   blocks.{i}.attn.karat.<param>           <-> block{i}_attn/karat/<param> (blockwise KArAt)
 *   karat.<param>                           <-> the shared operator's <param> (universal KArAt)
 *
 * qkv rows are q, then k, then v, heads contiguous inside each (timm's reshape(B, N, 3, h, d)).
 * KArAt tensors keep this library's layouts (Fourier: coeffs [h, 2, r, N, G], proj [h, N, r]).
 * The exporter writes `__metadata__` {format: 'tfjs-karat-vit', config: JSON}; a file without
 * it (a timm checkpoint) has its architecture inferred from the shapes, with the number of
 * heads (which no shape shows) from the `heads` option or the `arch` name.
 */
import type * as tfl from '@tensorflow/tfjs-layers';
import * as tf from '@tensorflow/tfjs-core';

import {KArAtArgumentError} from '../../core/validate';
import {AttentionActivation, KArAtAttentionConfig, resolveAttention, serializeAttention} from '../layers/attention_config';
import {operatorParamSpecs} from '../bases/operator';
import type {KArAtMultiHeadAttention} from '../layers/multihead_attention';
import type {PatchEmbedding} from '../layers/vit_blocks';
import {vit} from '../models/vit';
import {parseSafetensors, SafetensorsError, SafetensorsFile, SafetensorsReadOptions, SafetensorsTensor, writeSafetensors} from './safetensors';

/** Value of `__metadata__.format` in files written by vitToSafetensors. */
export const TORCH_VIT_FORMAT = 'tfjs-karat-vit';

/** timm architectures whose head count (and patch / image size / width) is known by name. */
export const TIMM_VIT_ARCHS: Readonly<Record<string, {dim: number, heads: number, patchSize: number, imageSize: number}>> = {
  vit_tiny_patch16_224: {dim: 192, heads: 3, patchSize: 16, imageSize: 224},
  vit_small_patch16_224: {dim: 384, heads: 6, patchSize: 16, imageSize: 224},
  vit_base_patch16_224: {dim: 768, heads: 12, patchSize: 16, imageSize: 224},
  deit_tiny_patch16_224: {dim: 192, heads: 3, patchSize: 16, imageSize: 224},
  deit_small_patch16_224: {dim: 384, heads: 6, patchSize: 16, imageSize: 224},
  deit_base_patch16_224: {dim: 768, heads: 12, patchSize: 16, imageSize: 224},
};

/** The architecture stored in (or inferred from) a file. */
export interface TorchViTConfig {
  dim: number;
  depth: number;
  heads: number;
  mlpRatio: number;
  patchSize: number;
  imageSize: [number, number];
  channels: number;
  numClasses: number;
  pool: 'token' | 'gap';
  /** LayerNorm after pooling ('fc_norm', timm's global_pool='avg') instead of before it ('norm'). Absent: false. */
  fcNorm?: boolean;
  attention: AttentionActivation;
}

export interface VitFromSafetensorsOptions extends SafetensorsReadOptions {
  /** Number of heads (needed for a file without our metadata, unless `arch` is given). */
  heads?: number;
  /** A timm architecture name (a key of TIMM_VIT_ARCHS, e.g. vit_tiny_patch16_224, deit_tiny_patch16_224; a '.tag' suffix is allowed). */
  arch?: string;
  /**
   * Image size [H, W] (or a side). Needed for a non-square patch grid in a file without our
   * metadata; otherwise checked against the file.
   */
  imageSize?: number | [number, number];
  /**
   * Attention of the built model. Default: the file's (softmax for a timm checkpoint). A KArAt
   * config on a softmax file builds KArAt attention whose operators are freshly initialised
   * (listed in the report's `initialised`); on a KArAt file it must match the file's.
   */
  attention?: AttentionActivation;
  /** Classifier activation: 'linear' (default: logits, as timm's head) or 'softmax'. */
  classifierActivation?: 'linear' | 'softmax';
  /** Model name (default 'vit'). */
  name?: string;
}

export interface VitConversionReport {
  model: tfl.LayersModel;
  config: TorchViTConfig;
  /** 'metadata' (written by vitToSafetensors) or 'shapes' (inferred: a timm checkpoint). */
  configSource: 'metadata' | 'shapes';
  /** Names of the model weights loaded from the file. */
  loaded: string[];
  /** Model weights not in the file and left at their initialisation (KArAt operators only). */
  initialised: string[];
  /** Model weights not in the file and set to zero (qkv biases of a qkv_bias=False checkpoint). */
  zeroFilled: string[];
}

const fail = (msg: string): never => {
  throw new KArAtArgumentError(msg);
};

// ------------------------------------------------------------------ array helpers

/** Permutes the axes of a row-major array: out axis k = in axis perm[k]. */
export function permuteAxes(data: Float32Array, shape: number[], perm: number[]): Float32Array {
  const rank = shape.length;
  const outShape = perm.map(p => shape[p]);
  const inStrides = new Array<number>(rank);
  let s = 1;
  for (let k = rank - 1; k >= 0; k--) {
    inStrides[k] = s;
    s *= shape[k];
  }
  const stridesByOut = perm.map(p => inStrides[p]);
  const out = new Float32Array(data.length);
  const idx = new Array<number>(rank).fill(0);
  let src = 0;
  for (let o = 0; o < out.length; o++) {
    out[o] = data[src];
    for (let k = rank - 1; k >= 0; k--) {
      idx[k]++;
      src += stridesByOut[k];
      if (idx[k] < outShape[k]) break;
      src -= stridesByOut[k] * outShape[k];
      idx[k] = 0;
    }
  }
  return out;
}

const transpose2 = (d: Float32Array, rows: number, cols: number) => permuteAxes(d, [rows, cols], [1, 0]);
const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((v, i) => v === b[i]);
const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

// ------------------------------------------------------------------ config

function positiveInt(what: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) fail(`${what} must be an integer >= 1, got ${JSON.stringify(v)}`);
  return v as number;
}

function imageSizeArg(what: string, v: unknown): [number, number] {
  const hw = typeof v === 'number' ? [v, v] : Array.isArray(v) && v.length === 2 ? v : null;
  if (hw == null) fail(`${what} must be a side or [height, width], got ${JSON.stringify(v)}`);
  return [positiveInt(what, hw![0]), positiveInt(what, hw![1])];
}

function archInfo(arch: string): {dim: number, heads: number, patchSize: number, imageSize: number} {
  const base = typeof arch === 'string' ? arch.split('.')[0] : '';
  const a = TIMM_VIT_ARCHS[base];
  if (a == null) {
    fail(`argument 'arch' must be one of ${Object.keys(TIMM_VIT_ARCHS).join(', ')} (optionally with a '.tag'), got ${JSON.stringify(arch)}`);
  }
  return a;
}

/** Parses the config JSON of our metadata. */
function configFromMetadata(text: string): Partial<TorchViTConfig> {
  let c: unknown;
  try {
    c = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(`safetensors: __metadata__.config is not valid JSON (${(e as Error).message})`);
  }
  if (c == null || typeof c !== 'object' || Array.isArray(c)) {
    throw new SafetensorsError(`safetensors: __metadata__.config must be a JSON object, got ${text.slice(0, 80)}`);
  }
  const r = c as Record<string, unknown>;
  const known = ['dim', 'depth', 'heads', 'mlpRatio', 'patchSize', 'imageSize', 'channels', 'numClasses', 'pool', 'attention'];
  for (const k of Object.keys(r)) {
    if (!known.includes(k) && k !== 'fcNorm') fail(`__metadata__.config: unknown field '${k}' (expected ${known.join(', ')})`);
  }
  for (const k of known) if (r[k] === undefined) fail(`__metadata__.config: field '${k}' is missing`);
  for (const k of ['dim', 'depth', 'heads', 'patchSize', 'channels', 'numClasses']) positiveInt(`__metadata__.config.${k}`, r[k]);
  if (typeof r.mlpRatio !== 'number' || !(r.mlpRatio > 0)) fail(`__metadata__.config.mlpRatio must be > 0, got ${JSON.stringify(r.mlpRatio)}`);
  if (r.pool !== 'token' && r.pool !== 'gap') fail(`__metadata__.config.pool must be 'token' or 'gap', got ${JSON.stringify(r.pool)}`);
  if (r.fcNorm !== undefined && typeof r.fcNorm !== 'boolean') fail(`__metadata__.config.fcNorm must be a boolean, got ${JSON.stringify(r.fcNorm)}`);
  resolveAttention(r.attention as AttentionActivation, '__metadata__.config.attention');
  return {...r, imageSize: imageSizeArg('__metadata__.config.imageSize', r.imageSize)} as Partial<TorchViTConfig>;
}

function shapeOf(f: SafetensorsFile, name: string): number[] | null {
  return f.has(name) ? f.entry(name).shape : null;
}

function need(f: SafetensorsFile, name: string): number[] {
  const s = shapeOf(f, name);
  if (s == null) fail(`the file has no tensor '${name}' (not a timm VisionTransformer state dict?)`);
  return s!;
}

/** Describes the file's architecture (from our metadata or from its shapes). */
export function vitConfigFromSafetensors(
    bytes: Uint8Array | SafetensorsFile, opts: VitFromSafetensorsOptions = {}): {config: TorchViTConfig, source: 'metadata' | 'shapes'} {
  const options = opts ?? {};
  checkOptions(options);
  const f = bytes instanceof Uint8Array ? parseSafetensors(bytes, options) : bytes;
  const md = f.metadata.format === TORCH_VIT_FORMAT ?
      configFromMetadata(f.metadata.config ?? fail(`__metadata__ has format '${TORCH_VIT_FORMAT}' but no 'config'`)) : null;
  const arch = options.arch != null ? archInfo(options.arch) : null;

  const pe = need(f, 'patch_embed.proj.weight');
  if (pe.length !== 4 || pe[2] !== pe[3]) {
    fail(`tensor 'patch_embed.proj.weight' must be a square-kernel Conv2d weight [D, C, p, p], got ${fmt(pe)}`);
  }
  const [dim, channels, patchSize] = pe;
  let depth = 0;
  while (f.has(`blocks.${depth}.attn.qkv.weight`)) depth++;
  if (depth === 0) fail(`the file has no tensor 'blocks.0.attn.qkv.weight' (no transformer blocks)`);
  const fc1 = need(f, 'blocks.0.mlp.fc1.weight');
  if (fc1.length !== 2 || fc1[1] !== dim) fail(`tensor 'blocks.0.mlp.fc1.weight' must be [hidden, ${dim}], got ${fmt(fc1)}`);
  const head = shapeOf(f, 'head.weight');
  if (head == null) {
    fail(`the file has no classifier 'head.weight' (a timm model saved with num_classes=0); models.vit needs a head`);
  }
  if (head!.length !== 2 || head![1] !== dim) fail(`tensor 'head.weight' must be [classes, ${dim}], got ${fmt(head!)}`);
  if (f.has('reg_token')) {
    fail(`tensor 'reg_token': register tokens (timm reg_tokens > 0) are not supported; models.vit has only the ` +
         `class token as prefix token`);
  }
  if (f.has('dist_token')) {
    fail(`tensor 'dist_token': a distillation token (timm's distilled DeiT) is not supported; models.vit has one head ` +
         `on the class token`);
  }
  const fcNorm = f.has('fc_norm.weight');
  if (fcNorm && f.has('norm.weight')) {
    fail(`tensors 'norm.weight' and 'fc_norm.weight': a LayerNorm both before and after pooling is not supported ` +
         `(models.vit has one of them: 'norm', or 'fc_norm' with fcNorm)`);
  }
  if (fcNorm && f.has('cls_token')) {
    fail(`tensors 'cls_token' and 'fc_norm.weight': timm's global_pool='avg' with a class token (averaging the patch ` +
         `tokens only) is not supported; models.vit pools with fc_norm only without a class token (class_token=False)`);
  }
  const pool: 'token' | 'gap' = f.has('cls_token') ? 'token' : 'gap';
  const pos = need(f, 'pos_embed');
  if (pos.length !== 3 || pos[0] !== 1 || pos[2] !== dim) fail(`tensor 'pos_embed' must be [1, N, ${dim}], got ${fmt(pos)}`);
  const square = (n: number) => Number.isInteger(Math.sqrt(n));
  if (pool === 'token' && options.imageSize == null && md == null && square(pos[1]) && !square(pos[1] - 1)) {
    fail(`tensor 'pos_embed' ${fmt(pos)} has no position for the class token (timm's no_embed_class=True): not ` +
         `supported; models.vit adds position embeddings to the class token too`);
  }
  const patches = pos[1] - (pool === 'token' ? 1 : 0);
  if (patches < 1) fail(`tensor 'pos_embed' ${fmt(pos)} leaves no patch positions`);

  // image size: option > metadata > arch > square grid
  let imageSize: [number, number];
  const optSize = options.imageSize != null ? imageSizeArg(`argument 'imageSize'`, options.imageSize) : null;
  if (optSize != null) {
    imageSize = optSize;
  } else if (md != null) {
    imageSize = md.imageSize!;
  } else if (arch != null && arch.patchSize === patchSize && (arch.imageSize / patchSize) ** 2 === patches) {
    imageSize = [arch.imageSize, arch.imageSize];
  } else {
    const g = Math.round(Math.sqrt(patches));
    if (g * g !== patches) {
      fail(`tensor 'pos_embed' has ${patches} patch positions, not a square grid: give the image size ` +
           `(imageSize [H, W], --image-size HxW)`);
    }
    imageSize = [g * patchSize, g * patchSize];
  }
  if (imageSize[0] % patchSize !== 0 || imageSize[1] % patchSize !== 0 ||
      (imageSize[0] / patchSize) * (imageSize[1] / patchSize) !== patches) {
    fail(`image size ${imageSize[0]}x${imageSize[1]} with patch ${patchSize} gives ` +
         `${(imageSize[0] / patchSize) * (imageSize[1] / patchSize)} patches, but 'pos_embed' ${fmt(pos)} has ${patches}` +
         `${pool === 'token' ? ' (plus the class token)' : ''}`);
  }

  let heads: number;
  if (options.heads != null) {
    heads = positiveInt(`argument 'heads'`, options.heads);
  } else if (md != null) {
    heads = md.heads!;
  } else if (arch != null) {
    heads = arch.heads;
  } else {
    heads = fail(`the number of attention heads is not stored in a timm checkpoint: give 'heads' (--heads N) or ` +
                 `'arch' (--arch ${Object.keys(TIMM_VIT_ARCHS).join('|')})`);
  }
  if (arch != null) {
    if (arch.dim !== dim || arch.patchSize !== patchSize) {
      fail(`arch '${options.arch}' has width ${arch.dim} and patch ${arch.patchSize}, the file has width ${dim} and patch ${patchSize}`);
    }
    if (options.heads != null && options.heads !== arch.heads) fail(`argument 'heads' (${options.heads}) contradicts arch '${options.arch}' (${arch.heads} heads)`);
  }
  if (dim % heads !== 0) fail(`${heads} heads do not divide the width ${dim}`);

  let attention: AttentionActivation = 'softmax';
  const mdAttention = md?.attention ?? 'softmax';
  if (options.attention != null) {
    const want = resolveAttention(options.attention, `argument 'attention'`);
    const have = resolveAttention(mdAttention, '__metadata__.config.attention');
    if (have.kind === 'karat' && JSON.stringify(serializeAttention(want)) !== JSON.stringify(serializeAttention(have))) {
      fail(`argument 'attention' ${JSON.stringify(options.attention)} differs from the file's KArAt attention ` +
           `${JSON.stringify(mdAttention)} (its operator tensors would not fit)`);
    }
    attention = options.attention;
  } else {
    attention = mdAttention;
  }
  const config: TorchViTConfig = {
    dim, depth, heads, mlpRatio: fc1[0] / dim, patchSize, imageSize, channels, numClasses: head![0], pool, attention,
  };
  if (fcNorm) config.fcNorm = true;
  if (md != null) {
    if ((md.fcNorm ?? false) !== fcNorm) fail(`__metadata__.config.fcNorm (${md.fcNorm ?? false}) contradicts the tensors (${fcNorm ? '' : 'no '}'fc_norm.weight')`);
    for (const k of ['dim', 'depth', 'heads', 'patchSize', 'channels', 'numClasses', 'pool'] as const) {
      if (md[k] !== config[k]) fail(`__metadata__.config.${k} (${JSON.stringify(md[k])}) contradicts the ${k === 'heads' ? "argument 'heads'" : 'tensor shapes'} (${JSON.stringify(config[k])})`);
    }
    if (Math.round(md.mlpRatio! * dim) !== fc1[0]) fail(`__metadata__.config.mlpRatio (${md.mlpRatio}) contradicts 'blocks.0.mlp.fc1.weight' ${fmt(fc1)}`);
    config.mlpRatio = md.mlpRatio!;
  }
  return {config, source: md != null ? 'metadata' : 'shapes'};
}

function checkOptions(o: VitFromSafetensorsOptions): void {
  if (o == null || typeof o !== 'object') fail(`vitFromSafetensors: options must be an object`);
  const known = ['heads', 'arch', 'imageSize', 'attention', 'classifierActivation', 'name', 'maxHeaderBytes'];
  for (const k of Object.keys(o)) {
    if (!known.includes(k) && (o as Record<string, unknown>)[k] !== undefined) {
      fail(`vitFromSafetensors: unknown option '${k}' (expected ${known.join(', ')})`);
    }
  }
}

// ------------------------------------------------------------------ naming table

type Getter = (name: string) => Float32Array;

/** One tensor of the PyTorch/timm naming: its state-dict name and shape. */
export interface TorchTensorSpec {
  torch: string;
  shape: number[];
}

/** Every torch tensor (name and shape) of a config, in timm's state-dict order. */
export function torchViTTensorShapes(c: TorchViTConfig, karatParams: Array<{name: string, shape: number[]}> = []): TorchTensorSpec[] {
  const D = c.dim, H = Math.round(c.dim * c.mlpRatio);
  const N = (c.imageSize[0] / c.patchSize) * (c.imageSize[1] / c.patchSize) + (c.pool === 'token' ? 1 : 0);
  const out: TorchTensorSpec[] = [];
  const add = (torch: string, shape: number[]) => out.push({torch, shape});
  if (c.pool === 'token') add('cls_token', [1, 1, D]);
  add('pos_embed', [1, N, D]);
  add('patch_embed.proj.weight', [D, c.channels, c.patchSize, c.patchSize]);
  add('patch_embed.proj.bias', [D]);
  const universal = isUniversal(c.attention);
  for (let i = 0; i < c.depth; i++) {
    const b = `blocks.${i}`;
    add(`${b}.norm1.weight`, [D]);
    add(`${b}.norm1.bias`, [D]);
    add(`${b}.attn.qkv.weight`, [3 * D, D]);
    add(`${b}.attn.qkv.bias`, [3 * D]);
    add(`${b}.attn.proj.weight`, [D, D]);
    add(`${b}.attn.proj.bias`, [D]);
    if (!universal) for (const p of karatParams) add(`${b}.attn.karat.${p.name}`, p.shape);
    add(`${b}.norm2.weight`, [D]);
    add(`${b}.norm2.bias`, [D]);
    add(`${b}.mlp.fc1.weight`, [H, D]);
    add(`${b}.mlp.fc1.bias`, [H]);
    add(`${b}.mlp.fc2.weight`, [D, H]);
    add(`${b}.mlp.fc2.bias`, [D]);
  }
  if (universal) for (const p of karatParams) add(`karat.${p.name}`, p.shape);
  const norm = c.fcNorm ? 'fc_norm' : 'norm';
  add(`${norm}.weight`, [D]);
  add(`${norm}.bias`, [D]);
  add('head.weight', [c.numClasses, D]);
  add('head.bias', [c.numClasses]);
  return out;
}

function isUniversal(a: AttentionActivation): boolean {
  const r = resolveAttention(a, 'attention');
  return r.kind === 'karat' && r.mode === 'universal';
}

/** The model's unique weights by their layer-qualified name (e.g. 'block0_attn/query/kernel'). */
function weightsByName(model: tfl.LayersModel): Map<string, tfl.LayerVariable> {
  const out = new Map<string, tfl.LayerVariable>();
  const seen = new Set<number>();
  for (const w of model.weights) {
    const v = w.read();
    if (seen.has(v.id)) continue;
    seen.add(v.id);
    out.set((w as unknown as {originalName?: string}).originalName ?? w.name, w);
  }
  return out;
}

/** KArAt operator parameters (name, shape) held by the model's attention layers (first owner). */
function karatParamsOf(model: tfl.LayersModel, depth: number): Array<{name: string, shape: number[]}> {
  for (let i = 0; i < depth; i++) {
    const l = model.getLayer(`block${i}_attn`) as KArAtMultiHeadAttention;
    if (l.operator != null && l.ownsOperator) {
      return Object.entries(l.operator.variables).map(([name, v]) => ({name, shape: v.shape as number[]}));
    }
  }
  return [];
}

/** The KArAt operator tensors (names and shapes) a configuration has, computed without building anything. */
function karatParamShapes(c: TorchViTConfig): Array<{name: string, shape: number[]}> {
  const r = resolveAttention(c.attention, 'attention');
  if (r.kind !== 'karat') return [];
  const tokens = (c.imageSize[0] / c.patchSize) * (c.imageSize[1] / c.patchSize) + (c.pool === 'token' ? 1 : 0);
  return operatorParamSpecs(r.operator, c.heads, tokens).map(p => ({name: p.name, shape: [...p.shape]}));
}

/** Most KArAt operator parameters a conversion may initialise (the file holds none): 2^27 (512 MiB). */
export const MAX_INITIALISED_KARAT_PARAMS = 2 ** 27;

function checkInitialisedKArAtSize(c: TorchViTConfig, params: Array<{shape: number[]}>): void {
  const per = params.reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
  const total = per * (isUniversal(c.attention) ? 1 : c.depth);
  if (total > MAX_INITIALISED_KARAT_PARAMS) {
    fail(`the KArAt operators of ${describe(c)} would have ${total} parameters, more than ${MAX_INITIALISED_KARAT_PARAMS}`);
  }
}

/** Owner layer index of the universal operator (the first attention layer that owns it). */
function universalOwner(model: tfl.LayersModel, depth: number): number {
  for (let i = 0; i < depth; i++) {
    const l = model.getLayer(`block${i}_attn`) as KArAtMultiHeadAttention;
    if (l.ownsOperator) return i;
  }
  return fail('internal: a universal KArAt model without an operator owner');
}

/**
 * Pairs every tfjs weight name of the model with a function producing its value (tfjs layout)
 * from torch tensors, and the reverse.
 */
function tfjsFromTorch(c: TorchViTConfig, get: Getter): Map<string, () => Float32Array> {
  const D = c.dim, H = Math.round(c.dim * c.mlpRatio), p = c.patchSize;
  const m = new Map<string, () => Float32Array>();
  m.set('patch_embed/kernel', () => permuteAxes(get('patch_embed.proj.weight'), [D, c.channels, p, p], [2, 3, 1, 0]));
  m.set('patch_embed/bias', () => get('patch_embed.proj.bias'));
  if (c.pool === 'token') m.set('cls_token/token', () => get('cls_token'));
  m.set('pos_embed/embedding', () => get('pos_embed'));
  const linear = (t: string, out: number, inp: number) => () => transpose2(get(`${t}.weight`), out, inp);
  for (let i = 0; i < c.depth; i++) {
    const b = `blocks.${i}`, l = `block${i}`;
    m.set(`${l}_norm1/gamma`, () => get(`${b}.norm1.weight`));
    m.set(`${l}_norm1/beta`, () => get(`${b}.norm1.bias`));
    (['query', 'key', 'value'] as const).forEach((which, j) => {
      // rows j·D .. (j+1)·D of qkv.weight [3D, D] -> [D_in, D_out] = [D, h, d]
      m.set(`${l}_attn/${which}/kernel`, () => transpose2(get(`${b}.attn.qkv.weight`).slice(j * D * D, (j + 1) * D * D), D, D));
      m.set(`${l}_attn/${which}/bias`, () => get(`${b}.attn.qkv.bias`).slice(j * D, (j + 1) * D));
    });
    m.set(`${l}_attn/attentionOutput/kernel`, linear(`${b}.attn.proj`, D, D));
    m.set(`${l}_attn/attentionOutput/bias`, () => get(`${b}.attn.proj.bias`));
    m.set(`${l}_norm2/gamma`, () => get(`${b}.norm2.weight`));
    m.set(`${l}_norm2/beta`, () => get(`${b}.norm2.bias`));
    m.set(`${l}_mlp_fc1/kernel`, linear(`${b}.mlp.fc1`, H, D));
    m.set(`${l}_mlp_fc1/bias`, () => get(`${b}.mlp.fc1.bias`));
    m.set(`${l}_mlp_fc2/kernel`, linear(`${b}.mlp.fc2`, D, H));
    m.set(`${l}_mlp_fc2/bias`, () => get(`${b}.mlp.fc2.bias`));
  }
  const norm = c.fcNorm ? 'fc_norm' : 'norm';
  m.set(`${norm}/gamma`, () => get(`${norm}.weight`));
  m.set(`${norm}/beta`, () => get(`${norm}.bias`));
  m.set('head/kernel', linear('head', c.numClasses, D));
  m.set('head/bias', () => get('head.bias'));
  return m;
}

/** torch name of a tfjs KArAt weight name, or null when it is not one. */
function karatTorchName(tfjsName: string, universal: boolean): string | null {
  const mm = /^block(\d+)_attn\/karat\/(.+)$/.exec(tfjsName);
  if (mm == null) return null;
  return universal ? `karat.${mm[2]}` : `blocks.${mm[1]}.attn.karat.${mm[2]}`;
}

// ------------------------------------------------------------------ import

/**
 * Builds the models.vit equivalent of a timm ViT state dict (or of a file written by
 * vitToSafetensors) from safetensors bytes, with every weight loaded; reports what was loaded.
 */
export function vitFromSafetensorsWithReport(bytes: Uint8Array, opts: VitFromSafetensorsOptions = {}): VitConversionReport {
  const options = opts ?? {};
  checkOptions(options);
  const f = parseSafetensors(bytes, options);
  const {config, source} = vitConfigFromSafetensors(f, options);
  const cls = options.classifierActivation ?? 'linear';
  if (cls !== 'linear' && cls !== 'softmax') fail(`argument 'classifierActivation' must be 'linear' or 'softmax', got ${JSON.stringify(cls)}`);
  // Every tensor's shape is checked against the configuration before anything is built: the
  // safetensors reader has matched each entry's byte length to its shape, so the model built
  // below holds no more than the bytes the file carries (plus KArAt operators it lacks, bounded).
  const karatParams = karatParamShapes(config);
  // KArAt tensors are expected when the file holds any, or when its metadata declares KArAt.
  const declared = source === 'metadata' &&
      resolveAttention((JSON.parse(f.metadata.config) as {attention: AttentionActivation}).attention).kind === 'karat';
  const fileHasKArAt = declared || f.entries.some(e => /^(blocks\.\d+\.attn\.)?karat\./.test(e.name));
  const expected = torchViTTensorShapes(config, fileHasKArAt ? karatParams : []);
  const expectedNames = new Set(expected.map(e => e.torch));
  const optionalBias = (n: string) => /^blocks\.\d+\.attn\.qkv\.bias$/.test(n);
  const unexpected = f.entries.map(e => e.name).filter(n => !expectedNames.has(n));
  if (unexpected.length) {
    fail(`the file has tensors that models.vit (${describe(config)}) has no place for: ` +
         `${unexpected.slice(0, 6).join(', ')}${unexpected.length > 6 ? ` and ${unexpected.length - 6} more` : ''}`);
  }
  const zeroFilled: string[] = [];
  for (const e of expected) {
    if (!f.has(e.torch)) {
      if (optionalBias(e.torch)) continue;
      fail(`the file has no tensor '${e.torch}' (expected ${fmt(e.shape)} for ${describe(config)})`);
    }
    const s = f.entry(e.torch).shape;
    if (!sameShape(s, e.shape)) fail(`tensor '${e.torch}' has shape ${fmt(s)}, expected ${fmt(e.shape)} for ${describe(config)}`);
  }
  const qkvBiases = expected.filter(e => optionalBias(e.torch)).map(e => f.has(e.torch));
  if (qkvBiases.some(b => b) && !qkvBiases.every(b => b)) fail(`some blocks have 'attn.qkv.bias' and others do not`);

  if (!fileHasKArAt) checkInitialisedKArAtSize(config, karatParams);
  const model = vit({
    dim: config.dim, depth: config.depth, heads: config.heads, mlpRatio: config.mlpRatio,
    imageSize: config.imageSize, patchSize: config.patchSize, channels: config.channels,
    numClasses: config.numClasses, pool: config.pool, fcNorm: config.fcNorm ?? false, attention: config.attention,
    classifierActivation: cls, name: options.name ?? 'vit',
  });
  try {
    const universal = isUniversal(config.attention);
    // Decoded once each; only qkv (read for q, k and v) is kept for reuse.
    const cache = new Map<string, Float32Array>();
    const get: Getter = (n) => {
      if (!f.has(n) && optionalBias(n)) return new Float32Array(3 * config.dim);
      if (!/\.attn\.qkv\./.test(n)) return f.float32(n);
      let v = cache.get(n);
      if (v == null) {
        v = f.float32(n);
        cache.set(n, v);
      }
      return v;
    };
    const write = (w: tfl.LayerVariable, v: Float32Array) => tf.tidy(() => {
      w.write(tf.tensor(v, w.shape as number[], 'float32'));
    });
    const table = tfjsFromTorch(config, get);
    const loaded: string[] = [], initialised: string[] = [];
    for (const [name, w] of weightsByName(model)) {
      const k = karatTorchName(name, universal);
      if (k != null) {
        if (!fileHasKArAt) {
          initialised.push(name);
          continue;
        }
        write(w, get(k));
        loaded.push(name);
        continue;
      }
      const fn = table.get(name);
      if (fn == null) fail(`internal: models.vit weight '${name}' has no timm counterpart`);
      if (/_attn\/(query|key|value)\/bias$/.test(name) && !f.has(`blocks.${/^block(\d+)/.exec(name)![1]}.attn.qkv.bias`)) {
        zeroFilled.push(name);
      } else {
        loaded.push(name);
      }
      write(w, fn!());
    }
    return {model, config, configSource: source, loaded, initialised, zeroFilled};
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** Builds the models.vit equivalent of a timm ViT (or vitToSafetensors) safetensors file. */
export function vitFromSafetensors(bytes: Uint8Array, options: VitFromSafetensorsOptions = {}): tfl.LayersModel {
  return vitFromSafetensorsWithReport(bytes, options).model;
}

function describe(c: TorchViTConfig): string {
  const att = typeof c.attention === 'string' ? c.attention : `${(c.attention as KArAtAttentionConfig).type ?? (c.attention as KArAtAttentionConfig).basis} ${(c.attention as KArAtAttentionConfig).mode ?? 'blockwise'}`;
  return `dim ${c.dim}, depth ${c.depth}, heads ${c.heads}, patch ${c.patchSize}, image ${c.imageSize[0]}x${c.imageSize[1]}, ` +
      `${c.channels} channels, ${c.numClasses} classes, pool ${c.pool}, ${att} attention`;
}

// ------------------------------------------------------------------ export

function layerOf(model: tfl.LayersModel, name: string, what: string): tfl.layers.Layer {
  try {
    return model.getLayer(name);
  } catch {
    return fail(`vitToSafetensors: the model has no layer '${name}' (${what}); only models.vit models can be exported`);
  }
}

/** Reads the architecture of a models.vit model (throws for anything else). */
export function vitConfigOfModel(model: tfl.LayersModel): TorchViTConfig {
  if (model == null || typeof (model as {getLayer?: unknown}).getLayer !== 'function') fail('vitToSafetensors: expected a tf.LayersModel');
  const inShape = model.inputs.length === 1 ? model.inputs[0].shape : null;
  if (inShape == null || inShape.length !== 4 || inShape.slice(1).some(d => d == null)) {
    fail(`vitToSafetensors: the model must have one image input [batch, H, W, C], got ${JSON.stringify(model.inputs.map(i => i.shape))}`);
  }
  const [, H, W, C] = inShape as number[];
  const pe = layerOf(model, 'patch_embed', 'patch embedding');
  // (class names rather than instanceof: the model may come from another copy of this package)
  if (pe.getClassName() !== 'PatchEmbedding') fail(`vitToSafetensors: layer 'patch_embed' is a ${pe.getClassName()}, expected PatchEmbedding`);
  const {dim, patchSize} = pe as PatchEmbedding;
  const attn: KArAtMultiHeadAttention[] = [];
  for (const l of model.layers) if (l.getClassName() === 'KArAtMultiHeadAttention') attn.push(l as KArAtMultiHeadAttention);
  const depth = attn.length;
  if (depth === 0) fail('vitToSafetensors: the model has no KArAtMultiHeadAttention layers');
  attn.forEach((l, i) => {
    if (l.name !== `block${i}_attn`) fail(`vitToSafetensors: attention layer ${i} is named '${l.name}', expected 'block${i}_attn' (models.vit naming)`);
    if (l.numHeads * l.keyDim !== dim || l.valueDim !== l.keyDim || !l.useBias || l.outputShapeArg != null) {
      fail(`vitToSafetensors: layer '${l.name}' (heads ${l.numHeads}, keyDim ${l.keyDim}, valueDim ${l.valueDim}, useBias ${l.useBias}) ` +
           `is not timm's attention of width ${dim}`);
    }
  });
  const heads = attn[0].numHeads;
  const att0 = JSON.stringify(serializeAttention(attn[0].attention));
  for (const l of attn) {
    if (l.numHeads !== heads) fail(`vitToSafetensors: layer '${l.name}' has ${l.numHeads} heads, block0_attn has ${heads}`);
    if (JSON.stringify(serializeAttention(l.attention)) !== att0) fail(`vitToSafetensors: layer '${l.name}' has another attention than block0_attn`);
  }
  const fcNorm = model.layers.some(l => l.name === 'fc_norm');
  for (const n of [fcNorm ? 'fc_norm' : 'norm', ...attn.flatMap((_, i) => [`block${i}_norm1`, `block${i}_norm2`])]) {
    const eps = (layerOf(model, n, 'LayerNorm').getConfig() as {epsilon?: number}).epsilon;
    if (eps !== 1e-6) fail(`vitToSafetensors: LayerNorm '${n}' has epsilon ${eps}; timm's ViT uses 1e-6`);
  }
  const fc1 = layerOf(model, 'block0_mlp_fc1', 'MLP').getConfig() as {units: number, activation: string};
  if (fc1.activation !== 'gelu') fail(`vitToSafetensors: 'block0_mlp_fc1' has activation '${fc1.activation}', timm's ViT uses (exact) GELU`);
  const head = layerOf(model, 'head', 'classifier').getConfig() as {units: number};
  const pool: 'token' | 'gap' = model.layers.some(l => l.name === 'cls_token') ? 'token' : 'gap';
  const r = resolveAttention(attn[0].attention, 'attention');
  let attention: AttentionActivation = 'softmax';
  if (r.kind === 'karat') {
    const {basis, seed, ...op} = r.operator;
    void seed;
    attention = {type: basis, ...op, mode: r.mode, shareName: r.shareName} as KArAtAttentionConfig;
  }
  return {dim, depth, heads, mlpRatio: fc1.units / dim, patchSize, imageSize: [H, W], channels: C, numClasses: head.units, pool,
          ...(fcNorm ? {fcNorm} : {}), attention};
}

/**
 * The weights of a models.vit model (softmax or KArAt) as timm-named float32 tensors in
 * PyTorch layouts, plus our metadata.
 */
export function vitToTorchTensors(model: tfl.LayersModel): {tensors: SafetensorsTensor[], metadata: Record<string, string>, config: TorchViTConfig} {
  const config = vitConfigOfModel(model);
  const D = config.dim, Hd = Math.round(D * config.mlpRatio), p = config.patchSize;
  const universal = isUniversal(config.attention);
  const ws = weightsByName(model);
  const used = new Set<string>();
  const read = (n: string): Float32Array => {
    const w = ws.get(n);
    if (w == null) return fail(`vitToSafetensors: the model has no weight '${n}' (not a models.vit model?)`);
    used.add(n);
    return w.read().dataSync() as Float32Array;
  };
  const linear = (n: string, inp: number, out: number) => transpose2(read(`${n}/kernel`), inp, out);
  const cat = (parts: Float32Array[]) => {
    const out = new Float32Array(parts.reduce((a, x) => a + x.length, 0));
    let o = 0;
    for (const x of parts) {
      out.set(x, o);
      o += x.length;
    }
    return out;
  };
  const karatParams = karatParamsOf(model, config.depth);
  const owner = universal ? universalOwner(model, config.depth) : -1;
  const byTorch = new Map<string, Float32Array>();
  byTorch.set('patch_embed.proj.weight', permuteAxes(read('patch_embed/kernel'), [p, p, config.channels, D], [3, 2, 0, 1]));
  byTorch.set('patch_embed.proj.bias', read('patch_embed/bias'));
  if (config.pool === 'token') byTorch.set('cls_token', read('cls_token/token'));
  byTorch.set('pos_embed', read('pos_embed/embedding'));
  for (let i = 0; i < config.depth; i++) {
    const b = `blocks.${i}`, l = `block${i}`;
    byTorch.set(`${b}.norm1.weight`, read(`${l}_norm1/gamma`));
    byTorch.set(`${b}.norm1.bias`, read(`${l}_norm1/beta`));
    byTorch.set(`${b}.attn.qkv.weight`, cat(['query', 'key', 'value'].map(w => transpose2(read(`${l}_attn/${w}/kernel`), D, D))));
    byTorch.set(`${b}.attn.qkv.bias`, cat(['query', 'key', 'value'].map(w => read(`${l}_attn/${w}/bias`))));
    byTorch.set(`${b}.attn.proj.weight`, linear(`${l}_attn/attentionOutput`, D, D));
    byTorch.set(`${b}.attn.proj.bias`, read(`${l}_attn/attentionOutput/bias`));
    if (!universal) for (const k of karatParams) byTorch.set(`${b}.attn.karat.${k.name}`, read(`${l}_attn/karat/${k.name}`));
    byTorch.set(`${b}.norm2.weight`, read(`${l}_norm2/gamma`));
    byTorch.set(`${b}.norm2.bias`, read(`${l}_norm2/beta`));
    byTorch.set(`${b}.mlp.fc1.weight`, linear(`${l}_mlp_fc1`, D, Hd));
    byTorch.set(`${b}.mlp.fc1.bias`, read(`${l}_mlp_fc1/bias`));
    byTorch.set(`${b}.mlp.fc2.weight`, linear(`${l}_mlp_fc2`, Hd, D));
    byTorch.set(`${b}.mlp.fc2.bias`, read(`${l}_mlp_fc2/bias`));
  }
  if (universal) for (const k of karatParams) byTorch.set(`karat.${k.name}`, read(`block${owner}_attn/karat/${k.name}`));
  const norm = config.fcNorm ? 'fc_norm' : 'norm';
  byTorch.set(`${norm}.weight`, read(`${norm}/gamma`));
  byTorch.set(`${norm}.bias`, read(`${norm}/beta`));
  byTorch.set('head.weight', linear('head', D, config.numClasses));
  byTorch.set('head.bias', read('head/bias'));
  const left = [...ws.keys()].filter(n => !used.has(n));
  if (left.length) fail(`vitToSafetensors: the model has weights with no timm counterpart: ${left.slice(0, 6).join(', ')}`);
  const tensors = torchViTTensorShapes(config, karatParams).map(({torch, shape}) => {
    const data = byTorch.get(torch);
    if (data == null) return fail(`internal: no value for '${torch}'`);
    return {name: torch, shape, data};
  });
  const metadata = {format: TORCH_VIT_FORMAT, config: JSON.stringify(config)};
  return {tensors, metadata, config};
}

/** Serialises a models.vit model as a timm-named safetensors file (F32) with our metadata. */
export function vitToSafetensors(model: tfl.LayersModel): Uint8Array {
  const {tensors, metadata} = vitToTorchTensors(model);
  return writeSafetensors(tensors, metadata);
}
