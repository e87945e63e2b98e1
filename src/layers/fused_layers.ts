/**
 * tfjs-layers' LayerNormalization and Dense, with a fused path on webgpu.
 *
 * `fusedLayerNormalization(args)` and `fusedDense(args)` take exactly the arguments of
 * tf.layers.layerNormalization / tf.layers.dense and return instances of subclasses of those
 * very classes: same weights, names, config and class name ('LayerNormalization', 'Dense'), so
 * saved models are unchanged and load as the stock layers. Only `call` differs:
 *   - LayerNormalization over the last axis with center and scale -> layerNorm, on every
 *     backend while flag KARAT_WEBGPU_FUSED_LAYERS is on (the default): 1 dispatch on webgpu;
 *     elsewhere its composite, whose gradient avoids the per-channel Slice + Add that the
 *     stock layer's tf.tile gradient costs (~1.5x faster cpu/wasm training steps)
 *   - Dense with activation 'gelu' and a bias -> matMul + biasGelu (2 dispatches), when
 *     useFusedLayers() holds (flag on and backend webgpu)
 * Everything else falls through to the stock implementation. Both subclasses are registered for
 * deserialisation under the stock class names, so loaded models use them too.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type {Kwargs} from '@tensorflow/tfjs-layers/dist/types';

import {biasGelu, KArAtBiasGelu, layerNorm, useFusedLayers, useLayerNormOp} from '../ops/fused_layers';

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

function layerNormClass(): LayerCtor {
  if (lnClass == null) {
    // The class is not exported by tfjs-layers' entry: take it from an instance (named, so
    // that no auto-generated layer name is consumed).
    const Base = tfl.layers.layerNormalization({name: 'karat_layer_norm_probe'}).constructor as LayerCtor;
    lnClass = class extends Base {
      override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor | tf.Tensor[] {
        const self = this as unknown as LayerNormFields;
        const x = one(inputs);
        if (useLayerNormOp() && self.center && self.scale && self.axis.length === 1 &&
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
    denseClass = class extends Base {
      override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor | tf.Tensor[] {
        const self = this as unknown as DenseFields;
        const x = one(inputs);
        if (self.bias != null && self.activation?.getClassName() === 'gelu' && x.rank >= 2 &&
            x.dtype === 'float32' && useFusedLayers(KArAtBiasGelu)) {
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

// Deserialisation ('LayerNormalization', 'Dense' in a model.json) builds these subclasses, so a
// model loaded from disk takes the same paths as one built in code. They keep the stock class
// names, configs and weights, and behave as the stock layers whenever their fused path is off.
tf.serialization.registerClass(layerNormClass() as unknown as tf.serialization.SerializableConstructor<tf.serialization.Serializable>);
tf.serialization.registerClass(denseClassOf() as unknown as tf.serialization.SerializableConstructor<tf.serialization.Serializable>);

/** tf.layers.layerNormalization(args), with the fused webgpu path. */
export function fusedLayerNormalization(args: Parameters<typeof tfl.layers.layerNormalization>[0] = {}): tfl.layers.Layer {
  const Cls = layerNormClass();
  return new Cls(args as Record<string, unknown>);
}

/** tf.layers.dense(args), with the fused bias + GELU path on webgpu when activation is 'gelu'. */
export function fusedDense(args: Parameters<typeof tfl.layers.dense>[0]): tfl.layers.Layer {
  const Cls = denseClassOf();
  return new Cls(args as unknown as Record<string, unknown>);
}
