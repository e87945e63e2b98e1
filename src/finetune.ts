/**
 * Adapting a pretrained tfjs ViT for fine-tuning with KArAt: swap its attention (swapAttention,
 * every weight with a counterpart kept bit for bit), give it a new classification head when
 * the class count differs, and move it to another image size by resampling its learned
 * position embedding on the patch grid, as timm's `resample_abs_pos_embed` does when
 * fine-tuning at another resolution (bicubic or bilinear, align_corners=False, no
 * antialiasing; prefix tokens such as the class token kept unchanged).
 *
 * Models understood: models.vit (PatchEmbedding, ClassToken, LearnedPositionEmbedding,
 * KArAtMultiHeadAttention; saved model.json or live), and Keras-style ViTs of stock layers
 * converted to tfjs (a stride-p Conv2D patch embedding followed by a Reshape to tokens,
 * MultiHeadAttention). The output layer must be a Dense classification head.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

import {AttentionActivation, resolveAttention} from './layers/attention_config';
import {KArAtArgumentError} from '../core/validate';
import {checkKerasViTTopology} from './keras';
import {modelConfigOf, readModelSource, swapAttentionWithReport, SwapSource} from './swap';

export type PosEmbedInterpolation = 'bicubic' | 'bilinear';

type Json = any;  // tslint:disable-line:no-any

// ------------------------------------------------------------------ resampling

/** PyTorch's cubic convolution kernel coefficient (A = -0.75, as F.interpolate 'bicubic'). */
const CUBIC_A = -0.75;
function cubicNear(x: number): number {  // |x| <= 1
  return ((CUBIC_A + 2) * x - (CUBIC_A + 3)) * x * x + 1;
}
function cubicFar(x: number): number {  // 1 < |x| < 2
  return ((CUBIC_A * x - 5 * CUBIC_A) * x + 8 * CUBIC_A) * x - 4 * CUBIC_A;
}

/**
 * Interpolation taps of a 1-D resize from `inSize` to `outSize` samples with half-pixel
 * centres (align_corners=False): output o reads input position (o + 0.5)·in/out − 0.5.
 * Bilinear clamps that position at 0; bicubic reads 4 neighbours, indices clamped to the edge.
 */
export function resizeTaps(inSize: number, outSize: number, mode: PosEmbedInterpolation): Array<{index: number[], weight: number[]}> {
  const scale = inSize / outSize;
  const clamp = (i: number) => Math.min(Math.max(i, 0), inSize - 1);
  const taps: Array<{index: number[], weight: number[]}> = [];
  for (let o = 0; o < outSize; o++) {
    let src = (o + 0.5) * scale - 0.5;
    if (mode === 'bilinear') {
      src = Math.max(src, 0);
      const i0 = Math.floor(src), t = src - i0;
      taps.push({index: [clamp(i0), clamp(i0 + 1)], weight: [1 - t, t]});
    } else {
      const f = Math.floor(src), t = src - f;
      taps.push({
        index: [clamp(f - 1), clamp(f), clamp(f + 1), clamp(f + 2)],
        weight: [cubicFar(t + 1), cubicNear(t), cubicNear(1 - t), cubicFar(2 - t)],
      });
    }
  }
  return taps;
}

/**
 * Resizes a grid of vectors [inH, inW, C] (row-major) to [outH, outW, C], separably, in float64.
 */
export function resizeGrid(data: ArrayLike<number>, inHW: [number, number], outHW: [number, number], channels: number,
                           mode: PosEmbedInterpolation): Float64Array {
  const [ih, iw] = inHW, [oh, ow] = outHW;
  if (data.length !== ih * iw * channels) {
    throw new KArAtArgumentError(`resizeGrid: data has ${data.length} values, expected ${ih}x${iw}x${channels} = ${ih * iw * channels}`);
  }
  const th = resizeTaps(ih, oh, mode), tw = resizeTaps(iw, ow, mode);
  // along the width: [ih, ow, C]
  const mid = new Float64Array(ih * ow * channels);
  for (let y = 0; y < ih; y++) {
    for (let x = 0; x < ow; x++) {
      const {index, weight} = tw[x];
      const o = (y * ow + x) * channels;
      for (let k = 0; k < index.length; k++) {
        const i = (y * iw + index[k]) * channels, w = weight[k];
        for (let c = 0; c < channels; c++) mid[o + c] += w * data[i + c];
      }
    }
  }
  // along the height: [oh, ow, C]
  const out = new Float64Array(oh * ow * channels);
  for (let y = 0; y < oh; y++) {
    const {index, weight} = th[y];
    for (let k = 0; k < index.length; k++) {
      const w = weight[k], row = index[k] * ow * channels, o = y * ow * channels;
      for (let j = 0; j < ow * channels; j++) out[o + j] += w * mid[row + j];
    }
  }
  return out;
}

/**
 * Resamples a learned position embedding of shape [1, prefix + gh·gw, dim] to a new patch
 * grid, shape [1, prefix + gh'·gw', dim]. The `prefixTokens` leading rows (class token) are
 * kept; the grid rows are resized as an image (timm's resample_abs_pos_embed with antialias off).
 */
export function resamplePositionEmbedding(posEmbed: tf.Tensor, oldGrid: [number, number], newGrid: [number, number],
                                          options: {prefixTokens?: number, interpolation?: PosEmbedInterpolation} = {}): tf.Tensor3D {
  const prefix = options.prefixTokens ?? 1;
  const mode = options.interpolation ?? 'bicubic';
  if (mode !== 'bicubic' && mode !== 'bilinear') {
    throw new KArAtArgumentError(`resamplePositionEmbedding: argument 'interpolation' must be 'bicubic' or 'bilinear', got ${JSON.stringify(mode)}`);
  }
  const s = posEmbed.shape;
  if (s.length !== 3 || s[0] !== 1 || s[1] !== prefix + oldGrid[0] * oldGrid[1]) {
    throw new KArAtArgumentError(
        `resamplePositionEmbedding: argument 'posEmbed' must have shape [1, ${prefix} + ${oldGrid[0]}x${oldGrid[1]}, dim], got [${s}]`);
  }
  const dim = s[2];
  const all = posEmbed.dataSync() as Float32Array;
  const grid = resizeGrid(all.subarray(prefix * dim), oldGrid, newGrid, dim, mode);
  const out = new Float32Array((prefix + newGrid[0] * newGrid[1]) * dim);
  out.set(all.subarray(0, prefix * dim));
  out.set(grid, prefix * dim);
  return tf.tensor3d(out, [1, prefix + newGrid[0] * newGrid[1], dim]);
}

// ------------------------------------------------------------------ model adaptation

export interface FinetuneAdaptOptions {
  /** The attention to swap in: 'softmax' or a KArAt config {type: 'fourier', grid, rank, mode}. */
  attention: AttentionActivation;
  /** New input size (side or [height, width]); default: the model's. */
  imageSize?: number | [number, number];
  /** Image channels of the data; checked against the model's (not converted). */
  channels?: number;
  /** Number of classes; a different count gets a new, freshly initialised head. */
  numClasses?: number;
  /** Position-embedding resampling when the patch grid changes (default 'bicubic'). */
  interpolation?: PosEmbedInterpolation;
  /**
   * Accept a swap that discards trained weights (e.g. KArAt operators of another rank, token
   * count or basis, harmonics of a smaller grid, KArAt -> softmax). Default false: an error.
   */
  allowInitialised?: boolean;
  /** Make a softmax output layer linear, so that the model outputs logits (default true). */
  logits?: boolean;
  /** Random source of the new weights' initialisers while the model is built (default Math.random). */
  random?: () => number;
}

export interface FinetuneAdaptation {
  /** The adapted model (uncompiled). */
  model: tfl.LayersModel;
  attentionLayers: string[];
  /** Weights copied bit for bit. */
  kept: string[];
  /** Weights newly initialised (KArAt operators) or copied in part (Fourier harmonics of another grid). */
  initialised: string[];
  /** Weights replaced: a new head (class count) or a resampled position embedding. */
  replaced: Array<{name: string, how: string}>;
  /** Weights of the source model not carried over (only with allowInitialised). */
  discarded: string[];
  /** Weights created for fine-tuning: initialised operators and a new head. */
  newParams: string[];
  /** Other changes, one line each (e.g. the head made linear). */
  notes: string[];
  /** The attention before and after, in words. */
  fromAttention: string;
  toAttention: string;
  from: {imageSize: [number, number], channels: number, numClasses: number, tokens: number | null};
  to: {imageSize: [number, number], channels: number, numClasses: number, tokens: number | null};
}

function layersOf(modelConfig: Json): Json[] {
  const layers = modelConfig?.config?.layers;
  return Array.isArray(layers) ? layers : [];
}

const ATTENTION = ['MultiHeadAttention', 'KArAtMultiHeadAttention'];

/** What finetune needs to know about a ViT topology. */
interface ViTLayout {
  input: Json;
  shapeKey: 'batch_input_shape' | 'batch_shape';
  imageSize: [number, number];
  channels: number;
  patch: number | null;
  reshape: Json | null;
  posEmbed: string | null;
  classTokens: number;
  head: Json;
  attention: string[];
  attentionDescription: string;
}

function layout(topology: Json): ViTLayout {
  const mc = modelConfigOf(topology);
  const layers = layersOf(mc);
  const attention = layers.filter((l) => ATTENTION.includes(l?.class_name)).map((l) => String(l.config.name));
  if (attention.length === 0) {
    throw new KArAtArgumentError(`finetune: the model has no attention layer (MultiHeadAttention or KArAtMultiHeadAttention); layers: ` +
        `${layers.map((l) => `${l?.config?.name}:${l?.class_name}`).join(', ')}`);
  }
  const inputs = layers.filter((l) => l?.class_name === 'InputLayer');
  if (inputs.length !== 1) throw new KArAtArgumentError(`finetune: the model must have one image input, found ${inputs.length} input layers`);
  const input = inputs[0];
  const shapeKey = input.config?.batch_input_shape != null ? 'batch_input_shape' : 'batch_shape';
  const shape = input.config?.[shapeKey] as Array<number | null> | undefined;
  if (!Array.isArray(shape) || shape.length !== 4 || shape.slice(1).some((d) => !(typeof d === 'number' && d > 0))) {
    throw new KArAtArgumentError(`finetune: the model's input must be images [batch, height, width, channels] of known size, got ${JSON.stringify(shape)}`);
  }
  let patch: number | null = null;
  let patchLayer: Json = null;
  for (const l of layers) {
    if (l?.class_name === 'PatchEmbedding') {
      patch = Number(l.config.patch_size);
      patchLayer = l;
      break;
    }
    if (l?.class_name === 'Conv2D') {
      const k = l.config.kernel_size, s = l.config.strides;
      const kk = Array.isArray(k) ? k : [k, k], ss = Array.isArray(s) ? s : [s, s];
      if (kk[0] === kk[1] && ss[0] === kk[0] && ss[1] === kk[1]) {
        patch = Number(kk[0]);
        patchLayer = l;
        break;
      }
    }
  }
  const reshape = patchLayer?.class_name === 'Conv2D' ?
      layers.find((l) => l?.class_name === 'Reshape' && JSON.stringify(l.inbound_nodes ?? []).includes(`"${patchLayer.config.name}"`)) ?? null :
      null;
  const pos = layers.filter((l) => l?.class_name === 'LearnedPositionEmbedding');
  const outName = mc.config?.output_layers?.[0]?.[0];
  const head = layers.find((l) => l?.config?.name === outName);
  if (head == null || (head.class_name !== 'Dense' && head.class_name !== 'KArAtDense')) {
    throw new KArAtArgumentError(`finetune: the model's output layer '${outName}' must be a Dense classification head, got ${head?.class_name ?? 'none'}`);
  }
  return {
    input, shapeKey, imageSize: [shape[1] as number, shape[2] as number], channels: shape[3] as number, patch, reshape,
    posEmbed: pos.length === 1 ? String(pos[0].config.name) : null, classTokens: layers.filter((l) => l?.class_name === 'ClassToken').length,
    head, attention, attentionDescription: describeSaved(layers.find((l) => ATTENTION.includes(l?.class_name))),
  };
}

function toHW(x: number | [number, number]): [number, number] {
  return typeof x === 'number' ? [x, x] : [x[0], x[1]];
}

/**
 * Adapts a pretrained ViT for fine-tuning: swaps its attention (every weight with a
 * counterpart copied bit for bit), replaces the head when the class count differs, resamples
 * the position embedding when the patch grid changes, and reports what was kept, initialised,
 * replaced and discarded. Throws KArAtArgumentError on a model it cannot adapt: no attention
 * layer, an image size not divisible by the patch, a KArAt rank larger than the token count,
 * other channels, or a swap that would discard trained weights (unless allowInitialised).
 */
export async function adaptForFinetune(source: SwapSource, options: FinetuneAdaptOptions): Promise<FinetuneAdaptation> {
  if (options == null || typeof options !== 'object') throw new KArAtArgumentError(`finetune: expected an options object {attention, ...}`);
  const target = resolveAttention(options.attention, 'attention');
  const interpolation = options.interpolation ?? 'bicubic';
  if (interpolation !== 'bicubic' && interpolation !== 'bilinear') {
    throw new KArAtArgumentError(`finetune: argument 'interpolation' must be 'bicubic' or 'bilinear', got ${JSON.stringify(interpolation)}`);
  }
  const {topology, weights, owned} = await readModelSource(source, 'finetune');
  const created: tf.Tensor[] = [];
  try {
    // A converted Keras file: what cannot be mapped is named before anything is built.
    if (topology?.model_config != null) checkKerasViTTopology(topology, 'finetune');
    const newTopology = JSON.parse(JSON.stringify(topology));
    const L = layout(newTopology);
    const [ih, iw] = L.imageSize;
    const [nh, nw] = options.imageSize != null ? toHW(options.imageSize) : [ih, iw];
    if (!(Number.isInteger(nh) && nh > 0 && Number.isInteger(nw) && nw > 0)) {
      throw new KArAtArgumentError(`finetune: argument 'imageSize' must be positive integers, got ${JSON.stringify(options.imageSize)}`);
    }
    if (options.channels != null && options.channels !== L.channels) {
      throw new KArAtArgumentError(`finetune: the model takes ${L.channels}-channel images, the data has ${options.channels} channels`);
    }
    const oldClasses = Number(L.head.config.units);
    const numClasses = options.numClasses ?? oldClasses;
    if (!(Number.isInteger(numClasses) && numClasses > 0)) {
      throw new KArAtArgumentError(`finetune: argument 'numClasses' must be a positive integer, got ${JSON.stringify(options.numClasses)}`);
    }
    const resize = nh !== ih || nw !== iw;
    const p = L.patch;
    if (resize && p == null) {
      throw new KArAtArgumentError(`finetune: cannot move the model to ${nh}x${nw}: no patch embedding found (PatchEmbedding, or a Conv2D with stride = kernel)`);
    }
    if (p != null && (nh % p !== 0 || nw % p !== 0)) {
      throw new KArAtArgumentError(`finetune: image size ${nh}x${nw} is not divisible by the model's patch size ${p}`);
    }
    const oldGrid: [number, number] | null = p != null ? [ih / p, iw / p] : null;
    const newGrid: [number, number] | null = p != null ? [nh / p, nw / p] : null;
    const posName = L.posEmbed != null ? `${L.posEmbed}/embedding` : null;
    const posOld = posName != null ? weights.get(posName) ?? null : null;
    const prefix = posOld != null && oldGrid != null ? posOld.shape[1]! - oldGrid[0] * oldGrid[1] : L.classTokens;
    const tokens = (g: [number, number] | null) => g != null ? prefix + g[0] * g[1] : null;
    const newTokens = tokens(newGrid);
    if (target.kind === 'karat' && target.operator.rank !== 'full' && newTokens != null && target.operator.rank > newTokens) {
      throw new KArAtArgumentError(
          `finetune: KArAt rank ${target.operator.rank} exceeds the number of tokens N = ${newTokens} ` +
          `(${nh}x${nw} images, patch ${p}${prefix ? `, ${prefix} class token` : ''}); the rank must be <= N`);
    }

    const replaced: Array<{name: string, how: string}> = [];
    const notes: string[] = [];
    const skip = new Set<string>();
    const headName = String(L.head.config.name);
    if (numClasses !== oldClasses) {
      L.head.config.units = numClasses;
      for (const w of ['kernel', 'bias']) {
        if (weights.has(`${headName}/${w}`)) {
          skip.add(`${headName}/${w}`);
          replaced.push({name: `${headName}/${w}`, how: `new head: ${oldClasses} -> ${numClasses} classes, initialised`});
        }
      }
    }
    if (options.logits !== false && L.head.config.activation === 'softmax') {
      L.head.config.activation = 'linear';
      notes.push(`head '${headName}': softmax activation removed (the model outputs logits; predictions are unchanged)`);
    }
    if (resize) {
      const shape = [...L.input.config[L.shapeKey]];
      shape[1] = nh;
      shape[2] = nw;
      L.input.config[L.shapeKey] = shape;
      if (L.reshape != null) {
        const t = L.reshape.config.target_shape;
        if (Array.isArray(t) && t.length === 2 && t[0] === oldGrid![0] * oldGrid![1]) {
          L.reshape.config.target_shape = [newGrid![0] * newGrid![1], t[1]];
        }
      }
      if (posName != null) {
        if (posOld == null) throw new KArAtArgumentError(`finetune: the model has no weight '${posName}'`);
        skip.add(posName);
        replaced.push({name: posName, how: `resampled ${interpolation} ${oldGrid!.join('x')} -> ${newGrid!.join('x')} patch grid` +
            `${prefix ? ` (${prefix} class token kept)` : ''}`});
      }
    }

    const kept = new Map<string, tf.Tensor>();
    for (const [k, v] of weights) if (!skip.has(k)) kept.set(k, v);
    const encoded = await tf.io.encodeWeights(Object.fromEntries(kept));
    const artifacts: tf.io.ModelArtifacts = {modelTopology: newTopology, weightSpecs: encoded.specs, weightData: encoded.data};
    const orig = Math.random;
    if (options.random) Math.random = options.random;
    let rep;
    try {
      // The head and position embedding are replaced on purpose; every other weight that the
      // swap cannot carry over is checked below, against options.allowInitialised.
      rep = await swapAttentionWithReport(artifacts, options.attention, {allowInitialised: true});
    } catch (e) {
      if (e instanceof Error && e.name !== 'KArAtArgumentError' && resize) {
        throw new KArAtArgumentError(`finetune: cannot rebuild the model at ${nh}x${nw}: ${e.message}`);
      }
      throw e;
    } finally {
      Math.random = orig;
    }
    const model = rep.model;
    try {
      if (resize && posName != null) {
        const r = resamplePositionEmbedding(posOld!, oldGrid!, newGrid!, {prefixTokens: prefix, interpolation});
        created.push(r);
        const w = model.weights.find((v) => v.originalName === posName);
        if (w == null || w.shape.join() !== r.shape.join()) {
          throw new KArAtArgumentError(`finetune: the rebuilt model's '${posName}' has shape [${w?.shape}], expected [${r.shape}]`);
        }
        w.write(r);
      }
      // What the source had and the new model did not take over (the head and position
      // embedding replaced on purpose aside).
      const rename = (n: string) => n.replace(/\/attention_output\//, '/attentionOutput/');
      const carried = new Set([...rep.copied, ...rep.partiallyCopied]);
      const discarded = [...weights.keys()].filter((n) => !skip.has(n) && !carried.has(rename(n)));
      for (const n of rep.partiallyCopied) {
        const nw2 = model.weights.find((v) => v.originalName === n)!;
        const src = [...weights.entries()].find(([k]) => rename(k) === n)?.[1];
        if (src != null && src.shape[src.rank - 1] > nw2.shape[nw2.shape.length - 1]!) discarded.push(`${n} (harmonics above G = ${nw2.shape[nw2.shape.length - 1]})`);
      }
      if (discarded.length && !options.allowInitialised) {
        throw new KArAtArgumentError(
            `finetune: swapping to ${describeAttention(options.attention)} would discard trained weights (${discarded.slice(0, 4).join(', ')}` +
            `${discarded.length > 4 ? `, ... ${discarded.length} in all` : ''}); pass allowInitialised (CLI: --allow-initialised) to accept`);
      }
      const replacedNames = new Set(replaced.map((r) => r.name));
      // New weights with no counterpart in the source, other than the KArAt operators a swap creates
      // and the head / position embedding replaced on purpose (e.g. Q/K/V of a source whose attention
      // weights tfjs does not track).
      const unexpected = rep.initialised.filter((n) => !replacedNames.has(n) && !/(^|\/)karat\//.test(n));
      if (unexpected.length && !options.allowInitialised) {
        throw new KArAtArgumentError(
            `finetune: ${unexpected.length} weight(s) of the new model have no counterpart in the source model and would start ` +
            `from their initial values (${unexpected.slice(0, 4).join(', ')}${unexpected.length > 4 ? ', ...' : ''}); ` +
            `pass allowInitialised (CLI: --allow-initialised) to accept`);
      }
      const initialised = [...rep.initialised.filter((n) => !replacedNames.has(n)), ...rep.partiallyCopied];
      const newParams = [...rep.initialised.filter((n) => !replacedNames.has(n)), ...replaced.filter((r) => r.name.startsWith(`${headName}/`)).map((r) => r.name)];
      return {
        model, attentionLayers: rep.attentionLayers, kept: rep.copied, initialised, replaced, discarded, newParams, notes,
        fromAttention: L.attentionDescription, toAttention: describeAttention(options.attention),
        from: {imageSize: [ih, iw], channels: L.channels, numClasses: oldClasses, tokens: tokens(oldGrid)},
        to: {imageSize: [nh, nw], channels: L.channels, numClasses, tokens: newTokens},
      };
    } catch (e) {
      model.dispose();
      throw e;
    }
  } finally {
    tf.dispose(created);
    if (owned) tf.dispose([...weights.values()]);
  }
}

/** The attention of a saved attention layer config, in words. */
function describeSaved(l: Json): string {
  const a = l?.config?.attention_activation;
  if (l?.class_name === 'MultiHeadAttention' || a == null || a === 'softmax') return 'softmax attention';
  if (typeof a !== 'object') return String(a);
  return `${a.basis} KArAt (grid ${a.grid}, rank ${a.rank}, ${a.mode})`;
}

function describeAttention(a: AttentionActivation): string {
  const r = resolveAttention(a, 'attention');
  if (r.kind !== 'karat') return 'softmax attention';
  return `${r.operator.basis} KArAt (grid ${r.operator.grid}, rank ${r.operator.rank}, ${r.mode})`;
}

/** Architecture facts of a ViT that adaptForFinetune can adapt (read from its topology). */
export interface ViTDescription {
  imageSize: [number, number];
  channels: number;
  numClasses: number;
  /** Patch side (null when no patch embedding is recognised). */
  patchSize: number | null;
  /** Embedding width (heads x key dim of the attention layers). */
  dim: number;
  /** Number of attention layers. */
  depth: number;
  heads: number;
  /** Hidden width of the first MLP Dense layer / dim (null when none is found). */
  mlpRatio: number | null;
  /** Current attention of the first attention layer: 'softmax' or its KArAt config (snake_case, as saved). */
  attention: 'softmax' | Record<string, unknown>;
  attentionLayers: string[];
}

/** Reads the architecture of a ViT (throws KArAtArgumentError when it has no attention layer etc.). */
export async function describeViT(source: SwapSource): Promise<ViTDescription> {
  const {topology, weights, owned} = await readModelSource(source, 'finetune');
  try {
    const L = layout(topology);
    const layers = layersOf(modelConfigOf(topology));
    const att = layers.filter((l) => ATTENTION.includes(l?.class_name));
    const c = att[0].config;
    const heads = Number(c.num_heads), dim = heads * Number(c.key_dim);
    const act = c.attention_activation;
    const mlp = layers.find((l) => (l?.class_name === 'Dense' || l?.class_name === 'KArAtDense') && l.config.name !== L.head.config.name);
    return {
      imageSize: L.imageSize, channels: L.channels, numClasses: Number(L.head.config.units), patchSize: L.patch, dim, depth: att.length,
      heads, mlpRatio: mlp != null ? Number(mlp.config.units) / dim : null,
      attention: act == null || act === 'softmax' ? 'softmax' : act as Record<string, unknown>, attentionLayers: L.attention,
    };
  } finally {
    if (owned) tf.dispose([...weights.values()]);
  }
}
