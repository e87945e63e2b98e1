/**
 * PyTorch (timm) ViT weights <-> models.vit, through safetensors bytes (Node and browser).
 *
 *   const model = karat.io.vitFromSafetensors(bytes, {arch: 'vit_tiny_patch16_224'});
 *   const bytes = karat.io.vitToSafetensors(model);
 *
 * Tensor names and layouts follow timm's VisionTransformer (the table in timm_table.ts). The
 * exporter writes `__metadata__` {format: 'tfjs-karat-vit', config: JSON}; a file without it
 * (a timm checkpoint) has its architecture inferred from the shapes (torch_vit_config.ts),
 * with the number of heads (which no shape shows) from the `heads` option or the `arch` name.
 */
import type * as tfl from '@tensorflow/tfjs-layers';
import * as tf from '@tensorflow/tfjs-core';

import {AttentionActivation, KArAtAttentionConfig, resolveAttention, serializeAttention} from '../layers/attention_config';
import {operatorParamSpecs} from '../bases/operator';
import type {KArAtMultiHeadAttention} from '../layers/multihead_attention';
import type {PatchEmbedding} from '../layers/vit_blocks';
import {vit} from '../models/vit';
import {vitSpecOf, ViTSpec} from '../models/vit_spec';
import {parseSafetensors, SafetensorsFile, SafetensorsTensor, writeSafetensors} from './safetensors';
import {isOptionalTorchTensor, KArAtParamShape, timmTable, TimmTensor} from './timm_table';
import {checkOptions, configTokens, describeConfig, fail, fmt, isUniversal, TORCH_VIT_FORMAT, TorchViTConfig, vitConfigFromSafetensors,
        VitFromSafetensorsOptions} from './torch_vit_config';


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

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((v, i) => v === b[i]);

// ------------------------------------------------------------------ KArAt operators and weights

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
function karatParamsOf(model: tfl.LayersModel, depth: number): KArAtParamShape[] {
  for (let i = 0; i < depth; i++) {
    const l = model.getLayer(`block${i}_attn`) as KArAtMultiHeadAttention;
    if (l.operator != null && l.ownsOperator) {
      return Object.entries(l.operator.variables).map(([name, v]) => ({name, shape: v.shape as number[]}));
    }
  }
  return [];
}

/** The KArAt operator tensors (names and shapes) a configuration has, computed without building anything. */
function karatParamShapes(c: TorchViTConfig): KArAtParamShape[] {
  const r = resolveAttention(c.attention, 'attention');
  if (r.kind !== 'karat') return [];
  return operatorParamSpecs(r.operator, c.heads, configTokens(c)).map(p => ({name: p.name, shape: [...p.shape]}));
}

/** Most KArAt operator parameters a conversion may initialise (the file holds none): 2^27 (512 MiB). */
export const MAX_INITIALISED_KARAT_PARAMS = 2 ** 27;

function checkInitialisedKArAtSize(c: TorchViTConfig, params: Array<{shape: number[]}>): void {
  const per = params.reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
  const total = per * (isUniversal(c.attention) ? 1 : c.depth);
  if (total > MAX_INITIALISED_KARAT_PARAMS) {
    fail(`the KArAt operators of ${describeConfig(c)} would have ${total} parameters, more than ${MAX_INITIALISED_KARAT_PARAMS}`);
  }
}

/** Owner layer index of the shared operator (the first attention layer that owns it); 0 unless universal. */
function operatorOwner(model: tfl.LayersModel, c: TorchViTConfig): number {
  if (!isUniversal(c.attention)) return 0;
  for (let i = 0; i < c.depth; i++) {
    const l = model.getLayer(`block${i}_attn`) as KArAtMultiHeadAttention;
    if (l.ownsOperator) return i;
  }
  return fail('internal: a universal KArAt model without an operator owner');
}

// ------------------------------------------------------------------ import

/**
 * Checks every tensor of the file against the table of `config` before anything is built: the
 * safetensors reader has matched each entry's byte length to its shape, so the model built from
 * it holds no more than the bytes the file carries (plus KArAt operators it lacks, bounded).
 */
function checkFileTensors(f: SafetensorsFile, config: TorchViTConfig, expected: TimmTensor[]): void {
  const expectedNames = new Set(expected.map(e => e.torch));
  const unexpected = f.entries.map(e => e.name).filter(n => !expectedNames.has(n));
  if (unexpected.length) {
    fail(`the file has tensors that models.vit (${describeConfig(config)}) has no place for: ` +
         `${unexpected.slice(0, 6).join(', ')}${unexpected.length > 6 ? ` and ${unexpected.length - 6} more` : ''}`);
  }
  for (const e of expected) {
    if (!f.has(e.torch)) {
      if (isOptionalTorchTensor(e.torch)) continue;
      fail(`the file has no tensor '${e.torch}' (expected ${fmt(e.shape)} for ${describeConfig(config)})`);
    }
    const s = f.entry(e.torch).shape;
    if (!sameShape(s, e.shape)) fail(`tensor '${e.torch}' has shape ${fmt(s)}, expected ${fmt(e.shape)} for ${describeConfig(config)}`);
  }
  const qkvBiases = expected.filter(e => isOptionalTorchTensor(e.torch)).map(e => f.has(e.torch));
  if (qkvBiases.some(b => b) && !qkvBiases.every(b => b)) fail(`some blocks have 'attn.qkv.bias' and others do not`);
}

/** Whether the file holds (or its metadata declares) KArAt operator tensors. */
function fileHasKArAt(f: SafetensorsFile, source: 'metadata' | 'shapes'): boolean {
  const declared = source === 'metadata' &&
      resolveAttention((JSON.parse(f.metadata.config) as {attention: AttentionActivation}).attention).kind === 'karat';
  return declared || f.entries.some(e => /^(blocks\.\d+\.attn\.)?karat\./.test(e.name));
}

/** Writes every model weight from the file through the table; reports what was loaded, initialised, zero-filled. */
function loadWeights(model: tfl.LayersModel, f: SafetensorsFile, table: TimmTensor[], withKArAt: boolean):
    Pick<VitConversionReport, 'loaded' | 'initialised' | 'zeroFilled'> {
  const byTfjs = new Map<string, {entry: TimmTensor, part: number}>();
  for (const entry of table) entry.tfjs.forEach((n, part) => byTfjs.set(n, {entry, part}));
  // Decoded once each; the parts of a tensor held by several weights (qkv) are kept for reuse.
  const cache = new Map<string, Float32Array[]>();
  const partsOf = (e: TimmTensor): Float32Array[] => {
    let parts = cache.get(e.torch);
    if (parts == null) {
      const missing = !f.has(e.torch) && isOptionalTorchTensor(e.torch);
      parts = e.toTfjs(missing ? new Float32Array(e.shape.reduce((a, b) => a * b, 1)) : f.float32(e.torch));
      if (e.tfjs.length > 1) cache.set(e.torch, parts);
    }
    return parts;
  };
  const loaded: string[] = [], initialised: string[] = [], zeroFilled: string[] = [];
  for (const [name, w] of weightsByName(model)) {
    const hit = byTfjs.get(name);
    if (hit == null) {
      if (!withKArAt && /^block\d+_attn\/karat\//.test(name)) {
        initialised.push(name);
        continue;
      }
      fail(`internal: models.vit weight '${name}' has no timm counterpart`);
    }
    const {entry, part} = hit!;
    (f.has(entry.torch) ? loaded : zeroFilled).push(name);
    tf.tidy(() => {
      w.write(tf.tensor(partsOf(entry)[part], w.shape as number[], 'float32'));
    });
  }
  return {loaded, initialised, zeroFilled};
}

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
  const karatParams = karatParamShapes(config);
  const withKArAt = fileHasKArAt(f, source);
  checkFileTensors(f, config, timmTable(config, withKArAt ? karatParams : []));
  if (!withKArAt) checkInitialisedKArAtSize(config, karatParams);
  const model = vit({
    dim: config.dim, depth: config.depth, heads: config.heads, mlpRatio: config.mlpRatio,
    imageSize: config.imageSize, patchSize: config.patchSize, channels: config.channels,
    numClasses: config.numClasses, pool: config.pool, fcNorm: config.fcNorm ?? false, attention: config.attention,
    classifierActivation: cls, name: options.name ?? 'vit',
  });
  try {
    const table = timmTable(config, withKArAt ? karatParams : [], operatorOwner(model, config));
    return {model, config, configSource: source, ...loadWeights(model, f, table, withKArAt)};
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** Builds the models.vit equivalent of a timm ViT (or vitToSafetensors) safetensors file. */
export function vitFromSafetensors(bytes: Uint8Array, options: VitFromSafetensorsOptions = {}): tfl.LayersModel {
  return vitFromSafetensorsWithReport(bytes, options).model;
}

// ------------------------------------------------------------------ export

function layerOf(model: tfl.LayersModel, name: string, what: string): tfl.layers.Layer {
  try {
    return model.getLayer(name);
  } catch {
    return fail(`vitToSafetensors: the model has no layer '${name}' (${what}); only models.vit models can be exported`);
  }
}

/** The model's attention layers, checked to be timm's: models.vit names, one width, heads and attention. */
function timmAttentionLayers(model: tfl.LayersModel, spec: ViTSpec, dim: number): KArAtMultiHeadAttention[] {
  const attn = spec.layers.attention.map((n) => model.getLayer(n));
  attn.forEach((l, i) => {
    // (class names rather than instanceof: the model may come from another copy of this package)
    if (l.getClassName() !== 'KArAtMultiHeadAttention') fail(`vitToSafetensors: layer '${l.name}' is a ${l.getClassName()}, expected KArAtMultiHeadAttention`);
    const a = l as KArAtMultiHeadAttention;
    if (a.name !== `block${i}_attn`) fail(`vitToSafetensors: attention layer ${i} is named '${a.name}', expected 'block${i}_attn' (models.vit naming)`);
    if (a.numHeads * a.keyDim !== dim || a.valueDim !== a.keyDim || !a.useBias || a.outputShapeArg != null) {
      fail(`vitToSafetensors: layer '${a.name}' (heads ${a.numHeads}, keyDim ${a.keyDim}, valueDim ${a.valueDim}, useBias ${a.useBias}) ` +
           `is not timm's attention of width ${dim}`);
    }
  });
  const first = attn[0] as KArAtMultiHeadAttention;
  const att0 = JSON.stringify(serializeAttention(first.attention));
  for (const l of attn as KArAtMultiHeadAttention[]) {
    if (l.numHeads !== first.numHeads) fail(`vitToSafetensors: layer '${l.name}' has ${l.numHeads} heads, block0_attn has ${first.numHeads}`);
    if (JSON.stringify(serializeAttention(l.attention)) !== att0) fail(`vitToSafetensors: layer '${l.name}' has another attention than block0_attn`);
  }
  return attn as KArAtMultiHeadAttention[];
}

/** Reads the architecture of a models.vit model (throws for anything else). */
export function vitConfigOfModel(model: tfl.LayersModel): TorchViTConfig {
  if (model == null || typeof (model as {getLayer?: unknown}).getLayer !== 'function') fail('vitToSafetensors: expected a tf.LayersModel');
  const inShape = model.inputs.length === 1 ? model.inputs[0].shape : null;
  if (inShape == null || inShape.length !== 4 || inShape.slice(1).some(d => d == null)) {
    fail(`vitToSafetensors: the model must have one image input [batch, H, W, C], got ${JSON.stringify(model.inputs.map(i => i.shape))}`);
  }
  const pe = layerOf(model, 'patch_embed', 'patch embedding');
  if (pe.getClassName() !== 'PatchEmbedding') fail(`vitToSafetensors: layer 'patch_embed' is a ${pe.getClassName()}, expected PatchEmbedding`);
  const {dim, patchSize} = pe as PatchEmbedding;
  const spec = vitSpecOf(model, 'vitToSafetensors');
  const attn = timmAttentionLayers(model, spec, dim);
  for (const n of [spec.fcNorm ? 'fc_norm' : 'norm', ...attn.flatMap((_, i) => [`block${i}_norm1`, `block${i}_norm2`])]) {
    const eps = (layerOf(model, n, 'LayerNorm').getConfig() as {epsilon?: number}).epsilon;
    if (eps !== 1e-6) fail(`vitToSafetensors: LayerNorm '${n}' has epsilon ${eps}; timm's ViT uses 1e-6`);
  }
  const fc1 = layerOf(model, 'block0_mlp_fc1', 'MLP').getConfig() as {units: number, activation: string};
  if (fc1.activation !== 'gelu') fail(`vitToSafetensors: 'block0_mlp_fc1' has activation '${fc1.activation}', timm's ViT uses (exact) GELU`);
  const head = layerOf(model, 'head', 'classifier').getConfig() as {units: number};
  const r = resolveAttention(attn[0].attention, 'attention');
  let attention: AttentionActivation = 'softmax';
  if (r.kind === 'karat') {
    const {basis, seed, ...op} = r.operator;
    void seed;
    attention = {type: basis, ...op, mode: r.mode, shareName: r.shareName} as KArAtAttentionConfig;
  }
  return {dim, depth: spec.depth, heads: spec.heads, mlpRatio: fc1.units / dim, patchSize, imageSize: spec.imageSize, channels: spec.channels,
          numClasses: head.units, pool: spec.pool, ...(spec.fcNorm ? {fcNorm: true} : {}), attention};
}

/**
 * The weights of a models.vit model (softmax or KArAt) as timm-named float32 tensors in
 * PyTorch layouts, plus our metadata.
 */
export function vitToTorchTensors(model: tfl.LayersModel): {tensors: SafetensorsTensor[], metadata: Record<string, string>, config: TorchViTConfig} {
  const config = vitConfigOfModel(model);
  const ws = weightsByName(model);
  const used = new Set<string>();
  const read = (n: string): Float32Array => {
    const w = ws.get(n);
    if (w == null) return fail(`vitToSafetensors: the model has no weight '${n}' (not a models.vit model?)`);
    used.add(n);
    return w.read().dataSync() as Float32Array;
  };
  const table = timmTable(config, karatParamsOf(model, config.depth), operatorOwner(model, config));
  const tensors = table.map((e) => ({name: e.torch, shape: e.shape, data: e.toTorch(e.tfjs.map(read))}));
  const left = [...ws.keys()].filter(n => !used.has(n));
  if (left.length) fail(`vitToSafetensors: the model has weights with no timm counterpart: ${left.slice(0, 6).join(', ')}`);
  const metadata = {format: TORCH_VIT_FORMAT, config: JSON.stringify(config)};
  return {tensors, metadata, config};
}

/** Serialises a models.vit model as a timm-named safetensors file (F32) with our metadata. */
export function vitToSafetensors(model: tfl.LayersModel): Uint8Array {
  const {tensors, metadata} = vitToTorchTensors(model);
  return writeSafetensors(tensors, metadata);
}
