/**
 * Checks on weight manifests and stored weight lists read from untrusted files (model.json,
 * checkpoint headers): every declared tensor must have a known dtype and a shape of
 * non-negative integers, and the declared byte total must stay under a limit, all before
 * anything is read or allocated.
 */
import type * as tf from '@tensorflow/tfjs-core';

import {KArAtArgumentError} from '../../core/validate';

/**
 * Default cap on the weight bytes a model file may declare (2 GiB, the most one tfjs
 * weight buffer holds in practice). Larger models are refused with an error naming the cap.
 */
export const MAX_WEIGHT_BYTES = 2 ** 31;

/** Bytes per element of each dtype a weight file may hold. */
const DTYPE_BYTES: Readonly<Record<string, number>> = {float32: 4, int32: 4, bool: 1, complex64: 8};
/** Bytes per element of the quantised storage dtypes of tensorflowjs_converter. */
const QUANT_BYTES: Readonly<Record<string, number>> = {uint8: 1, uint16: 2, float16: 2};

function isObject(x: unknown): x is Record<string, unknown> {
  return x != null && typeof x === 'object' && !Array.isArray(x);
}

/**
 * Number of elements of `shape`, after checking that it is an array of non-negative
 * integers; `what` names the tensor in the error.
 */
export function shapeSize(shape: unknown, what: string, where: string): number {
  if (!Array.isArray(shape) || shape.some(d => typeof d !== 'number' || !Number.isInteger(d) || d < 0)) {
    throw new KArAtArgumentError(`${where}: ${what} must have a shape of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  let n = 1;
  for (const d of shape as number[]) n *= d;
  if (!Number.isSafeInteger(n)) throw new KArAtArgumentError(`${where}: ${what} has an impossibly large shape ${JSON.stringify(shape)}`);
  return n;
}

/** Stored bytes of one manifest entry (after checking name, dtype, shape, quantisation). */
export function entryBytes(e: unknown, where: string): number {
  if (!isObject(e) || typeof e.name !== 'string') {
    throw new KArAtArgumentError(`${where}: every weight entry needs a string 'name', got ${JSON.stringify(e)?.slice(0, 200)}`);
  }
  const what = `weight '${e.name}'`;
  const n = shapeSize(e.shape, what, where);
  if (e.quantization != null) {
    const q = isObject(e.quantization) ? e.quantization.dtype : undefined;
    const b = typeof q === 'string' && Object.prototype.hasOwnProperty.call(QUANT_BYTES, q) ? QUANT_BYTES[q] : undefined;
    if (b == null) {
      throw new KArAtArgumentError(`${where}: ${what} has an unsupported quantization dtype ${JSON.stringify(q)}; expected one of ${Object.keys(QUANT_BYTES).join(', ')}`);
    }
    return n * b;
  }
  const dt = e.dtype;
  const b = typeof dt === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_BYTES, dt) ? DTYPE_BYTES[dt] : undefined;
  if (b == null) {
    throw new KArAtArgumentError(
        `${where}: ${what} has dtype ${JSON.stringify(dt)}, which this loader does not read; expected one of ${Object.keys(DTYPE_BYTES).join(', ')}`);
  }
  return n * b;
}

/**
 * Checks a tfjs weights manifest (the `weightsManifest` of a model.json) and returns, per
 * group, the shard paths and the bytes its weights declare. Refuses a declared total above
 * `maxBytes`.
 */
export function checkWeightsManifest(manifest: unknown, where: string, maxBytes = MAX_WEIGHT_BYTES):
    Array<{paths: string[], weights: tf.io.WeightsManifestEntry[], bytes: number}> {
  if (!Array.isArray(manifest)) throw new KArAtArgumentError(`${where}: 'weightsManifest' must be an array, got ${typeof manifest}`);
  let total = 0;
  const out = manifest.map((g: unknown, i) => {
    if (!isObject(g) || !Array.isArray(g.paths) || !Array.isArray(g.weights) || g.paths.some(p => typeof p !== 'string' || p === '')) {
      throw new KArAtArgumentError(`${where}: weightsManifest[${i}] must have 'paths' (non-empty strings) and 'weights' arrays`);
    }
    let bytes = 0;
    for (const w of g.weights) bytes += entryBytes(w, where);
    total += bytes;
    if (total > maxBytes) {
      throw new KArAtArgumentError(
          `${where}: the weights declare more than ${maxBytes} bytes (limit); refusing to read them ` +
          `(raise the limit with the handler's maxWeightBytes option if the model really is that large)`);
    }
    return {paths: g.paths as string[], weights: g.weights as tf.io.WeightsManifestEntry[], bytes};
  });
  return out;
}

/** Largest attention width (numHeads · keyDim, or · valueDim) accepted from a model file. */
export const MAX_ATTENTION_WIDTH = 1 << 16;

type LayerJson = {class_name?: unknown, config?: Record<string, unknown>};

/**
 * Checks the sizes that layer configs of an untrusted model topology set against the
 * stored weight shapes, before the model is built: attention layers' num_heads, key_dim and
 * value_dim against their query/key/value kernels, Dense `units` and Conv `filters` against
 * their kernels' last axis. Without a stored kernel an attention layer's width is capped at
 * MAX_ATTENTION_WIDTH. `where` names the function in the error.
 */
export function checkLayerSizes(layers: LayerJson[], weightShapes: Map<string, number[]>, where: string): void {
  const fail = (m: string) => {
    throw new KArAtArgumentError(`${where}: ${m}`);
  };
  const posInt = (layer: string, key: string, v: unknown): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) fail(`layer '${layer}': '${key}' must be an integer >= 1, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const same = (name: string, want: Array<number | null>) => {
    const got = weightShapes.get(name);
    if (got == null) return false;
    if (got.length !== want.length || want.some((w, i) => w != null && got[i] !== w)) {
      fail(`stored weight '${name}' has shape [${got}], the layer config needs [${want.map(w => w ?? '*')}]`);
    }
    return true;
  };
  for (const l of layers) {
    const c = l?.config;
    if (c == null || typeof c !== 'object') continue;
    const name = String(c.name);
    if (l.class_name === 'MultiHeadAttention' || l.class_name === 'KArAtMultiHeadAttention') {
      const h = posInt(name, 'num_heads', c.num_heads);
      const dk = posInt(name, 'key_dim', c.key_dim);
      const dv = c.value_dim == null ? dk : posInt(name, 'value_dim', c.value_dim);
      const stored = same(`${name}/query/kernel`, [null, h, dk]);
      same(`${name}/key/kernel`, [null, h, dk]);
      same(`${name}/value/kernel`, [null, h, dv]);
      if (!stored && Math.max(h * dk, h * dv) > MAX_ATTENTION_WIDTH) {
        fail(`layer '${name}': num_heads x key_dim (${h} x ${Math.max(dk, dv)}) exceeds ${MAX_ATTENTION_WIDTH} and no stored weights confirm it`);
      }
    } else {
      for (const key of ['units', 'filters']) {
        if (c[key] == null) continue;
        const n = posInt(name, key, c[key]);
        const k = weightShapes.get(`${name}/kernel`);
        if (k != null && k[k.length - 1] !== n) {
          fail(`layer '${name}': '${key}' is ${n}, its stored kernel has shape [${k}]`);
        }
      }
    }
  }
}
