/**
 * tfjs-layers' LayerNormalization and Dense, with fused paths, under their own class names.
 *
 * `fusedLayerNormalization(args)` and `fusedDense(args)` take exactly the arguments of
 * tf.layers.layerNormalization / tf.layers.dense and return instances of subclasses of those
 * very classes, `KArAtLayerNormalization` and `KArAtDense`: same weights, weight names and
 * config as the stock layers. Only `call` differs:
 *   - LayerNormalization over the last axis with center and scale -> layerNorm, on every
 *     backend while flag KARAT_FUSED_LAYERS is on (the default): 1 dispatch on webgpu;
 *     elsewhere its composite, whose gradient avoids the per-channel Slice + Add that the
 *     stock layer's tf.tile gradient costs (~1.5x faster cpu/wasm training steps)
 *   - Dense with activation 'gelu' and a bias -> matMul + biasGelu (2 dispatches), when
 *     fusedLayerKernelOn(KArAtBiasGelu) holds (flag on and backend webgpu)
 * Everything else falls through to the stock implementation.
 *
 * The subclasses are registered for deserialisation under their OWN class names only, so a
 * model built by this package (models.vit, transformerEncoderBlock) keeps its fast paths after
 * save and load, while importing the package changes nothing it did not create: a user's
 * model.json naming 'LayerNormalization' / 'Dense' still loads into the stock classes and runs
 * the stock kernels. Model files saved before this change (stock names) load as stock layers:
 * the same numbers to ~1e-6, without the fused paths.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type {Kwargs} from '@tensorflow/tfjs-layers/dist/types';

import {fusedLayerKernelOn, fusedLayersOn} from '../../core/flags';
import {biasGelu, layerNorm} from '../../core/fused_layers';
import {KArAtBiasGelu} from '../../core/kernel_names';
import {registerClassOnce} from './layer_utils';

type LayerCtor = new (args: Record<string, unknown>) => tfl.layers.Layer;

interface LayerNormFields {
  axis: number[];
  epsilon: number;
  center: boolean;
  scale: boolean;
  gamma: tfl.LayerVariable;
  beta: tfl.LayerVariable;
}

interface DenseFields {
  kernel: tfl.LayerVariable;
  bias: tfl.LayerVariable | null;
  activation: {getClassName(): string} | null;
}

let lnClass: LayerCtor | null = null;
let denseClass: LayerCtor | null = null;

function one(x: tf.Tensor | tf.Tensor[]): tf.Tensor {
  return Array.isArray(x) ? x[0] : x;
}

export const FUSED_LAYER_NORMALIZATION_CLASS = 'KArAtLayerNormalization';
export const FUSED_DENSE_CLASS = 'KArAtDense';

function layerNormClass(): LayerCtor {
  if (lnClass == null) {
    // The class is not exported by tfjs-layers' entry: take it from an instance (named, so
    // that no auto-generated layer name is consumed).
    const Base = tfl.layers.layerNormalization({name: 'karat_layer_norm_probe'}).constructor as LayerCtor;
    lnClass = class KArAtLayerNormalization extends Base {
      static className = FUSED_LAYER_NORMALIZATION_CLASS;
      override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor | tf.Tensor[] {
        const self = this as unknown as LayerNormFields;
        const x = one(inputs);
        if (fusedLayersOn() && self.center && self.scale && self.axis.length === 1 &&
            self.axis[0] === x.rank - 1 && x.dtype === 'float32') {
          return tf.tidy(() => layerNorm(x, self.gamma.read() as tf.Tensor1D, self.beta.read() as tf.Tensor1D, self.epsilon));
        }
        return super.call(inputs, kwargs);
      }
    };
  }
  return lnClass;
}

function denseClassOf(): LayerCtor {
  if (denseClass == null) {
    const Base = tfl.layers.dense({units: 1, name: 'karat_dense_probe'}).constructor as LayerCtor;
    denseClass = class KArAtDense extends Base {
      static className = FUSED_DENSE_CLASS;
      override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor | tf.Tensor[] {
        const self = this as unknown as DenseFields;
        const x = one(inputs);
        if (self.bias != null && self.activation?.getClassName() === 'gelu' && x.rank >= 2 &&
            x.dtype === 'float32' && fusedLayerKernelOn(KArAtBiasGelu)) {
          return tf.tidy(() => {
            const K = x.shape[x.rank - 1];
            const kernel = self.kernel.read() as tf.Tensor2D;
            const units = kernel.shape[1];
            const y = tf.matMul(tf.reshape(x, [x.size / K, K]), kernel);
            return tf.reshape(biasGelu(y, self.bias!.read() as tf.Tensor1D), [...x.shape.slice(0, -1), units]);
          });
        }
        return super.call(inputs, kwargs);
      }
    };
  }
  return denseClass;
}

// Deserialisation of 'KArAtLayerNormalization' / 'KArAtDense' (what models built by this package
// save) builds these subclasses, so a model loaded from disk takes the same paths as one built in
// code. The stock names 'LayerNormalization' / 'Dense' are left to tfjs-layers' own classes.
type AnyCtor = tf.serialization.SerializableConstructor<tf.serialization.Serializable>;
registerClassOnce(layerNormClass() as unknown as AnyCtor);
registerClassOnce(denseClassOf() as unknown as AnyCtor);

/** tf.layers.layerNormalization(args) as a KArAtLayerNormalization, with the fused paths. */
export function fusedLayerNormalization(args: Parameters<typeof tfl.layers.layerNormalization>[0] = {}): tfl.layers.Layer {
  const Cls = layerNormClass();
  return new Cls(args as Record<string, unknown>);
}

/** tf.layers.dense(args) as a KArAtDense, with the fused bias + GELU path on webgpu when activation is 'gelu'. */
export function fusedDense(args: Parameters<typeof tfl.layers.dense>[0]): tfl.layers.Layer {
  const Cls = denseClassOf();
  return new Cls(args as unknown as Record<string, unknown>);
}
