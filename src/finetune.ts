/**
 * Adapting a pretrained tfjs ViT for fine-tuning with KArAt: swap its attention (swapAttention,
 * every weight with a counterpart kept bit for bit), give it a new classification head when
 * the class count differs, and move it to another image size by resampling its learned
 * position embedding on the patch grid (resamplePositionEmbedding, models/pos_embedding.ts).
 *
 * Models understood: those vitSpecOf describes (models/vit_spec.ts): models.vit (saved
 * model.json or live), and Keras-style ViTs of stock layers converted to tfjs (a stride-p
 * Conv2D patch embedding followed by a Reshape to tokens, MultiHeadAttention). The output layer
 * must be a Dense classification head.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

import {AttentionActivation, resolveAttention, ResolvedAttention} from './layers/attention_config';
import {KArAtArgumentError} from '../core/validate';
import {Rng, withMathRandom} from './data/rng';
import {checkKerasViTTopology} from './keras';
import {PosEmbedInterpolation, resamplePositionEmbedding} from './models/pos_embedding';
import {topologyLayers, vitSpecOf, ViTSpec} from './models/vit_spec';
import {readModelSource, swapAttentionWithReport, SwapReport, SwapSource} from './swap';


type Json = any;  // tslint:disable-line:no-any

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
  /**
   * Seed of the new weights' initialisers: they draw from a seeded Rng (src/data/rng.ts), so the
   * same seed gives the same new weights. Give `seed` or `random`, not both.
   */
  seed?: number;
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

/** What finetune needs to know about a ViT topology: its spec and the layer configs it rewrites. */
interface ViTLayout {
  spec: ViTSpec;
  input: Json;
  shapeKey: 'batch_input_shape' | 'batch_shape';
  reshape: Json | null;
  head: Json;
}

function layout(topology: Json): ViTLayout {
  const spec = vitSpecOf(topology, 'finetune');
  const layers = topologyLayers(topology);
  const byName = (n: string | null) => n == null ? null : layers.find((l) => l?.config?.name === n) ?? null;
  if (spec.numClasses == null) {
    throw new KArAtArgumentError(`finetune: the model's output layer '${spec.layers.output}' must be a Dense classification head, got ${spec.outputClass}`);
  }
  const input = byName(spec.layers.input);
  return {
    spec, input, shapeKey: input.config?.batch_input_shape != null ? 'batch_input_shape' : 'batch_shape',
    reshape: byName(spec.layers.tokensReshape), head: byName(spec.layers.output),
  };
}

function toHW(x: number | [number, number]): [number, number] {
  return typeof x === 'number' ? [x, x] : [x[0], x[1]];
}

/** The checked options: target attention, interpolation and the random source of new weights (null: Math.random). */
function checkAdaptOptions(options: FinetuneAdaptOptions): {target: ResolvedAttention, interpolation: PosEmbedInterpolation, random: (() => number) | null} {
  if (options == null || typeof options !== 'object') throw new KArAtArgumentError(`finetune: expected an options object {attention, ...}`);
  const target = resolveAttention(options.attention, 'attention');
  const interpolation = options.interpolation ?? 'bicubic';
  if (interpolation !== 'bicubic' && interpolation !== 'bilinear') {
    throw new KArAtArgumentError(`finetune: argument 'interpolation' must be 'bicubic' or 'bilinear', got ${JSON.stringify(interpolation)}`);
  }
  if (options.seed != null && options.random != null) throw new KArAtArgumentError(`finetune: give 'seed' or 'random', not both`);
  if (options.seed != null && !Number.isInteger(options.seed)) {
    throw new KArAtArgumentError(`finetune: argument 'seed' must be an integer, got ${JSON.stringify(options.seed)}`);
  }
  let random = options.random ?? null;
  if (options.seed != null) {
    const rng = new Rng(options.seed);
    random = () => rng.uniform();
  }
  return {target, interpolation, random};
}

/** What the adaptation changes, worked out (and checked) before anything is built. */
interface AdaptPlan {
  L: ViTLayout;
  from: [number, number];
  to: [number, number];
  oldClasses: number;
  numClasses: number;
  resize: boolean;
  oldGrid: [number, number] | null;
  newGrid: [number, number] | null;
  /** The position embedding weight, its value in the source, and the prefix (class) tokens. */
  posName: string | null;
  posOld: tf.Tensor | null;
  prefix: number;
}

const tokensOf = (plan: AdaptPlan, g: [number, number] | null) => g != null ? plan.prefix + g[0] * g[1] : null;

function planAdaptation(topology: Json, weights: Map<string, tf.Tensor>, options: FinetuneAdaptOptions, target: ResolvedAttention): AdaptPlan {
  const L = layout(topology);
  const [ih, iw] = L.spec.imageSize;
  const [nh, nw] = options.imageSize != null ? toHW(options.imageSize) : [ih, iw];
  if (!(Number.isInteger(nh) && nh > 0 && Number.isInteger(nw) && nw > 0)) {
    throw new KArAtArgumentError(`finetune: argument 'imageSize' must be positive integers, got ${JSON.stringify(options.imageSize)}`);
  }
  if (options.channels != null && options.channels !== L.spec.channels) {
    throw new KArAtArgumentError(`finetune: the model takes ${L.spec.channels}-channel images, the data has ${options.channels} channels`);
  }
  const oldClasses = Number(L.head.config.units);
  const numClasses = options.numClasses ?? oldClasses;
  if (!(Number.isInteger(numClasses) && numClasses > 0)) {
    throw new KArAtArgumentError(`finetune: argument 'numClasses' must be a positive integer, got ${JSON.stringify(options.numClasses)}`);
  }
  const resize = nh !== ih || nw !== iw;
  const p = L.spec.patchSize;
  if (resize && p == null) {
    throw new KArAtArgumentError(`finetune: cannot move the model to ${nh}x${nw}: no patch embedding found (PatchEmbedding, or a Conv2D with stride = kernel)`);
  }
  if (p != null && (nh % p !== 0 || nw % p !== 0)) {
    throw new KArAtArgumentError(`finetune: image size ${nh}x${nw} is not divisible by the model's patch size ${p}`);
  }
  const oldGrid = L.spec.grid;
  const newGrid: [number, number] | null = p != null ? [nh / p, nw / p] : null;
  const posName = L.spec.layers.posEmbed != null ? `${L.spec.layers.posEmbed}/embedding` : null;
  const posOld = posName != null ? weights.get(posName) ?? null : null;
  const prefix = posOld != null && oldGrid != null ? posOld.shape[1]! - oldGrid[0] * oldGrid[1] : L.spec.classTokens;
  const plan = {L, from: [ih, iw], to: [nh, nw], oldClasses, numClasses, resize, oldGrid, newGrid, posName, posOld, prefix} as AdaptPlan;
  const newTokens = tokensOf(plan, newGrid);
  if (target.kind === 'karat' && target.operator.rank !== 'full' && newTokens != null && target.operator.rank > newTokens) {
    throw new KArAtArgumentError(
        `finetune: KArAt rank ${target.operator.rank} exceeds the number of tokens N = ${newTokens} ` +
        `(${nh}x${nw} images, patch ${p}${prefix ? `, ${prefix} class token` : ''}); the rank must be <= N`);
  }
  return plan;
}

/** The planned changes written into the (copied) topology: head, logits, input size, token reshape; what is replaced. */
function rewriteTopology(plan: AdaptPlan, weights: Map<string, tf.Tensor>, options: FinetuneAdaptOptions, interpolation: PosEmbedInterpolation):
    {replaced: Array<{name: string, how: string}>, notes: string[], skip: Set<string>} {
  const {L, oldClasses, numClasses, oldGrid, newGrid, posName, prefix} = plan;
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
  if (plan.resize) {
    const shape = [...L.input.config[L.shapeKey]];
    shape[1] = plan.to[0];
    shape[2] = plan.to[1];
    L.input.config[L.shapeKey] = shape;
    if (L.reshape != null) {
      const t = L.reshape.config.target_shape;
      if (Array.isArray(t) && t.length === 2 && t[0] === oldGrid![0] * oldGrid![1]) {
        L.reshape.config.target_shape = [newGrid![0] * newGrid![1], t[1]];
      }
    }
    if (posName != null) {
      if (plan.posOld == null) throw new KArAtArgumentError(`finetune: the model has no weight '${posName}'`);
      skip.add(posName);
      replaced.push({name: posName, how: `resampled ${interpolation} ${oldGrid!.join('x')} -> ${newGrid!.join('x')} patch grid` +
          `${prefix ? ` (${prefix} class token kept)` : ''}`});
    }
  }
  return {replaced, notes, skip};
}

/** Builds the adapted model: the new topology with the kept weights, attention swapped; new weights drawn from `random`. */
async function rebuild(plan: AdaptPlan, topology: Json, weights: Map<string, tf.Tensor>, skip: Set<string>,
                       attention: AttentionActivation, random: (() => number) | null): Promise<SwapReport> {
  const kept = new Map<string, tf.Tensor>();
  for (const [k, v] of weights) if (!skip.has(k)) kept.set(k, v);
  const encoded = await tf.io.encodeWeights(Object.fromEntries(kept));
  const artifacts: tf.io.ModelArtifacts = {modelTopology: topology, weightSpecs: encoded.specs, weightData: encoded.data};
  // The head and position embedding are replaced on purpose; every other weight that the
  // swap cannot carry over is checked afterwards, against options.allowInitialised.
  const swap = () => swapAttentionWithReport(artifacts, attention, {allowInitialised: true});
  try {
    return await (random != null ? withMathRandom(random, swap) : swap());
  } catch (e) {
    if (e instanceof Error && e.name !== 'KArAtArgumentError' && plan.resize) {
      throw new KArAtArgumentError(`finetune: cannot rebuild the model at ${plan.to[0]}x${plan.to[1]}: ${e.message}`);
    }
    throw e;
  }
}

/** Writes the resampled position embedding into the rebuilt model. */
function writeResampledPosEmbed(model: tfl.LayersModel, plan: AdaptPlan, interpolation: PosEmbedInterpolation, created: tf.Tensor[]): void {
  const {posName} = plan;
  const r = resamplePositionEmbedding(plan.posOld!, plan.oldGrid!, plan.newGrid!, {prefixTokens: plan.prefix, interpolation});
  created.push(r);
  const w = model.weights.find((v) => v.originalName === posName);
  if (w == null || w.shape.join() !== r.shape.join()) {
    throw new KArAtArgumentError(`finetune: the rebuilt model's '${posName}' has shape [${w?.shape}], expected [${r.shape}]`);
  }
  w.write(r);
}

/**
 * What the source had and the new model did not take over (the head and position embedding
 * replaced on purpose aside), and the new model's initialised weights; refused unless
 * options.allowInitialised when trained weights would be discarded or unexpected ones initialised.
 */
function accountWeights(model: tfl.LayersModel, rep: SwapReport, weights: Map<string, tf.Tensor>, skip: Set<string>,
                        replaced: Array<{name: string, how: string}>, options: FinetuneAdaptOptions, headName: string):
    {discarded: string[], initialised: string[], newParams: string[]} {
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
  const fresh = rep.initialised.filter((n) => !replacedNames.has(n));
  return {
    discarded, initialised: [...fresh, ...rep.partiallyCopied],
    newParams: [...fresh, ...replaced.filter((r) => r.name.startsWith(`${headName}/`)).map((r) => r.name)],
  };
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
  const {target, interpolation, random} = checkAdaptOptions(options);
  const {topology, weights, owned} = await readModelSource(source, 'finetune');
  const created: tf.Tensor[] = [];
  try {
    // A converted Keras file: what cannot be mapped is named before anything is built.
    if (topology?.model_config != null) checkKerasViTTopology(topology, 'finetune');
    const newTopology = JSON.parse(JSON.stringify(topology));
    const plan = planAdaptation(newTopology, weights, options, target);
    const {replaced, notes, skip} = rewriteTopology(plan, weights, options, interpolation);
    const rep = await rebuild(plan, newTopology, weights, skip, options.attention, random);
    const model = rep.model;
    try {
      if (plan.resize && plan.posName != null) writeResampledPosEmbed(model, plan, interpolation, created);
      const {discarded, initialised, newParams} = accountWeights(model, rep, weights, skip, replaced, options, String(plan.L.head.config.name));
      const {spec} = plan.L;
      return {
        model, attentionLayers: rep.attentionLayers, kept: rep.copied, initialised, replaced, discarded, newParams, notes,
        fromAttention: describeSpecAttention(spec), toAttention: describeAttention(options.attention),
        from: {imageSize: plan.from, channels: spec.channels, numClasses: plan.oldClasses, tokens: tokensOf(plan, plan.oldGrid)},
        to: {imageSize: plan.to, channels: spec.channels, numClasses: plan.numClasses, tokens: tokensOf(plan, plan.newGrid)},
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

/** The attention of a ViT's first attention layer, in words. */
function describeSpecAttention(spec: ViTSpec): string {
  const a = spec.attention;
  if (spec.attentionClass === 'MultiHeadAttention' || a === 'softmax') return 'softmax attention';
  if (typeof a !== 'object') return String(a);
  return `${a.basis} KArAt (grid ${a.grid}, rank ${a.rank}, ${a.mode})`;
}

function describeAttention(a: AttentionActivation): string {
  const r = resolveAttention(a, 'attention');
  if (r.kind !== 'karat') return 'softmax attention';
  return `${r.operator.basis} KArAt (grid ${r.operator.grid}, rank ${r.operator.rank}, ${r.mode})`;
}

/** Architecture facts of a ViT that adaptForFinetune can adapt (read from its topology; a part of vitSpecOf's ViTSpec). */
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
    const {spec} = layout(topology);
    return {
      imageSize: spec.imageSize, channels: spec.channels, numClasses: spec.numClasses!, patchSize: spec.patchSize, dim: spec.dim,
      depth: spec.depth, heads: spec.heads, mlpRatio: spec.mlpRatio, attention: spec.attention, attentionLayers: spec.layers.attention,
    };
  } finally {
    if (owned) tf.dispose([...weights.values()]);
  }
}
