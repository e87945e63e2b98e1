/**
 * Reading attention out of a model: every KArAtMultiHeadAttention layer's raw scores
 * S = Q Kᵀ/√d, softmax(S) and the activation the layer actually applies (softmax(S), or
 * KArAt's σ̂(S) through operatorActivation with the layer's own or shared operator), for a
 * batch of images; and the analyses built on them (class-token maps and rollout, singular
 * value spectra, score ranges, weight distributions). Results are plain typed arrays; no
 * tensor is left allocated.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

import {operatorActivation, ResolvedOperatorConfig} from '../bases/index';
import {KArAtMultiHeadAttention} from '../layers/multihead_attention';
import {concatArrays} from '../io/typed_arrays';
import {vitSpecOf, ViTSpec} from '../models/vit_spec';
import {KArAtArgumentError} from '../../core/validate';
import {singularValues} from './linalg';
import {attentionRollout, BlockAttention, classTokenRow, RolloutOptions} from './rollout';

export interface AttentionLayerInfo {
  layer: KArAtMultiHeadAttention;
  /** Position among the model's attention layers (block index for a ViT). */
  index: number;
  name: string;
  heads: number;
  keyDim: number;
  kind: 'softmax' | 'karat';
  /** The operator configuration (KArAt only). */
  config?: ResolvedOperatorConfig;
}

/** The model's attention layers, in the order of model.layers. */
export function findAttentionLayers(model: tfl.LayersModel): AttentionLayerInfo[] {
  if (model == null || !Array.isArray((model as tfl.LayersModel).layers)) {
    throw new KArAtArgumentError(`analysis: argument 'model' must be a tf.LayersModel`);
  }
  const out: AttentionLayerInfo[] = [];
  for (const layer of model.layers) {
    if (!(layer instanceof KArAtMultiHeadAttention)) continue;
    const att = layer.attention;
    out.push({
      layer, index: out.length, name: layer.name, heads: layer.numHeads, keyDim: layer.keyDim,
      kind: att.kind, ...(att.kind === 'karat' ? {config: att.operator} : {}),
    });
  }
  return out;
}

export interface BlockAttentionData {
  name: string;
  index: number;
  kind: 'softmax' | 'karat';
  batch: number;
  heads: number;
  tokens: number;
  /** S = Q Kᵀ/√d, [B, h, N, N] row-major. */
  scores: Float32Array;
  /** softmax(S) over the last axis. */
  softmax: Float32Array;
  /** What the layer applies: softmax(S) or σ̂(S). */
  activated: Float32Array;
}

function weightOf(layer: tfl.layers.Layer, suffix: string): tf.Tensor | null {
  const w = layer.weights.find(v => v.originalName.endsWith(`/${suffix}`) || v.originalName === suffix);
  return w == null ? null : w.read();
}

function checkImages(model: tfl.LayersModel, images: unknown): tf.Tensor4D {
  if (!(images instanceof tf.Tensor) || images.rank !== 4) {
    const got = images instanceof tf.Tensor ? `shape [${images.shape}]` : typeof images;
    throw new KArAtArgumentError(`analysis: argument 'images' must be a tf.Tensor4D [B, H, W, C], got ${got}`);
  }
  const want = model.inputs[0].shape;
  for (let k = 1; k < 4; k++) {
    if (want[k] != null && want[k] !== images.shape[k]) {
      throw new KArAtArgumentError(
          `analysis: argument 'images' must have shape [B, ${want.slice(1).join(', ')}] to fit the model, ` +
          `got [${images.shape}]`);
    }
  }
  return images as tf.Tensor4D;
}

interface AttentionTensors {
  info: AttentionLayerInfo;
  s: tf.Tensor4D;
  sm: tf.Tensor4D;
  act: tf.Tensor4D;
}

/** The tensors behind computeAttention (the caller disposes them). */
function attentionTensors(model: tfl.LayersModel, images: tf.Tensor4D): AttentionTensors[] {
  const layers = findAttentionLayers(model);
  if (layers.length === 0) throw new KArAtArgumentError('analysis: the model has no KArAtMultiHeadAttention layer');
  const x = checkImages(model, images);
  const inputsOf = layers.map(l => {
    const inp = l.layer.input;
    const list = (Array.isArray(inp) ? inp : [inp]) as tfl.SymbolicTensor[];
    // [query, value, key, attentionMask] or a causal layer: the maps below would ignore the mask.
    if (list.length > 3 || l.layer.graphCallOptions?.useCausalMask) {
      throw new KArAtArgumentError(
          `analysis: attention layer '${l.name}' is masked (attentionMask / useCausalMask); the attention ` +
          `analyses support unmasked attention only`);
    }
    return list;
  });
  const sub = tfl.model({inputs: model.inputs, outputs: inputsOf.flat()});
  const kept = tf.tidy(() => {
    const predicted = sub.predict(x);
    const acts = (Array.isArray(predicted) ? predicted : [predicted]) as tf.Tensor3D[];
    let k = 0;
    return layers.map((info, i): tf.Tensor4D[] => {
      const ins = acts.slice(k, k + inputsOf[i].length);
      k += inputsOf[i].length;
      const query = ins[0], key = ins[2] ?? ins[1] ?? ins[0];
      const proj = (t: tf.Tensor3D, which: 'query' | 'key') => {
        const [B, N, F] = t.shape;
        const kern = weightOf(info.layer, `${which}/kernel`);
        if (kern == null) throw new KArAtArgumentError(`analysis: layer '${info.name}' has no ${which}/kernel weight`);
        let y = tf.matMul(tf.reshape(t, [B * N, F]), tf.reshape(kern, [F, info.heads * info.keyDim]));
        const bias = weightOf(info.layer, `${which}/bias`);
        if (bias != null) y = tf.add(y, tf.reshape(bias, [info.heads * info.keyDim]));
        return tf.transpose(tf.reshape(y, [B, N, info.heads, info.keyDim]), [0, 2, 1, 3]) as tf.Tensor4D;
      };
      const q = tf.mul(proj(query, 'query'), 1 / Math.sqrt(info.keyDim)) as tf.Tensor4D;
      const s = tf.matMul(q, proj(key, 'key'), false, true) as tf.Tensor4D;
      const sm = tf.softmax(s, -1) as tf.Tensor4D;
      let act = sm;
      if (info.kind === 'karat') {
        const op = info.layer.operator;
        if (op == null) throw new KArAtArgumentError(`analysis: KArAt layer '${info.name}' has no operator (not built)`);
        act = operatorActivation(s, op.params(), op.cfg);
      }
      return [s, sm, act];
    });
  });
  return layers.map((info, i) => ({info, s: kept[i][0], sm: kept[i][1], act: kept[i][2]}));
}

function toData(t: AttentionTensors, scores: Float32Array, softmax: Float32Array,
                activated: Float32Array): BlockAttentionData {
  const [B, h, N] = t.s.shape;
  return {
    name: t.info.name, index: t.info.index, kind: t.info.kind, batch: B, heads: h, tokens: N,
    scores, softmax, activated,
  };
}

/**
 * Scores, softmax and activated attention of every attention layer for `images` [B, H, W, C]
 * (preprocessed as the model expects). Runs the model once up to the attention inputs.
 * Reads back synchronously; in a browser on WebGPU/WebGL prefer computeAttentionAsync.
 */
export function computeAttention(model: tfl.LayersModel, images: tf.Tensor4D): BlockAttentionData[] {
  const ts = attentionTensors(model, images);
  try {
    return ts.map(t => toData(t, t.s.dataSync() as Float32Array, t.sm.dataSync() as Float32Array,
                              t.act.dataSync() as Float32Array));
  } finally {
    ts.forEach(t => tf.dispose([t.s, t.sm, t.act]));
  }
}

/** computeAttention with asynchronous read-back (no GPU pipeline stall). */
export async function computeAttentionAsync(model: tfl.LayersModel, images: tf.Tensor4D): Promise<BlockAttentionData[]> {
  const ts = attentionTensors(model, images);
  try {
    const out: BlockAttentionData[] = [];
    for (const t of ts) {
      const [a, b, c] = await Promise.all([t.s.data(), t.sm.data(), t.act.data()]);
      out.push(toData(t, a as Float32Array, b as Float32Array, c as Float32Array));
    }
    return out;
  } finally {
    ts.forEach(t => tf.dispose([t.s, t.sm, t.act]));
  }
}

/** One image's [h, N, N] slice of a [B, h, N, N] array. */
export function imageSlice(d: BlockAttentionData, which: 'scores' | 'softmax' | 'activated', b: number): BlockAttention {
  const n = d.heads * d.tokens * d.tokens;
  return {heads: d.heads, tokens: d.tokens, data: d[which].subarray(b * n, (b + 1) * n)};
}

/** Patch grid [rows, cols] of a ViT (from its PatchEmbedding layer and input size, as vitSpecOf reads them). */
export function patchGrid(model: tfl.LayersModel): [number, number] {
  let spec: ViTSpec | null = null;
  try {
    spec = vitSpecOf(model, 'analysis');
  } catch {
    // not a ViT of a fixed input size: the error below says what the maps need
  }
  const pe = spec?.layers.patchEmbed != null ? model.getLayer(spec.layers.patchEmbed) : null;
  if (spec?.grid == null || pe?.getClassName() !== 'PatchEmbedding') {
    throw new KArAtArgumentError('analysis: attention maps need a ViT with a PatchEmbedding layer and a fixed input size');
  }
  return spec.grid;
}

export interface ImageAttentionMaps {
  /** maps[block][head]: class-token attention over the patches (grid rows·cols values). */
  maps: Float64Array[][];
  /** Rollout of the class token's attention over all blocks (grid rows·cols values). */
  rollout: Float64Array;
}

export interface AttentionMapsResult {
  grid: [number, number];
  blocks: Array<{name: string, kind: 'softmax' | 'karat'}>;
  images: ImageAttentionMaps[];
  /** True when any map value is negative (then render with the diverging scale). */
  signed: boolean;
}

/**
 * Class-token attention maps per block and head (row 0 of softmax(S) or σ̂(S), without the
 * class token's own column) and their rollout over blocks, for each image.
 */
export function attentionMaps(model: tfl.LayersModel, images: tf.Tensor4D,
                              options: RolloutOptions = {}): AttentionMapsResult {
  checkClassToken(model);
  return attentionMapsFromData(model, computeAttention(model, images), options);
}

/** attentionMaps with asynchronous read-back (for WebGPU / WebGL pages). */
export async function attentionMapsAsync(model: tfl.LayersModel, images: tf.Tensor4D,
                                         options: RolloutOptions = {}): Promise<AttentionMapsResult> {
  checkClassToken(model);
  return attentionMapsFromData(model, await computeAttentionAsync(model, images), options);
}

function checkClassToken(model: tfl.LayersModel) {
  patchGrid(model);
  if (!model.layers.some(l => l.getClassName() === 'ClassToken')) {
    throw new KArAtArgumentError("analysis: class-token attention maps need a model with a class token (vit pool 'token')");
  }
}

/** Class-token maps and rollout from already computed attention (see computeAttention). */
export function attentionMapsFromData(model: tfl.LayersModel, data: BlockAttentionData[],
                                      options: RolloutOptions = {}): AttentionMapsResult {
  const grid = patchGrid(model);
  const B = data[0].batch;
  let signed = false;
  const result: ImageAttentionMaps[] = [];
  for (let b = 0; b < B; b++) {
    const per = data.map(d => imageSlice(d, 'activated', b));
    const maps = per.map(a => Array.from({length: a.heads}, (_, h) => classTokenRow(a, h)));
    const rollout = attentionRollout(per, options);
    signed = signed || maps.some(m => m.some(row => row.some(v => v < 0))) || rollout.some(v => v < 0);
    result.push({maps, rollout});
  }
  return {grid, blocks: data.map(d => ({name: d.name, kind: d.kind})), images: result, signed};
}

export interface HeadSpectra {
  /** Singular values, descending, averaged over the images, of S, softmax(S) and σ̂(S). */
  scores: Float64Array;
  softmax: Float64Array;
  activated: Float64Array;
}

export interface SpectraResult {
  blocks: Array<{name: string, kind: 'softmax' | 'karat', heads: HeadSpectra[]}>;
}

/** Singular-value spectra of S, softmax(S) and the applied activation, per block and head. */
export function attentionSpectra(model: tfl.LayersModel, images: tf.Tensor4D): SpectraResult {
  const data = computeAttention(model, images);
  return {
    blocks: data.map(d => {
      const N = d.tokens;
      const heads: HeadSpectra[] = [];
      for (let h = 0; h < d.heads; h++) {
        const acc = {scores: new Float64Array(N), softmax: new Float64Array(N), activated: new Float64Array(N)};
        for (let b = 0; b < d.batch; b++) {
          const off = (b * d.heads + h) * N * N;
          for (const which of ['scores', 'softmax', 'activated'] as const) {
            if (which === 'activated' && d.kind === 'softmax') continue;
            const sv = singularValues({rows: N, cols: N, data: Float64Array.from(d[which].subarray(off, off + N * N))});
            for (let k = 0; k < N; k++) acc[which][k] += sv[k] / d.batch;
          }
        }
        if (d.kind === 'softmax') acc.activated.set(acc.softmax);
        heads.push(acc);
      }
      return {name: d.name, kind: d.kind, heads};
    }),
  };
}

export interface ScoreRange {
  min: number;
  max: number;
  /** 1st and 99th percentiles. */
  p01: number;
  p99: number;
}

/** Observed range of the scores S per block and head over `images`. */
export function scoreRanges(model: tfl.LayersModel, images: tf.Tensor4D): ScoreRange[][] {
  return computeAttention(model, images).map(d => {
    const N = d.tokens;
    return Array.from({length: d.heads}, (_, h) => {
      const vals: number[] = [];
      for (let b = 0; b < d.batch; b++) {
        const off = (b * d.heads + h) * N * N;
        for (let k = 0; k < N * N; k++) vals.push(d.scores[off + k]);
      }
      vals.sort((a, c) => a - c);
      const q = (p: number) => vals[Math.min(vals.length - 1, Math.max(0, Math.round(p * (vals.length - 1))))];
      return {min: vals[0], max: vals[vals.length - 1], p01: q(0.01), p99: q(0.99)};
    });
  });
}

export interface WeightDistributions {
  /** Fourier cosine coefficients A of every operator the model holds (empty without one). */
  fourierA: Float32Array;
  /** Fourier sine coefficients B. */
  fourierB: Float32Array;
  /** Back-projections W of the modular operators. */
  proj: Float32Array;
  /** Q and K projection kernels of all attention layers. */
  query: Float32Array;
  key: Float32Array;
}

/** Values of the learned Fourier coefficients (A, B), W, and the Q/K kernels, for histograms. */
export function weightDistributions(model: tfl.LayersModel): WeightDistributions {
  const layers = findAttentionLayers(model);
  const A: Float32Array[] = [], Bs: Float32Array[] = [], P: Float32Array[] = [];
  const Q: Float32Array[] = [], K: Float32Array[] = [];
  for (const info of layers) {
    Q.push(weightOf(info.layer, 'query/kernel')!.dataSync() as Float32Array);
    K.push(weightOf(info.layer, 'key/kernel')!.dataSync() as Float32Array);
    const op = info.layer.operator;
    if (op == null || op.owner !== info.layer) continue;  // shared operators counted once
    const params = op.params();
    if (op.cfg.basis === 'fourier' && params.coeffs != null) {
      const c = params.coeffs.dataSync() as Float32Array;
      const [h, , r, N, G] = params.coeffs.shape;
      const half = r * N * G;
      for (let i = 0; i < h; i++) {
        A.push(c.slice((i * 2) * half, (i * 2 + 1) * half));
        Bs.push(c.slice((i * 2 + 1) * half, (i * 2 + 2) * half));
      }
    }
    if (params.proj != null) P.push(params.proj.dataSync() as Float32Array);
  }
  const concat = (parts: Float32Array[]) => concatArrays(Float32Array, parts);
  return {fourierA: concat(A), fourierB: concat(Bs), proj: concat(P), query: concat(Q), key: concat(K)};
}
