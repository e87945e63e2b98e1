/**
 * loadKerasViT: the front door for ViTs built in Keras 2 (tf_keras) and converted with
 * `tensorflowjs_converter --input_format keras` (or tensorflowjs.converters.save_keras_model).
 *
 * tfjs-layers 4.22 cannot run such a model by itself: its MultiHeadAttention is not exported
 * from the package, does not track its weights inside a LayersModel, and loses the `value`
 * that Keras passes as a keyword argument. loadKerasViT rebuilds every Keras
 * `MultiHeadAttention` as `KArAtMultiHeadAttention` with softmax attention (the drop-in: same
 * config, same Q/K/V/output weights, Keras' `attention_output` renamed to `attentionOutput`)
 * and loads every weight unchanged. Nothing is registered or replaced globally.
 *
 * Mapped: every layer class that tfjs-layers (or this package) provides, plus Keras'
 * MultiHeadAttention called on one sequence (`mha(x, x)`, `mha(x, x, x)`) or on separate
 * query/value/key tensors. A class token and a learned position embedding, which Keras has no
 * stock layer for, load when they are this package's `ClassToken` (weight `token` [1, 1, D])
 * and `LearnedPositionEmbedding` (weight `embedding` [1, N, D]) under those class names.
 * Refused with a KerasViTError naming the layer and the reason: other attention layers
 * (Attention, AdditiveAttention, ...), MultiHeadAttention called with a mask, causal masking or
 * returned scores, attention over axes other than the sequence, and layers no tfjs class
 * implements (custom Keras layers).
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';

import {KArAtArgumentError} from '../core/validate';
import {collectLayers, loadArtifacts, modelConfigOf, swapAttentionWithReport} from './swap';

type Json = any;  // tslint:disable-line:no-any

/** A converted Keras model that loadKerasViT cannot map; the message names the layer and why. */
export class KerasViTError extends KArAtArgumentError {
  constructor(message: string) {
    super(message);
    this.name = 'KerasViTError';
  }
}

/** Keras attention layers other than MultiHeadAttention. */
const OTHER_ATTENTION = new Set([
  'Attention', 'AdditiveAttention', 'GroupQueryAttention', 'GroupedQueryAttention', 'CachedMultiHeadAttention',
]);

/** Throws a KerasViTError for the first layer that cannot be mapped (`fn` names the caller in the message). */
export function checkKerasViTTopology(topology: Json, fn = 'loadKerasViT'): void {
  const mc = modelConfigOf(topology);
  const layers = collectLayers(mc);
  if (layers.length === 0) throw new KerasViTError(`${fn}: the model has no layers (not a Keras model.json?)`);
  const known = tf.serialization.SerializationMap.getMap().classNameMap;
  let attention = 0;
  for (const l of layers) {
    const cls = String(l?.class_name);
    const name = String(l?.config?.name ?? l?.name);
    if (cls === 'MultiHeadAttention') {
      attention++;
      const c = l.config ?? {};
      const axes = c.attention_axes;
      if (axes != null && !(Array.isArray(axes) && axes.length === 1 && (axes[0] === 1 || axes[0] === -2))) {
        throw new KerasViTError(
            `${fn}: layer '${name}' (MultiHeadAttention) attends over axes ${JSON.stringify(axes)}; ` +
            `only attention over the token axis of [batch, tokens, features] inputs can be mapped`);
      }
      for (const node of l.inbound_nodes ?? []) {
        for (const ref of Array.isArray(node) ? node : []) {
          const kwargs = (Array.isArray(ref) ? ref[3] : null) ?? {};
          for (const [k, v] of Object.entries(kwargs as Record<string, unknown>)) {
            if (k === 'value' || k === 'key' || k === 'training') continue;
            if ((k === 'use_causal_mask' || k === 'return_attention_scores') && (v === false || v == null)) continue;
            if (k === 'attention_mask' && v == null) continue;
            throw new KerasViTError(
                `${fn}: layer '${name}' (MultiHeadAttention) is called with ${k}=${JSON.stringify(v)}; ` +
                `attention masks, causal masking and returned attention scores cannot be mapped (a ViT attends ` +
                `over all tokens)`);
          }
        }
      }
      continue;
    }
    if (OTHER_ATTENTION.has(cls)) {
      throw new KerasViTError(
          `${fn}: layer '${name}' is a Keras ${cls} layer; only MultiHeadAttention can be mapped ` +
          `(onto KArAtMultiHeadAttention)`);
    }
    if (cls === 'Functional' || cls === 'Model' || cls === 'Sequential') continue;
    if (!(cls in known)) {
      throw new KerasViTError(
          `${fn}: layer '${name}' has class '${cls}', which neither tfjs-layers nor tfjs-karat implements ` +
          `(a custom Keras layer?); register a tfjs class of that name (tf.serialization.registerClass) before loading`);
    }
  }
  if (attention === 0) {
    throw new KerasViTError(`${fn}: the model has no MultiHeadAttention layer (layers: ` +
        `${layers.map(l => `${l?.config?.name}:${l?.class_name}`).join(', ')})`);
  }
}

/**
 * Loads a Keras ViT converted to tfjs (a model.json URL such as 'file://.../model.json' or
 * 'https://.../model.json', an IOHandler, or tf.io.ModelArtifacts) as a tf.LayersModel whose
 * MultiHeadAttention layers are KArAtMultiHeadAttention with softmax attention; predictions
 * are Keras' own. Pass the result to swapAttention to move it to KArAt, or fine-tune it.
 *
 * ```js
 * const model = await karat.loadKerasViT('file://converted/model.json');
 * const karatModel = await karat.swapAttention(model, {type: 'fourier', grid: 3, rank: 12});
 * ```
 */
export async function loadKerasViT(source: string | tf.io.IOHandler | tf.io.ModelArtifacts): Promise<tfl.LayersModel> {
  if (source != null && typeof source === 'object' && Array.isArray((source as tfl.LayersModel).layers)) {
    throw new KerasViTError(`loadKerasViT: argument 'source' is already a tf.LayersModel; give the converted model.json`);
  }
  const artifacts = await loadArtifacts(source, 'loadKerasViT', 'source', 'a model.json URL, an IOHandler or tf.io.ModelArtifacts',
                                        (m) => new KerasViTError(m));
  const topology = artifacts.modelTopology;
  if (topology == null || topology instanceof ArrayBuffer) {
    throw new KerasViTError(`loadKerasViT: the model has no Layers-model topology (a graph model?)`);
  }
  checkKerasViTTopology(topology);
  return (await swapAttentionWithReport(artifacts, 'softmax')).model;
}
