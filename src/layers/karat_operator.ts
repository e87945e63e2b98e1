/**
 * KArAtOperator: the learnable operator (e.g. Fourier coeffs + proj, for all heads) as one
 * weight holder object. Its variables are created by the attention layer that holds it (so
 * that tfjs-layers tracks, trains, saves and loads them as that layer's weights, once); in
 * universal mode every other attention layer of the model references the same object, so all
 * blocks share the same tf.Variables — after training and after save/load.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';

import {ResolvedOperatorConfig} from '../bases/index';
import type {KArAtMode} from './attention_config';

export class KArAtOperator {
  constructor(
      readonly cfg: ResolvedOperatorConfig,
      readonly heads: number,
      readonly tokens: number,
      /** The layer whose weights hold the variables. */
      readonly owner: tfl.layers.Layer,
      /** Parameter name ('coeffs', 'proj', ...) -> variable. */
      readonly variables: Readonly<Record<string, tfl.LayerVariable>>,
      readonly mode: KArAtMode,
      readonly shareName: string) {}

  /** Current values, for operatorAttention / operatorActivation. */
  params(): Record<string, tf.Tensor> {
    const out: Record<string, tf.Tensor> = {};
    for (const [k, v] of Object.entries(this.variables)) out[k] = v.read();
    return out;
  }

  /** Number of scalars in the operator (Fourier, zero base: h·N·r·(2G+1)). */
  countParams(): number {
    return Object.values(this.variables).reduce((n, v) => n + (v.shape as number[]).reduce((a, b) => a * b, 1), 0);
  }
}
