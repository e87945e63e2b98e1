/**
 * swapAttention: rebuilds a model with every attention layer (tfjs-layers / Keras
 * `MultiHeadAttention`, or our `KArAtMultiHeadAttention`) using a given attention activation,
 * copying every pre-existing weight unchanged. Works on a live tf.LayersModel, on
 * tf.io.ModelArtifacts, on an IOHandler, or on a URL ('file://.../model.json', http, ...).
 *
 * Copy rules (see docs/layers.md):
 *  - every non-attention weight and every Q/K/V/output weight: copied bit for bit (Keras'
 *    `attention_output` weights are renamed to tfjs' `attentionOutput`);
 *  - softmax -> KArAt: the operator is newly initialised;
 *  - KArAt -> softmax: the operator weights are dropped;
 *  - KArAt -> KArAt: same basis/rank/tokens: operator copied; Fourier with another grid G:
 *    the common harmonics are copied, new harmonics start at 0 (so growing G keeps the learned
 *    function exactly), dropped harmonics are truncated; 'proj' is copied when its shape
 *    matches; anything else is newly initialised. blockwise -> universal: the shared operator
 *    takes the first attention layer's operator; universal -> blockwise: every layer gets a
 *    copy of the shared operator.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

import {KArAtArgumentError} from '../core/validate';
import {checkLayerSizes} from './io/validate_weights';
import {AttentionActivation, resolveAttention, ResolvedAttention, serializeAttention} from './layers/attention_config';
import {KArAtMultiHeadAttention} from './layers/multihead_attention';
import {topologyModelConfig} from './models/vit_spec';

export type SwapSource = tfl.LayersModel | tf.io.ModelArtifacts | tf.io.IOHandler | string;

export interface SwapOptions {
  /**
   * Accept weights of the new model that cannot be taken from the source model (they keep their
   * initial values and are listed in the report's `initialised`). Default false: such weights
   * are an error naming them — except the KArAt operator weights that a swap to a new operator
   * configuration necessarily creates.
   */
  allowInitialised?: boolean;
}

export interface SwapReport {
  /** The new model (uncompiled). */
  model: tfl.LayersModel;
  /** Names of the attention layers that were swapped. */
  attentionLayers: string[];
  /** Weights copied unchanged (new names). */
  copied: string[];
  /** Weights copied in part (Fourier coefficients with another grid). */
  partiallyCopied: string[];
  /**
   * New weights left at their initial values: new KArAt operator weights, and (only with
   * {allowInitialised: true}) weights the source model did not have.
   */
  initialised: string[];
  /** Old weights not carried over (operator weights that no longer fit). */
  dropped: string[];
}

type Json = any;  // tslint:disable-line:no-any

const STOCK = 'MultiHeadAttention';
const OURS = KArAtMultiHeadAttention.className;

/** tfjs' TS -> pythonic conversion of configs (keys and string values to snake_case). */
function toSnake(s: string): string {
  const i = s.replace(/(.)([A-Z][a-z0-9]+)/g, '$1_$2');
  return i.replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase();
}
function pythonic(x: Json): Json {
  if (x == null) return null;
  if (typeof x === 'string') return toSnake(x);
  if (Array.isArray(x)) return x.map(pythonic);
  if (typeof x === 'object') {
    const o: Json = {};
    for (const [k, v] of Object.entries(x)) o[toSnake(k)] = pythonic(v);
    return o;
  }
  return x;
}

function isLayersModel(x: unknown): x is tfl.LayersModel {
  return x != null && typeof x === 'object' && typeof (x as tfl.LayersModel).toJSON === 'function' &&
      Array.isArray((x as tfl.LayersModel).layers) && typeof (x as tfl.LayersModel).predict === 'function';
}

/**
 * The artifacts of a model given as a URL (through tf.io's one load handler for it), an
 * IOHandler, or tf.io.ModelArtifacts. Errors name the calling function `fn`, its argument `arg`
 * and what it `accepts`; `makeError` builds them (KArAtArgumentError by default).
 */
export async function loadArtifacts(source: unknown, fn: string, arg: string, accepts: string,
                                    makeError: (message: string) => Error = (m) => new KArAtArgumentError(m)):
    Promise<tf.io.ModelArtifacts> {
  if (typeof source === 'string') {
    const handlers = tf.io.getLoadHandlers(source);
    if (handlers.length !== 1) {
      throw makeError(`${fn}: argument '${arg}' is a URL for which tf.io has ${handlers.length} load ` +
                      `handlers (expected 1): ${source}`);
    }
    return handlers[0].load!();
  }
  if (source != null && typeof source === 'object' && typeof (source as tf.io.IOHandler).load === 'function') {
    return (source as tf.io.IOHandler).load!();
  }
  if (source != null && typeof source === 'object' && 'modelTopology' in source) return source as tf.io.ModelArtifacts;
  throw makeError(`${fn}: argument '${arg}' must be ${accepts}, got ${source === null ? 'null' : typeof source}`);
}

/**
 * The topology and named weights of a model source (a live model, artifacts, an IOHandler or a
 * URL); `owned` when the weights were decoded here (the caller disposes them). `fn` names the
 * calling function in errors.
 */
export async function readModelSource(source: SwapSource, fn = 'swapAttention'):
    Promise<{topology: Json, weights: Map<string, tf.Tensor>, owned: boolean}> {
  if (isLayersModel(source)) {
    const topology = source.toJSON(null, false) as Json;
    const weights = new Map<string, tf.Tensor>();
    for (const w of source.weights) weights.set(w.originalName, w.read());
    return {topology, weights, owned: false};
  }
  const artifacts = await loadArtifacts(source, fn, 'model', 'a tf.LayersModel, tf.io.ModelArtifacts, an IOHandler or a URL string');
  const topology = artifacts.modelTopology as Json;
  if (topology == null || topology instanceof ArrayBuffer) {
    throw new KArAtArgumentError(`${fn}: argument 'model' has no Layers-model topology`);
  }
  const weights = new Map<string, tf.Tensor>();
  if (artifacts.weightData != null && artifacts.weightSpecs != null) {
    const named = tf.io.decodeWeights(artifacts.weightData, artifacts.weightSpecs);
    for (const [k, v] of Object.entries(named)) weights.set(k, v);
  }
  return {topology, weights, owned: true};
}

/** The {class_name, config} model config inside a topology (Keras files nest it in model_config). */
export function modelConfigOf(topology: Json): Json {
  return topologyModelConfig(topology);
}

/** All layer configs, recursing into nested models. */
export function collectLayers(modelConfig: Json, out: Json[] = []): Json[] {
  const layers = modelConfig?.config?.layers;
  if (!Array.isArray(layers)) return out;
  for (const l of layers) {
    out.push(l);
    if (l?.config?.layers != null) collectLayers(l, out);
  }
  return out;
}

/** A Keras 2 tensor reference ["layer", nodeIndex, tensorIndex] (possibly wrapped in a list). */
function asRef(x: Json): Json[] | null {
  if (Array.isArray(x) && x.length >= 3 && typeof x[0] === 'string') return [x[0], x[1], x[2], {}];
  if (Array.isArray(x) && x.length === 1) return asRef(x[0]);
  return null;
}

function sameRef(a: Json[], b: Json[]): boolean {
  return a[0] === b[0] && a[1] === b[1] && a[2] === b[2];
}

/**
 * Rewrites inbound nodes that pass value/key as keyword arguments (Keras' MultiHeadAttention
 * style) into the positional list [query, value(, key)] that tfjs' executor supports.
 */
function rewriteInboundNodes(layer: Json) {
  const nodes = layer.inbound_nodes;
  if (!Array.isArray(nodes)) return;
  layer.inbound_nodes = nodes.map((node: Json) => {
    if (!Array.isArray(node) || node.length !== 1) {
      return Array.isArray(node) ? node.map((e: Json) => Array.isArray(e) ? [e[0], e[1], e[2], {}] : e) : node;
    }
    const q = node[0];
    const kwargs = q[3] ?? {};
    for (const [k, val] of Object.entries(kwargs as Record<string, unknown>)) {
      // value/key become inputs; `training` is decided by the model at run time. A mask or a
      // returned-scores request has no place in the rebuilt graph: refused, never dropped.
      if (k === 'value' || k === 'key' || k === 'training') continue;
      if ((k === 'use_causal_mask' || k === 'return_attention_scores') && (val === false || val == null)) continue;
      if (k === 'attention_mask' && val == null) continue;
      throw new KArAtArgumentError(
          `swapAttention: layer '${layer.config?.name}' is called with '${k}' = ${JSON.stringify(val)} in the model graph; ` +
          `swapAttention rebuilds attention layers without call-time masks or returned scores, so it cannot keep it`);
    }
    const qRef: Json[] = [q[0], q[1], q[2], {}];
    const v = kwargs.value != null ? asRef(kwargs.value) : null;
    const k = kwargs.key != null ? asRef(kwargs.key) : null;
    if (v == null) return [qRef];
    if (sameRef(v, qRef) && (k == null || sameRef(k, qRef))) return [qRef];
    return k == null ? [qRef, v] : [qRef, v, k];
  });
}

function shapeKey(t: tf.Tensor): string {
  return t.shape.join(',');
}

/** Fourier coeffs [h,2,r,N,G_old] -> [h,2,r,N,G_new]: common harmonics copied, new ones 0. */
function regridCoeffs(old: tf.Tensor, shapeNew: number[]): tf.Tensor | null {
  const so = old.shape;
  if (so.length !== 5 || shapeNew.length !== 5 || so.slice(0, 4).join() !== shapeNew.slice(0, 4).join()) {
    return null;
  }
  const g = Math.min(so[4], shapeNew[4]);
  return tf.tidy(() => {
    const common = tf.slice(old, [0, 0, 0, 0, 0], [...so.slice(0, 4), g]);
    return shapeNew[4] > g ? tf.pad(common, [[0, 0], [0, 0], [0, 0], [0, 0], [0, shapeNew[4] - g]]) : common;
  });
}

function checkSwapOptions(options: unknown): boolean {
  if (options == null || typeof options !== 'object' || Array.isArray(options)) {
    throw new KArAtArgumentError(`swapAttention: argument 'options' must be an object {allowInitialised}, got ${JSON.stringify(options)}`);
  }
  for (const k of Object.keys(options)) {
    if (k !== 'allowInitialised') {
      throw new KArAtArgumentError(`swapAttention: unknown option '${k}'; the options are allowInitialised`);
    }
  }
  const a = (options as SwapOptions).allowInitialised;
  if (a != null && typeof a !== 'boolean') {
    throw new KArAtArgumentError(`swapAttention: option 'allowInitialised' must be a boolean, got ${JSON.stringify(a)}`);
  }
  return a === true;
}

/** The error for weights the source model cannot provide, grouped by layer. */
function lostWeightsMessage(lost: string[], sourceWeights: number): string {
  const byLayer = new Map<string, string[]>();
  for (const name of lost) {
    const i = name.indexOf('/');
    const layer = i < 0 ? name : name.slice(0, i);
    if (!byLayer.has(layer)) byLayer.set(layer, []);
    byLayer.get(layer)!.push(i < 0 ? name : name.slice(i + 1));
  }
  const list = [...byLayer].map(([l, ws]) => `layer '${l}': ${ws.join(', ')}`).join('; ');
  return `swapAttention: ${lost.length} weight(s) of the new model have no counterpart in the source ` +
      `model (which provides ${sourceWeights} weight tensors), so they would start from their initial ` +
      `values instead of being kept: ${list}. A LayersModel built from tfjs-layers' own ` +
      `MultiHeadAttention (deep import) does not track its Q/K/V/output weights in tfjs 4.22, so there ` +
      `are none to copy; load the model from a file that has them (e.g. a converted Keras model.json), ` +
      `or pass {allowInitialised: true} to accept freshly initialised weights.`;
}

/** The attention layers of a model config (an error naming the layers when there is none). */
function attentionLayersOf(mc: Json): Json[] {
  const layers = collectLayers(mc);
  const att = layers.filter(l => l?.class_name === STOCK || l?.class_name === OURS);
  if (att.length === 0) {
    throw new KArAtArgumentError(
        `swapAttention: argument 'model' has no attention layer (${STOCK} or ${OURS}); layers: ` +
        `${layers.map(l => `${l?.config?.name}:${l?.class_name}`).join(', ')}`);
  }
  return att;
}

/** `<layer>/karat/<weight>`: a KArAt operator weight of attention layer `<layer>`. */
const OPERATOR_WEIGHT = /^(.*)\/karat\/([^/]+)$/;

/** What the copy step reads: the source's weights and operators, and the target attention. */
interface SwapSources {
  target: ResolvedAttention;
  attNames: string[];
  /** Old operator tensors per attention layer (`<layer>/karat/<name>` -> name -> tensor). */
  oldOps: Map<string, Map<string, tf.Tensor>>;
  /** The first attention layer's old operator (for blockwise -> universal and back). */
  firstOld: Map<string, tf.Tensor> | null;
  /** The basis each attention layer was trained with (null: softmax). */
  oldBasis: Map<string, string | null>;
  /** The source's weights under tfjs names (Keras' attention_output -> attentionOutput). */
  renamed: Map<string, tf.Tensor>;
}

function oldOperators(weights: Map<string, tf.Tensor>, attNames: string[]): Map<string, Map<string, tf.Tensor>> {
  const oldOps = new Map<string, Map<string, tf.Tensor>>();
  for (const [name, t] of weights) {
    for (const ln of attNames) {
      const prefix = `${ln}/karat/`;
      if (name.startsWith(prefix)) {
        if (!oldOps.has(ln)) oldOps.set(ln, new Map());
        oldOps.get(ln)!.set(name.slice(prefix.length), t);
      }
    }
  }
  return oldOps;
}

/** Turns every attention layer config into ours with `target`; returns each layer's old basis. */
function rewriteAttentionLayers(att: Json[], target: ResolvedAttention): Map<string, string | null> {
  const oldBasis = new Map<string, string | null>();
  for (const l of att) {
    const a = l.config.attention_activation;
    oldBasis.set(l.config.name, a != null && typeof a === 'object' ? String(a.basis) : null);
    l.class_name = OURS;
    for (const k of ['query_shape', 'key_shape', 'value_shape']) delete l.config[k];
    l.config.attention_activation = pythonic(serializeAttention(target));
    rewriteInboundNodes(l);
  }
  return oldBasis;
}

/** Maps old names to new names (Keras -> tfjs spelling of the output projection). */
function tfjsWeightNames(weights: Map<string, tf.Tensor>, attNames: string[]): Map<string, tf.Tensor> {
  const renamed = new Map<string, tf.Tensor>();
  for (const [name, t] of weights) {
    let n = name;
    for (const ln of attNames) {
      if (n.startsWith(`${ln}/attention_output/`)) n = `${ln}/attentionOutput/` + n.slice(`${ln}/attention_output/`.length);
    }
    renamed.set(n, t);
  }
  return renamed;
}

/**
 * Operator weight `op` of swapped layer `layer`: copies what matches (same basis only) into `w`.
 * Returns 'copied', 'partial' (Fourier coefficients regridded; the new tensor goes to
 * `toDispose`) or null (left initialised).
 */
function copyOperatorWeight(w: tfl.LayerVariable, layer: string, op: string, src: SwapSources, used: Set<string>,
                            toDispose: tf.Tensor[]): 'copied' | 'partial' | null {
  const {target, oldOps, firstOld, oldBasis, attNames} = src;
  if (target.kind !== 'karat') return null;
  const own = oldOps.get(layer);
  const from = own ?? firstOld;
  const srcLayer = own != null ? layer : attNames.find(n => oldOps.get(n) === firstOld);
  const sameBasis = srcLayer != null &&
      (oldBasis.get(srcLayer) ?? '').replace(/_/g, '').toLowerCase() ===
      target.operator.basis.replace(/_/g, '').toLowerCase();
  const t = from?.get(op);
  if (t == null || !sameBasis) return null;
  if (shapeKey(t) === w.shape.join(',')) {
    used.add(`${srcLayer}/karat/${op}`);
    w.write(t);
    return 'copied';
  }
  if (op === 'coeffs' && target.operator.basis === 'fourier') {
    const r = regridCoeffs(t, w.shape as number[]);
    if (r != null) {
      used.add(`${srcLayer}/karat/${op}`);
      w.write(r);
      toDispose.push(r);
      return 'partial';
    }
  }
  return null;
}

/** Writes every weight of `newModel` that the source provides; fills the report's lists. */
function copyWeights(newModel: tfl.LayersModel, src: SwapSources, report: SwapReport): void {
  const used = new Set<string>();
  const toDispose: tf.Tensor[] = [];
  for (const w of newModel.weights) {
    const name = w.originalName;
    const m = OPERATOR_WEIGHT.exec(name);
    const isOperator = m != null && src.attNames.includes(m[1]);
    const old = src.renamed.get(name);
    if (!isOperator && old != null && shapeKey(old) === w.shape.join(',')) {
      w.write(old);
      used.add(name);
      report.copied.push(name);
      continue;
    }
    const how = isOperator ? copyOperatorWeight(w, m![1], m![2], src, used, toDispose) : null;
    if (how === 'copied') report.copied.push(name);
    else if (how === 'partial') report.partiallyCopied.push(name);
    else report.initialised.push(name);
  }
  for (const [name] of src.renamed) {
    if (used.has(name)) continue;
    const isOperator = src.attNames.some(ln => name.startsWith(`${ln}/karat/`));
    if (isOperator) {
      report.dropped.push(name);
      continue;
    }
    newModel.dispose();
    throw new Error(
        `swapAttention: weight '${name}' of the source model has no counterpart in the new model ` +
        `(weight names must follow tfjs-layers' naming: <layer>/<weight>)`);
  }
  tf.dispose(toDispose);
}

/** Weights left initialised that are not new operator weights: an error unless allowed. */
function checkLostWeights(report: SwapReport, src: SwapSources, allowInitialised: boolean): void {
  const lost = report.initialised.filter((name) => {
    const m = OPERATOR_WEIGHT.exec(name);
    return !(m != null && src.attNames.includes(m[1]) && src.target.kind === 'karat');
  });
  if (lost.length > 0 && !allowInitialised) {
    report.model.dispose();
    throw new KArAtArgumentError(lostWeightsMessage(lost, src.renamed.size));
  }
}

/**
 * Returns a new model in which every attention layer uses `attention`, with a report of what
 * was copied. See swapAttention. Weights of the new model that the source cannot provide are an
 * error (naming them) unless `options.allowInitialised`.
 */
export async function swapAttentionWithReport(
    model: SwapSource, attention: AttentionActivation, options: SwapOptions = {}): Promise<SwapReport> {
  const allowInitialised = checkSwapOptions(options);
  const target: ResolvedAttention = resolveAttention(attention, 'attentionConfig');
  const {topology, weights, owned} = await readModelSource(model);
  try {
    const newTopology = JSON.parse(JSON.stringify(topology));
    const att = attentionLayersOf(modelConfigOf(newTopology));
    const attNames = att.map(l => l.config.name as string);
    const oldOps = oldOperators(weights, attNames);
    const firstOld = attNames.map(n => oldOps.get(n)).find(o => o != null) ?? null;
    const oldBasis = rewriteAttentionLayers(att, target);
    if (topology.model_config != null) {
      // A Keras file: keep only what tfjs' deserializer reads.
      delete newTopology.training_config;
    }
    // Untrusted files: layer sizes must agree with the stored weights before anything is built.
    checkLayerSizes(collectLayers(modelConfigOf(topology)), new Map([...weights].map(([k, t]) => [k, t.shape])), 'swapAttention');
    const newModel = await tfl.models.modelFromJSON({modelTopology: newTopology} as Json);
    const src: SwapSources = {target, attNames, oldOps, firstOld, oldBasis, renamed: tfjsWeightNames(weights, attNames)};
    const report: SwapReport = {
      model: newModel, attentionLayers: attNames, copied: [], partiallyCopied: [], initialised: [], dropped: [],
    };
    copyWeights(newModel, src, report);
    checkLostWeights(report, src, allowInitialised);
    return report;
  } finally {
    if (owned) tf.dispose([...weights.values()]);
  }
}

/**
 * Returns a new tf.LayersModel (uncompiled) where every attention layer uses `attention`
 * ('softmax' or a KArAt config such as {type: 'fourier', grid: 3, rank: 12, mode: 'blockwise'}),
 * every pre-existing weight copied unchanged and new KArAt weights initialised. Any other weight
 * the source cannot provide is an error naming it, unless `{allowInitialised: true}`.
 *
 * @param model a tf.LayersModel, tf.io.ModelArtifacts, IOHandler or URL of a model.json whose
 *     attention layers are tfjs-layers/Keras `MultiHeadAttention` or `KArAtMultiHeadAttention`.
 */
export async function swapAttention(model: SwapSource, attention: AttentionActivation,
                                    options: SwapOptions = {}): Promise<tfl.LayersModel> {
  return (await swapAttentionWithReport(model, attention, options)).model;
}
