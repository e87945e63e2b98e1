/**
 * The fused layer-op cases, written once and run on every backend by describeWithBackends
 * (test/support/backend_suites.ts): test/fused_layers.test.ts on cpu, wasm and webgpu (Dawn),
 * test/tensorflow/layers.tftest.ts on tensorflow. LAYER_OP_CASES are LayerNorm, bias + GELU and
 * softmax over the last axis (forward and the gradients of sum(y · w)) and the AdamW update, each
 * with an independent float64 reference; also deterministic inputs and one training batch's loss
 * and gradients of a model with the fused-layers flag on or off.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

import * as karat from '../../src/index';
import {KARAT_FUSED_LAYERS_FLAG} from '../../src/index';
import * as assert from 'assert';

import {describeWithBackends, expectBelowOverUnit, expectMatchesReference, valuesOf, withFlags} from './backend_suites';

export function rand(shape: number[], scale = 1, seed = 1): Float32Array {
  let s = seed * 9301 + 49297;
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s * 9301 + 49297) % 233280;
    out[i] = scale * (s / 233280 * 2 - 1);
  }
  return out;
}

export async function values(ts: tf.Tensor[]): Promise<Float32Array[]> {
  return Promise.all(ts.map((t) => t.data() as Promise<Float32Array>));
}

/** LayerNorm forward, and grads of sum(y · w) w.r.t. x, gamma, beta through autodiff. */
export function layerNormAll(x: tf.Tensor, g: tf.Tensor1D, b: tf.Tensor1D, w: tf.Tensor, eps: number): tf.Tensor[] {
  return tf.tidy(() => {
    const y = karat.layerNorm(x, g, b, eps);
    const grads = tf.grads((xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) =>
        tf.sum(tf.mul(karat.layerNorm(xx, gg as tf.Tensor1D, bb as tf.Tensor1D, eps), w)))([x, g, b]);
    return [y, ...grads];
  });
}

export function biasGeluAll(x: tf.Tensor, b: tf.Tensor1D, w: tf.Tensor): tf.Tensor[] {
  return tf.tidy(() => {
    const y = karat.biasGelu(x, b);
    const grads = tf.grads((xx: tf.Tensor, bb: tf.Tensor) =>
        tf.sum(tf.mul(karat.biasGelu(xx, bb as tf.Tensor1D), w)))([x, b]);
    return [y, ...grads];
  });
}

/**
 * Loss and every parameter gradient of one training batch, with flag KARAT_FUSED_LAYERS
 * set to `fused` (restored after), and the kernel names tf.profile saw. The loss is the
 * categorical cross-entropy of the model's probabilities, or with `fromLogits` of its logits
 * (a model with classifierActivation 'linear': tfjs-layers' categoricalCrossentropy would
 * divide the logits by their sum, whose gradient explodes where that sum nears zero).
 */
export async function lossAndGrads(model: tfl.LayersModel, x: tf.Tensor, y: tf.Tensor, fused: boolean,
                                   {fromLogits = false} = {}) {
  const vars = model.trainableWeights.map((w) => (w as unknown as {val: tf.Variable}).val);
  const loss = (out: tf.Tensor) => fromLogits ? tf.losses.softmaxCrossEntropy(y, out) as tf.Scalar :
      tf.mean(tfl.metrics.categoricalCrossentropy(y, out)) as tf.Scalar;
  return withFlags({[KARAT_FUSED_LAYERS_FLAG]: fused}, async () => {
    const info = await tf.profile(() => {
      const r = tf.variableGrads(() => loss(model.apply(x, {training: true}) as tf.Tensor), vars);
      return [r.value, ...Object.values(r.grads)];
    });
    const out = info.result as tf.Tensor[];
    const vals = await values(out);
    tf.dispose(out);
    return {vals, names: info.kernels.map((k) => k.name)};
  });
}

export const ADAMW_HYPER = {learningRate: 0.01, beta1: 0.9, beta2: 0.99, epsilon: 1e-6, weightDecay: 0.05, step: 3};

export interface LayerOpCase {
  name: string;
  /** The outputs (forward value, then gradients) on the active backend. */
  run(): tf.Tensor[];
  /** The same outputs from the formulas, in float64. */
  float64(): Float64Array[];
  /** max |got − ref| / max(1, max|ref|) per output, against cpu and against float64. */
  tol: number;
  names: string[];
}

const f64 = (a: ArrayLike<number>) => Float64Array.from(a);

/** A&S 7.1.26 (|error| < 1.5e-7), evaluated in float64. */
function erf(x: number): number {
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y = 1 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return x < 0 ? -y : y;
}

/** y = γ·x̂ + β over the last axis, and dx, dγ, dβ of sum(y · w). */
export function layerNormFloat64(x: ArrayLike<number>, g: ArrayLike<number>, b: ArrayLike<number>, w: ArrayLike<number>,
                                 C: number, eps: number): Float64Array[] {
  const M = x.length / C;
  const y = new Float64Array(M * C), dx = new Float64Array(M * C), dg = new Float64Array(C), db = new Float64Array(C);
  for (let i = 0; i < M; i++) {
    let mean = 0, v = 0;
    for (let c = 0; c < C; c++) mean += x[i * C + c] / C;
    for (let c = 0; c < C; c++) v += (x[i * C + c] - mean) ** 2 / C;
    const sd = Math.sqrt(v + eps);
    const xh = (c: number) => (x[i * C + c] - mean) / sd;
    let mg = 0, mgx = 0;
    for (let c = 0; c < C; c++) {
      const k = i * C + c, gw = w[k] * g[c];
      y[k] = g[c] * xh(c) + b[c];
      dg[c] += w[k] * xh(c);
      db[c] += w[k];
      mg += gw / C;
      mgx += gw * xh(c) / C;
    }
    for (let c = 0; c < C; c++) dx[i * C + c] = (w[i * C + c] * g[c] - mg - xh(c) * mgx) / sd;
  }
  return [y, dx, dg, db];
}

/** y = gelu(x + b) (erf form), and dx, db of sum(y · w). */
export function biasGeluFloat64(x: ArrayLike<number>, b: ArrayLike<number>, w: ArrayLike<number>): Float64Array[] {
  const C = b.length;
  const y = new Float64Array(x.length), dx = new Float64Array(x.length), db = new Float64Array(C);
  for (let k = 0; k < x.length; k++) {
    const z = x[k] + b[k % C];
    const cdf = 0.5 * (1 + erf(z / Math.SQRT2));
    y[k] = z * cdf;
    dx[k] = w[k] * (cdf + z * Math.exp(-z * z / 2) / Math.sqrt(2 * Math.PI));
    db[k % C] += dx[k];
  }
  return [y, dx, db];
}

/** y = softmax(x) over the last axis of size C, and dx of sum(y · w). */
export function softmaxFloat64(x: ArrayLike<number>, w: ArrayLike<number>, C: number): Float64Array[] {
  const y = new Float64Array(x.length), dx = new Float64Array(x.length);
  for (let i = 0; i < x.length / C; i++) {
    let max = -Infinity, sum = 0, wy = 0;
    for (let c = 0; c < C; c++) max = Math.max(max, x[i * C + c]);
    for (let c = 0; c < C; c++) sum += (y[i * C + c] = Math.exp(x[i * C + c] - max));
    for (let c = 0; c < C; c++) wy += w[i * C + c] * (y[i * C + c] /= sum);
    for (let c = 0; c < C; c++) dx[i * C + c] = y[i * C + c] * (w[i * C + c] - wy);
  }
  return [y, dx];
}

/** One AdamW step (decoupled weight decay, bias-corrected moments): [param, m, v]. */
export function adamWFloat64(p: ArrayLike<number>, m: ArrayLike<number>, v: ArrayLike<number>, g: ArrayLike<number>,
                             hyper: typeof ADAMW_HYPER): Float64Array[] {
  const {learningRate: lr, beta1: b1, beta2: b2, epsilon: eps, weightDecay: wd, step: t} = hyper;
  const out = [new Float64Array(p.length), new Float64Array(p.length), new Float64Array(p.length)];
  for (let i = 0; i < p.length; i++) {
    const mm = b1 * m[i] + (1 - b1) * g[i];
    const vv = b2 * v[i] + (1 - b2) * g[i] * g[i];
    out[0][i] = p[i] * (1 - lr * wd) - lr * (mm / (1 - b1 ** t)) / (Math.sqrt(vv / (1 - b2 ** t)) + eps);
    out[1][i] = mm;
    out[2][i] = vv;
  }
  return out;
}

function layerNormCase(M: number, C: number): LayerOpCase {
  const x = rand([M, C], 2, M).map((a) => a + 0.5), g = rand([C], 1, 2), b = rand([C], 1, 3), w = rand([M, C], 1, 4);
  return {
    name: `layerNorm forward and backward, M=${M} C=${C}`, tol: 1e-4, names: ['y', 'dx', 'dGamma', 'dBeta'],
    run: () => layerNormAll(tf.tensor2d(x, [M, C]), tf.tensor1d(g), tf.tensor1d(b), tf.tensor2d(w, [M, C]), 1e-6),
    float64: () => layerNormFloat64(f64(x), f64(g), f64(b), f64(w), C, 1e-6),
  };
}

function biasGeluCase(M: number, C: number): LayerOpCase {
  const x = rand([M, C], 4, 5), b = rand([C], 1, 6), w = rand([M, C], 1, 7);
  return {
    name: `bias+GELU forward and backward, M=${M} C=${C}`, tol: 1e-4, names: ['y', 'dx', 'dBias'],
    run: () => biasGeluAll(tf.tensor2d(x, [M, C]), tf.tensor1d(b), tf.tensor2d(w, [M, C])),
    float64: () => biasGeluFloat64(f64(x), f64(b), f64(w)),
  };
}

function softmaxCase(shape: number[]): LayerOpCase {
  const x = rand(shape, 6, shape.length), w = rand(shape, 1, 9);
  return {
    name: `softmax over the last axis, forward and backward, [${shape}]`, tol: 1e-5, names: ['y', 'dx'],
    run: () => {
      const xx = tf.tensor(x, shape), ww = tf.tensor(w, shape);
      return [karat.softmaxLastAxis(xx), tf.grad((a: tf.Tensor) => tf.sum(tf.mul(karat.softmaxLastAxis(a), ww)))(xx)];
    },
    float64: () => softmaxFloat64(f64(x), f64(w), shape[shape.length - 1]),
  };
}

function adamWCase(shape: number[]): LayerOpCase {
  const p = rand(shape, 1, 1), m = rand(shape, 0.1, 2), v = rand(shape, 0.1, 3).map(Math.abs), g = rand(shape, 1, 4);
  return {
    name: `AdamW update, rank ${shape.length} parameter [${shape}]`, tol: 1e-5, names: ['param', 'm', 'v'],
    run: () => karat.adamWUpdate(tf.tensor(p, shape), tf.tensor(m, shape), tf.tensor(v, shape), tf.tensor(g, shape), ADAMW_HYPER),
    float64: () => adamWFloat64(f64(p), f64(m), f64(v), f64(g), ADAMW_HYPER),
  };
}

/**
 * Partial workgroups and rows (M = 3 to 130, C = 9 to 192, C not a multiple of 32 or 64),
 * softmax on rank 2 and rank 4, AdamW on a rank 3 parameter.
 */
export const LAYER_OP_CASES: LayerOpCase[] = [
  ...[[7, 100], [70, 33], [3, 192]].map(([M, C]) => layerNormCase(M, C)),
  ...[[5, 70], [130, 9], [7, 100], [3, 192]].map(([M, C]) => biasGeluCase(M, C)),
  ...[[3, 50], [2, 3, 7, 7]].map(softmaxCase),
  adamWCase([3, 5, 7]),
];

/**
 * The every-backend layer-op suite: LAYER_OP_CASES against cpu and float64, AdamW against its
 * float64 formula elementwise, layerNorm against tfjs-layers' LayerNormalization.
 */
export function describeLayerOpCases(backends: string[]): void {
  describeWithBackends('fused layer ops: the shared cases match cpu and float64', {backends}, (env) => {
    for (const c of LAYER_OP_CASES) {
      it(c.name, async () => {
        await expectMatchesReference(env, c.run, {tol: c.tol, float64: c.float64, names: c.names});
      });
    }

    it('adamWUpdate equals a float64 reference of AdamW elementwise', async () => {
      const n = 37;
      const p = rand([n], 1, 11), m = rand([n], 0.1, 12), g = rand([n], 1, 14);
      const v = rand([n], 0.1, 13).map(Math.abs);
      const [p1, m1, v1] = await valuesOf(() => karat.adamWUpdate(tf.tensor1d(p), tf.tensor1d(m), tf.tensor1d(v), tf.tensor1d(g), ADAMW_HYPER));
      const [pp, mm, vv] = adamWFloat64(p, m, v, g, ADAMW_HYPER);
      for (let i = 0; i < n; i++) {
        assert.ok(Math.abs(m1[i] - mm[i]) <= 1e-6, `m1[i] ${m1[i]} vs ${mm[i]}`);
        assert.ok(Math.abs(v1[i] - vv[i]) <= 1e-6, `v1[i] ${v1[i]} vs ${vv[i]}`);
        assert.ok(Math.abs(p1[i] - pp[i]) <= 1e-5, `p1[i] ${p1[i]} vs ${pp[i]}`);
      }
    });

    it('layerNorm equals tfjs-layers LayerNormalization (forward and gradients)', async () => {
      await expectLayerNormMatchesStock();
    });
  });
}

/** layerNorm (forward, dx) against tfjs-layers' LayerNormalization on the active backend. */
export async function expectLayerNormMatchesStock(): Promise<void> {
  const shape: [number, number, number] = [2, 5, 12];
  const layer = tfl.layers.layerNormalization({epsilon: 1e-5, gammaInitializer: 'randomNormal', betaInitializer: 'randomNormal'});
  layer.build(shape);
  const [gamma, beta] = layer.getWeights() as [tf.Tensor1D, tf.Tensor1D];
  const x = tf.tensor3d(rand(shape, 2, 3), shape), w = tf.tensor3d(rand(shape, 1, 7), shape);
  const ours = await values(layerNormAll(x, gamma, beta, w, 1e-5));
  const stock = await valuesOf(() => [layer.apply(x) as tf.Tensor,
    tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(layer.apply(xx) as tf.Tensor, w)))(x)]);
  expectBelowOverUnit([ours[0]], [stock[0]], 1e-5, 'layerNorm vs tfjs-layers', ['y']);
  expectBelowOverUnit([ours[1]], [stock[1]], 1e-4, 'layerNorm vs tfjs-layers', ['dx']);
  tf.dispose([x, w, gamma, beta]);
}
