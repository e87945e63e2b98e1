/**
 * The calling contract of KArAtMultiHeadAttention, tfjs-layers' (Keras-style)
 * MultiHeadAttention's: reading `call` / `apply` arguments (query | [query, value(, key(,
 * attentionMask))] | (query, {value, key, attentionMask, useCausalMask, training,
 * returnAttentionScores})), the input shapes tfjs passes to build / computeOutputShape, the
 * shape arguments of the layer config (outputShape, attentionAxes, queryShape ...) and the
 * output shapes. Every argument is checked; none is silently ignored.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type {Kwargs} from '@tensorflow/tfjs-layers/dist/types';

import {KArAtArgumentError} from '../../core/validate';
import {checkPositiveIntArg, isShapeList, Shape} from './layer_utils';

/** The class name of KArAtMultiHeadAttention, which its messages start with. */
export const LAYER = 'KArAtMultiHeadAttention';

/** The options of `call` / `apply` (tfjs-layers' MultiHeadAttentionOptions plus returnAttentionScores). */
export interface AttentionCallOptions {
  /** [B, S, dimV]; default: the query (self-attention). */
  value?: tf.Tensor | tfl.SymbolicTensor;
  /** [B, S, dimK]; default: the value. */
  key?: tf.Tensor | tfl.SymbolicTensor;
  /** Boolean or 0/1 mask [T, S], [B, T, S] or [B, h, T, S]; false / 0 = do not attend (softmax only). */
  attentionMask?: tf.Tensor | tfl.SymbolicTensor;
  /** Causal (lower-triangular) mask: query token t attends to key tokens <= t (softmax only). */
  useCausalMask?: boolean;
  /** Training mode: attention dropout on. */
  training?: boolean;
  /** Also return the activated attention per head, [B, h, T, S]: the result is [output, scores]. */
  returnAttentionScores?: boolean;
}

/** Options of the layer's symbolic call(s), used when tfjs' graph executor runs the node. */
export interface GraphCallOptions {
  useCausalMask: boolean;
  returnAttentionScores: boolean;
}

export type AnyTensor = tf.Tensor | tfl.SymbolicTensor;

/** The arguments of one call, read by parseCall. */
export interface ParsedCall {
  query: AnyTensor;
  value: AnyTensor | null;
  key: AnyTensor | null;
  attentionMask: AnyTensor | null;
  useCausalMask?: boolean;
  training?: boolean;
  returnAttentionScores?: boolean;
  symbolic: boolean;
}

/** The input shapes of one call: value defaults to the query, key to the value. */
export interface CallShapes {
  query: Shape;
  value: Shape;
  key: Shape;
  mask: Shape | null;
}

/** The build signature of a tfjs-layers config (queryShape, valueShape, keyShape). */
export interface ShapeSignature {
  query: Shape | null;
  value: Shape | null;
  key: Shape | null;
}

/** Keys of AttentionCallOptions. */
const CALL_KEYS = ['value', 'key', 'attentionMask', 'useCausalMask', 'training', 'returnAttentionScores'];
/** The boolean options among them. */
export const CALL_FLAGS = ['useCausalMask', 'training', 'returnAttentionScores'] as const;
/**
 * Keyword arguments tfjs' engine adds by itself. `mask` is not read: tfjs 4.22's graph executor
 * passes only the first input's mask and leaves it in place for later layers; implicit masks are
 * read from the inputs' `kerasMask`, as tfjs-layers' and Keras' MultiHeadAttention do.
 */
const ENGINE_KEYS = ['mask'];

export function shapeStr(s: ReadonlyArray<number | null>): string {
  return `[${s.map(d => d ?? 'null').join(', ')}]`;
}

function isTensorLike(x: unknown): x is AnyTensor {
  return x instanceof tf.Tensor || x instanceof tfl.SymbolicTensor;
}

/** A boolean layer argument, `dflt` when null. */
export function checkBool(arg: string, v: unknown, dflt: boolean): boolean {
  if (v == null) return dflt;
  if (typeof v !== 'boolean') {
    throw new KArAtArgumentError(`${LAYER}: argument '${arg}' must be a boolean, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** The `outputShape` argument as a list of sizes, or null (the query's feature size). */
export function parseOutputShape(outputShape: unknown): number[] | null {
  if (outputShape == null) return null;
  const os = (Array.isArray(outputShape) ? outputShape : [outputShape]) as number[];
  os.forEach((d, i) => checkPositiveIntArg(LAYER, `outputShape[${i}]`, d));
  return os;
}

/**
 * Normalises `attentionAxes` for rank-3 inputs (negative axes count from the end of the input
 * shape, as Keras does) and keeps only what is supported: the token axis.
 */
export function normaliseAttentionAxes(axes: unknown): number[] | null {
  if (axes == null) return null;
  const list = Array.isArray(axes) ? axes : [axes];
  if (list.length === 0 || !list.every(a => typeof a === 'number' && Number.isInteger(a))) {
    throw new KArAtArgumentError(
        `${LAYER}: argument 'attentionAxes' must be an integer or an array of integers, got ${JSON.stringify(axes)}`);
  }
  const norm = (list as number[]).map(a => (a < 0 ? 3 + a : a));
  if (norm.length !== 1 || norm[0] !== 1) {
    throw new KArAtArgumentError(
        `${LAYER}: argument 'attentionAxes' supports only attention over the token axis of ` +
        `[batch, tokens, features] inputs: null, 1 or -2 (axes normalised for rank-3 inputs), got ` +
        `${JSON.stringify(axes)} -> ${JSON.stringify(norm)}`);
  }
  return [1];
}

/** The build signature of a tfjs-layers / Keras config, checked to be shapes. */
export function parseSignature(args: {queryShape?: unknown, valueShape?: unknown, keyShape?: unknown}): ShapeSignature {
  const sig = (n: string, v: unknown): Shape | null => {
    if (v == null) return null;
    if (!Array.isArray(v) || !v.every(d => d == null || (Number.isInteger(d) && d >= 0))) {
      throw new KArAtArgumentError(`${LAYER}: argument '${n}' must be a shape (array of sizes or null), got ${JSON.stringify(v)}`);
    }
    return v as Shape;
  };
  return {query: sig('queryShape', args.queryShape), value: sig('valueShape', args.valueShape),
          key: sig('keyShape', args.keyShape)};
}

/** The shapes of a tfjs-layers config (queryShape, ...) must match the inputs the layer builds for. */
export function checkSignature(layerName: string, signature: ShapeSignature, s: CallShapes): void {
  for (const n of ['query', 'value', 'key'] as const) {
    const want = signature[n];
    if (want == null) continue;
    const got = s[n];
    const ok = want.length === got.length && want.every((d, i) => i === 0 || d == null || got[i] == null || d === got[i]);
    if (!ok) {
      throw new KArAtArgumentError(
          `${LAYER} '${layerName}': argument '${n}Shape' ${shapeStr(want)} (from the layer config) does not ` +
          `match the '${n}' input ${shapeStr(got)}`);
    }
  }
}

/** The options object of a call: only known keys, tensors where tensors go. */
function callOptions(where: string, kwargs: Kwargs | undefined): Record<string, unknown> {
  if (kwargs != null && (typeof kwargs !== 'object' || Array.isArray(kwargs))) {
    throw new KArAtArgumentError(`${where}: the options must be an object {value, key, attentionMask, ...}`);
  }
  const kw = (kwargs ?? {}) as Record<string, unknown>;
  for (const k of Object.keys(kw)) {
    if (!CALL_KEYS.includes(k) && !ENGINE_KEYS.includes(k)) {
      throw new KArAtArgumentError(
          `${where}: unknown option '${k}'; the options are ${CALL_KEYS.join(', ')} ` +
          `(those of tfjs-layers' MultiHeadAttention.call, plus returnAttentionScores)`);
    }
  }
  return kw;
}

/**
 * Reads (inputs, kwargs) of `apply` or `call` into query, value, key, attentionMask and the
 * options, rejecting anything that would otherwise be ignored.
 */
export function parseCall(layerName: string, inputs: unknown, kwargs: Kwargs | undefined,
                          method: 'apply' | 'call'): ParsedCall {
  const where = `${LAYER} '${layerName}'.${method}`;
  const kw = callOptions(where, kwargs);
  const list = (Array.isArray(inputs) ? inputs : [inputs]) as unknown[];
  if (list.length < 1 || list.length > 4) {
    throw new KArAtArgumentError(
        `${where}: expected query, [query, value], [query, value, key] or [query, value, key, ` +
        `attentionMask], got ${list.length} inputs`);
  }
  const names = ['query', 'value', 'key', 'attentionMask'];
  list.forEach((t, i) => {
    if (!isTensorLike(t)) {
      throw new KArAtArgumentError(`${where}: input '${names[i]}' must be a tf.Tensor or SymbolicTensor, got ${typeof t}`);
    }
  });
  const tensorKw = ['value', 'key', 'attentionMask'].filter(k => kw[k] != null);
  if (tensorKw.length > 0 && list.length > 1) {
    throw new KArAtArgumentError(
        `${where}: pass ${tensorKw.join('/')} either in the input list or as options, not both`);
  }
  for (const k of tensorKw) {
    if (!isTensorLike(kw[k])) {
      throw new KArAtArgumentError(`${where}: option '${k}' must be a tf.Tensor or SymbolicTensor, got ${typeof kw[k]}`);
    }
  }
  const at = (i: number, k: string) => (list[i] ?? kw[k] ?? null) as AnyTensor | null;
  const p: ParsedCall = {
    query: list[0] as AnyTensor, value: at(1, 'value'), key: at(2, 'key'), attentionMask: at(3, 'attentionMask'),
    symbolic: list[0] instanceof tfl.SymbolicTensor,
  };
  if (p.key != null && p.value == null) {
    throw new KArAtArgumentError(`${where}: option 'key' given without 'value'`);
  }
  for (const [n, t] of [['value', p.value], ['key', p.key], ['attentionMask', p.attentionMask]] as const) {
    if (t != null && (t instanceof tfl.SymbolicTensor) !== p.symbolic) {
      throw new KArAtArgumentError(
          `${where}: '${n}' must be a ${p.symbolic ? 'SymbolicTensor' : 'tf.Tensor'} like the query`);
    }
  }
  for (const k of CALL_FLAGS) {
    const v = kw[k];
    if (v == null) continue;
    if (typeof v !== 'boolean') {
      throw new KArAtArgumentError(`${where}: option '${k}' must be a boolean, got ${JSON.stringify(v)}`);
    }
    p[k] = v;
  }
  return p;
}

/** The input list of the layer's node: [query], [query, value], [query, value, key] or with the mask. */
export function inputList(p: ParsedCall): AnyTensor[] {
  if (p.attentionMask != null) {
    const v = p.value ?? p.query;
    return [p.query, v, p.key ?? v, p.attentionMask];
  }
  if (p.key != null) return [p.query, p.value!, p.key];
  if (p.value != null) return [p.query, p.value];
  return [p.query];
}

/** The boolean options of a call that are set, as kwargs. */
export function flagKwargs(p: ParsedCall, flags: ReadonlyArray<typeof CALL_FLAGS[number]> = CALL_FLAGS): Kwargs {
  const kw: Kwargs = {};
  for (const k of flags) {
    if (p[k] != null) kw[k] = p[k];
  }
  return kw;
}

/** The tokens N the layer attends over in the inputs of a call (the value's, or the query's). */
export function tokensOf(inputs: AnyTensor[]): number | null {
  const v = inputs.length > 1 ? inputs[1] : inputs[0];
  const n = v.shape[1];
  return n == null ? null : n;
}

/** Checks the query, value and mask shapes of the node form [query, value, key, attentionMask]. */
function checkShapes(layerName: string, s: CallShapes): void {
  const names = ['query', 'value', 'key'];
  [s.query, s.value, s.key].forEach((x, i) => {
    if (!Array.isArray(x) || x.length !== 3 || x[2] == null) {
      throw new KArAtArgumentError(
          `${LAYER} '${layerName}': input '${names[i]}' must have shape [batch, tokens, features] ` +
          `with a known feature size (attention over other axes is not supported), got ` +
          `${Array.isArray(x) ? shapeStr(x) : JSON.stringify(x)}`);
    }
  });
  if (s.value[1] != null && s.key[1] != null && s.value[1] !== s.key[1]) {
    throw new KArAtArgumentError(
        `${LAYER} '${layerName}': all dimensions of 'value' and 'key' except the last one must be ` +
        `equal (the same number of tokens), got value ${shapeStr(s.value)} and key ${shapeStr(s.key)}`);
  }
  const mask = s.mask;
  if (mask == null) return;
  const [T, S] = [s.query[1], s.value[1]];
  const fits = (d: number | null | undefined, n: number | null | undefined) => d == null || n == null || d === 1 || d === n;
  if (mask.length < 2 || mask.length > 4 || !fits(mask[mask.length - 2], T) || !fits(mask[mask.length - 1], S)) {
    throw new KArAtArgumentError(
        `${LAYER} '${layerName}': argument 'attentionMask' must have shape [T, S], [B, T, S] or ` +
        `[B, numHeads, T, S] (T = ${T} query tokens, S = ${S} key/value tokens), got ${shapeStr(mask)}`);
  }
}

/**
 * Shapes as tfjs passes them: one shape (self-attention), [query, value], [query, value, key]
 * (key may be null, tfjs-layers' form), or [query, value, key, attentionMask].
 */
export function splitShapes(layerName: string, inputShape: Shape | Array<Shape | null>): CallShapes {
  if (!Array.isArray(inputShape) || inputShape.length === 0) {
    throw new KArAtArgumentError(
        `${LAYER} '${layerName}': expected an input shape or a list [queryShape, valueShape, keyShape?], ` +
        `got ${JSON.stringify(inputShape)}`);
  }
  const isList = isShapeList(inputShape as Shape | Shape[]);
  const list = (isList ? inputShape : [inputShape]) as Array<Shape | null>;
  if (list.length > 4) {
    throw new KArAtArgumentError(
        `${LAYER} '${layerName}': expected at most 4 input shapes (query, value, key, attentionMask), got ${list.length}`);
  }
  const query = list[0];
  if (query == null) throw new KArAtArgumentError(`${LAYER} '${layerName}': the query shape is missing`);
  const value = list[1] ?? query;
  const s: CallShapes = {query, value, key: list[2] ?? value, mask: list[3] ?? null};
  checkShapes(layerName, s);
  return s;
}

/** What the output shape depends on, besides the input shapes. */
export interface OutputShapeArgs {
  numHeads: number;
  /** The layer's outputShape argument (null: the query's feature size). */
  outputShape: number[] | null;
  returnScores: boolean;
  /** A direct computeOutputShape call: query and value must have the same feature size. */
  strict: boolean;
}

/** The feature shape of the output: the outputShape argument, or the query's feature size. */
export function outputFeatures(outputShape: number[] | null, query: Shape): number[] {
  return outputShape ?? [query[2] as number];
}

/**
 * Output shape [B, T, ...outputShape], with the scores' [B, h, T, S] when they are returned. As
 * tfjs-layers' MultiHeadAttention, a direct call rejects query and value of different feature
 * sizes (the layer itself accepts them: applying it to such inputs works).
 */
export function outputShapeFor(layerName: string, s: CallShapes, a: OutputShapeArgs): Shape | Shape[] {
  if (a.strict && s.query[2] !== s.value[2]) {
    throw new KArAtArgumentError(
        `${LAYER} '${layerName}'.computeOutputShape: the last dimension of 'queryShape' and ` +
        `'valueShape' must be equal (as in tfjs-layers' MultiHeadAttention), but are ${s.query[2]} and ` +
        `${s.value[2]}. Received: queryShape=${shapeStr(s.query)}, valueShape=${shapeStr(s.value)}`);
  }
  const out: Shape = [s.query[0], s.query[1], ...outputFeatures(a.outputShape, s.query)];
  if (!a.returnScores) return out;
  return [out, [s.query[0], a.numHeads, s.query[1], s.value[1]]];
}

/** The eager inputs of one computation: rank 3, value and key of one batch and token count. */
export function checkComputeInputs(layerName: string, query: tf.Tensor, value: tf.Tensor, key: tf.Tensor): void {
  for (const [name, t] of [['query', query], ['value', value], ['key', key]] as const) {
    if (t.rank !== 3) {
      throw new KArAtArgumentError(
          `${LAYER} '${layerName}': input '${name}' must have rank 3 [batch, tokens, features], ` +
          `got shape [${t.shape}]`);
    }
  }
  if (value.shape[1] !== key.shape[1] || value.shape[0] !== key.shape[0]) {
    throw new KArAtArgumentError(
        `${LAYER} '${layerName}': 'value' ${shapeStr(value.shape)} and 'key' ${shapeStr(key.shape)} must ` +
        `have the same batch size and number of tokens`);
  }
}
