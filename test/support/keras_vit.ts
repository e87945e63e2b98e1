/**
 * A Keras-style ViT made only of stock layers (Conv2D, Reshape, LayerNormalization,
 * MultiHeadAttention, Add, Dense with GELU, GlobalAveragePooling1D), as tf.io.ModelArtifacts
 * in the layout that `tensorflowjs_converter --input_format keras` writes for a Keras 2
 * functional model: snake_case configs, a `model_config` wrapper, MultiHeadAttention called
 * as `mha(x, x)` (value passed as a keyword argument in the inbound node), weights named
 * `<layer>/<sublayer>/<weight>` with Keras' `attention_output` spelling.
 *
 * tfjs-layers 4.22 itself cannot build or load this model (its MultiHeadAttention is not in
 * the package's public entry, and inside a LayersModel its tensor keyword argument `value`
 * is dropped by the graph executor), which is exactly why swapAttention accepts it.
 */
import * as tf from '@tensorflow/tfjs-core';

export interface KerasViTOptions {
  imageSize: number;
  patchSize: number;
  channels: number;
  dim: number;
  heads: number;
  depth: number;
  numClasses: number;
  seed: number;
}

type Json = any;  // tslint:disable-line:no-any

const init = (className: string, config: Json = {}) =>
    ({module: 'keras.initializers', class_name: className, config, registered_name: null});

function layer(className: string, name: string, config: Json, inbound: Json[][] | null): Json {
  return {
    module: 'keras.layers', class_name: className,
    config: {name, trainable: true, dtype: 'float32', ...config},
    registered_name: null, name,
    inbound_nodes: inbound == null ? [] : [inbound],
  };
}

const ref = (name: string, kwargs: Json = {}) => [name, 0, 0, kwargs];

export function kerasViTArtifacts(o: KerasViTOptions): {artifacts: tf.io.ModelArtifacts, weights: Map<string, tf.Tensor>} {
  const g = o.imageSize / o.patchSize;
  const N = g * g;
  const keyDim = o.dim / o.heads;
  const layers: Json[] = [];
  const specs: Array<[string, number[]]> = [];
  layers.push({
    module: 'keras.layers', class_name: 'InputLayer',
    config: {batch_input_shape: [null, o.imageSize, o.imageSize, o.channels], dtype: 'float32',
             sparse: false, ragged: false, name: 'image'},
    registered_name: null, name: 'image', inbound_nodes: [],
  });
  const dense = (name: string, units: number, activation: string, input: string, inDim: number) => {
    layers.push(layer('Dense', name, {
      units, activation, use_bias: true, kernel_initializer: init('GlorotUniform', {seed: null}),
      bias_initializer: init('Zeros'), kernel_regularizer: null, bias_regularizer: null,
      activity_regularizer: null, kernel_constraint: null, bias_constraint: null,
    }, [ref(input)]));
    specs.push([`${name}/kernel`, [inDim, units]], [`${name}/bias`, [units]]);
  };
  const norm = (name: string, input: string) => {
    layers.push(layer('LayerNormalization', name, {
      axis: [2], epsilon: 1e-6, center: true, scale: true, beta_initializer: init('Zeros'),
      gamma_initializer: init('Ones'), beta_regularizer: null, gamma_regularizer: null,
      beta_constraint: null, gamma_constraint: null,
    }, [ref(input)]));
    specs.push([`${name}/gamma`, [o.dim]], [`${name}/beta`, [o.dim]]);
  };
  layers.push(layer('Conv2D', 'patch_embed', {
    filters: o.dim, kernel_size: [o.patchSize, o.patchSize], strides: [o.patchSize, o.patchSize],
    padding: 'valid', data_format: 'channels_last', dilation_rate: [1, 1], groups: 1,
    activation: 'linear', use_bias: true, kernel_initializer: init('GlorotUniform', {seed: null}),
    bias_initializer: init('Zeros'), kernel_regularizer: null, bias_regularizer: null,
    activity_regularizer: null, kernel_constraint: null, bias_constraint: null,
  }, [ref('image')]));
  specs.push(['patch_embed/kernel', [o.patchSize, o.patchSize, o.channels, o.dim]], ['patch_embed/bias', [o.dim]]);
  layers.push(layer('Reshape', 'tokens', {target_shape: [N, o.dim]}, [ref('patch_embed')]));
  let x = 'tokens';
  for (let i = 0; i < o.depth; i++) {
    norm(`ln1_${i}`, x);
    layers.push(layer('MultiHeadAttention', `mha_${i}`, {
      num_heads: o.heads, key_dim: keyDim, value_dim: keyDim, dropout: 0.0, use_bias: true,
      output_shape: null, attention_axes: [1],
      kernel_initializer: init('GlorotUniform', {seed: null}), bias_initializer: init('Zeros'),
      kernel_regularizer: null, bias_regularizer: null, activity_regularizer: null,
      kernel_constraint: null, bias_constraint: null,
      query_shape: [null, N, o.dim], key_shape: [null, N, o.dim], value_shape: [null, N, o.dim],
    }, [ref(`ln1_${i}`, {value: [`ln1_${i}`, 0, 0]})]));
    for (const s of ['query', 'key', 'value']) {
      specs.push([`mha_${i}/${s}/kernel`, [o.dim, o.heads, keyDim]], [`mha_${i}/${s}/bias`, [o.heads, keyDim]]);
    }
    specs.push([`mha_${i}/attention_output/kernel`, [o.heads, keyDim, o.dim]],
               [`mha_${i}/attention_output/bias`, [o.dim]]);
    layers.push(layer('Add', `add1_${i}`, {}, [ref(x), ref(`mha_${i}`)]));
    norm(`ln2_${i}`, `add1_${i}`);
    dense(`mlp1_${i}`, 2 * o.dim, 'gelu', `ln2_${i}`, o.dim);
    dense(`mlp2_${i}`, o.dim, 'linear', `mlp1_${i}`, 2 * o.dim);
    layers.push(layer('Add', `add2_${i}`, {}, [ref(`add1_${i}`), ref(`mlp2_${i}`)]));
    x = `add2_${i}`;
  }
  norm('norm', x);
  layers.push(layer('GlobalAveragePooling1D', 'gap', {data_format: 'channels_last', keepdims: false}, [ref('norm')]));
  dense('head', o.numClasses, 'softmax', 'gap', o.dim);

  const modelTopology = {
    keras_version: '2.15.0', backend: 'tensorflow',
    model_config: {
      class_name: 'Functional',
      config: {name: 'keras_vit', trainable: true, layers, input_layers: [['image', 0, 0]], output_layers: [['head', 0, 0]]},
    },
  };
  // Random weights (LayerNorm at its usual init); deterministic from the seed.
  const weights = new Map<string, tf.Tensor>();
  specs.forEach(([name, shape], i) => {
    let t: tf.Tensor;
    if (name.endsWith('/gamma')) t = tf.ones(shape);
    else if (name.endsWith('/beta')) t = tf.zeros(shape);
    else {
      const fanIn = shape.length === 1 ? shape[0] : shape.slice(0, name.includes('attention_output') ? 2 : -1).reduce((a, b) => a * b, 1);
      t = tf.randomNormal(shape, 0, (name.endsWith('/bias') ? 0.1 : 1) / Math.sqrt(fanIn), 'float32', o.seed + i);
    }
    weights.set(name, t);
  });
  return {weights, artifacts: {
    format: 'layers-model', generatedBy: 'keras v2.15.0', convertedBy: 'TensorFlow.js Converter v4.22.0',
    modelTopology,
    weightSpecs: specs.map(([name, shape]) => ({name, shape, dtype: 'float32' as const})),
    weightData: concat(specs.map(([name]) => weights.get(name)!)),
  }};
}

function concat(ts: tf.Tensor[]): ArrayBuffer {
  const total = ts.reduce((n, t) => n + t.size, 0);
  const out = new Float32Array(total);
  let off = 0;
  for (const t of ts) {
    out.set(t.dataSync() as Float32Array, off);
    off += t.size;
  }
  return out.buffer;
}
