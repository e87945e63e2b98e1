/**
 * AdamW (Loshchilov & Hutter) with decoupled weight decay, parameter groups (decay on/off,
 * learning-rate multiplier) and serialisable state. The update per parameter p with
 * gradient g at step t (1-based), learning rate lr:
 *
 *     m = β1 m + (1-β1) g;  v = β2 v + (1-β2) g²
 *     p = p - lr·wd·p - lr · (m / (1-β1^t)) / (sqrt(v / (1-β2^t)) + ε)
 *
 * (weight decay applied to p before the Adam step, as PyTorch's AdamW does.)
 *
 * The update rule is core/adamw.ts's: on webgpu (flag KARAT_FUSED_LAYERS on) each parameter's
 * update is the fused `adamWUpdateVariables` kernel (param, m and v updated in place by one
 * dispatch instead of ~14 stock kernels); elsewhere its composite of stock ops,
 * `compositeAdamW`, followed by assign.
 */
import * as tf from '@tensorflow/tfjs-core';

import {AdamWUpdateAttrs, adamWUpdateVariables, compositeAdamW} from '../../core/adamw';
import {fusedLayerKernelOn} from '../../core/flags';
import {KArAtAdamWInPlace} from '../../core/kernel_names';

export interface ParamGroupRule {
  /** Apply weight decay to this parameter. */
  decay: boolean;
  /** Multiplies the scheduled learning rate (e.g. a separate KArAt learning rate). */
  lrScale: number;
  /** A label for logs ('decay', 'no_decay', 'karat', ...). */
  group: string;
}

export interface AdamWConfig {
  beta1: number;
  beta2: number;
  epsilon: number;
  weightDecay: number;
}

export const DEFAULT_ADAMW: AdamWConfig = {beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.05};

export interface Param {
  name: string;
  variable: tf.Variable;
  rule: ParamGroupRule;
}

/** Serialised optimiser state: JSON-able meta plus one Float32Array (m then v of each param). */
export interface AdamWState {
  meta: {step: number, config: AdamWConfig, params: Array<{name: string, shape: number[], group: string}>};
  data: Float32Array;
}

export class AdamW {
  readonly config: AdamWConfig;
  step = 0;
  private m: tf.Variable[];
  private v: tf.Variable[];

  constructor(readonly params: Param[], config: Partial<AdamWConfig> = {}) {
    this.config = {...DEFAULT_ADAMW, ...config};
    const names = new Set<string>();
    for (const p of params) {
      if (names.has(p.name)) throw new Error(`AdamW: duplicate parameter name '${p.name}'`);
      names.add(p.name);
    }
    // In a tidy so that each state buffer has one reference (its variable): the in-place kernel needs that.
    const zeros = (p: Param) => tf.tidy(() => tf.variable(tf.zerosLike(p.variable), false));
    this.m = params.map(zeros);
    this.v = params.map(zeros);
  }

  /** Applies one update with `grads` (same order as params) at learning rate `lr`. */
  apply(grads: tf.Tensor[], lr: number): void {
    if (grads.length !== this.params.length) {
      throw new Error(`AdamW.apply: ${grads.length} gradients for ${this.params.length} parameters`);
    }
    this.step++;
    const {beta1, beta2, epsilon, weightDecay} = this.config;
    const fused = fusedLayerKernelOn(KArAtAdamWInPlace);
    this.params.forEach((p, i) => {
      const attrs: AdamWUpdateAttrs = {
        learningRate: lr * p.rule.lrScale, beta1, beta2, epsilon, weightDecay: p.rule.decay ? weightDecay : 0, step: this.step,
      };
      if (fused) {
        adamWUpdateVariables(p.variable, this.m[i], this.v[i], grads[i], attrs);
        return;
      }
      tf.tidy(() => {
        const [p1, m1, v1] = compositeAdamW(p.variable, this.m[i], this.v[i], grads[i], attrs);
        this.m[i].assign(m1);
        this.v[i].assign(v1);
        p.variable.assign(p1);
      });
    });
  }

  async getState(): Promise<AdamWState> {
    const total = this.params.reduce((a, p) => a + 2 * p.variable.size, 0);
    const data = new Float32Array(total);
    let o = 0;
    for (let i = 0; i < this.params.length; i++) {
      for (const t of [this.m[i], this.v[i]]) {
        const d = await t.data() as Float32Array;
        data.set(d, o);
        o += d.length;
      }
    }
    return {
      meta: {step: this.step, config: this.config, params: this.params.map((p) => ({name: p.name, shape: p.variable.shape, group: p.rule.group}))},
      data,
    };
  }

  /** Restores state saved by getState(); parameter names and shapes must match. */
  setState(state: AdamWState): void {
    const ps = state.meta.params;
    if (ps.length !== this.params.length) {
      throw new Error(`optimizer state has ${ps.length} parameters, the model has ${this.params.length}`);
    }
    ps.forEach((s, i) => {
      const p = this.params[i];
      if (s.name !== p.name || s.shape.join(',') !== p.variable.shape.join(',')) {
        throw new Error(`optimizer state parameter ${i} is '${s.name}' [${s.shape}], the model has '${p.name}' [${p.variable.shape}]`);
      }
    });
    let o = 0;
    for (let i = 0; i < this.params.length; i++) {
      const n = this.params[i].variable.size, shape = this.params[i].variable.shape;
      for (const t of [this.m[i], this.v[i]]) {
        tf.tidy(() => t.assign(tf.tensor(state.data.subarray(o, o + n), shape)));
        o += n;
      }
    }
    if (o !== state.data.length) throw new Error(`optimizer state has ${state.data.length} values, expected ${o}`);
    this.step = state.meta.step;
  }

  dispose(): void {
    tf.dispose([...this.m, ...this.v]);
  }
}

/**
 * Sum of same-shape tensors by addN over groups of at most 7: a WebGPU program may bind 8
 * storage buffers (7 inputs + the output), and tfjs-backend-webgpu's AddN does not split larger
 * lists (its pipeline is invalid and the sum is silently lost).
 */
export function sumTensors(ts: tf.Tensor[]): tf.Tensor {
  if (ts.length === 0) throw new Error('sumTensors: empty list');
  let xs = ts;
  while (xs.length > 1) {
    const next: tf.Tensor[] = [];
    for (let i = 0; i < xs.length; i += 7) {
      const group = xs.slice(i, i + 7);
      next.push(group.length === 1 ? group[0] : tf.addN(group));
    }
    xs = next;
  }
  return xs[0];
}

/** Global L2 norm of a list of gradients (one scalar download). */
export function globalNorm(grads: tf.Tensor[]): tf.Scalar {
  return tf.tidy(() => tf.sqrt(sumTensors(grads.map((g) => tf.sum(tf.square(g))))) as tf.Scalar);
}

/**
 * Clips gradients by global norm: g * min(1, maxNorm / (norm + 1e-6)). Returns the new
 * gradients (the inputs are not disposed) and the norm before clipping.
 */
export function clipByGlobalNorm(grads: tf.Tensor[], maxNorm: number): {grads: tf.Tensor[], norm: tf.Scalar} {
  const norm = globalNorm(grads);
  if (!(maxNorm > 0)) return {grads: grads.map((g) => tf.clone(g)), norm};
  const out = tf.tidy(() => {
    const scale = tf.minimum(tf.scalar(1), tf.div(tf.scalar(maxNorm), tf.add(norm, 1e-6)));
    return grads.map((g) => tf.mul(g, scale));
  });
  return {grads: out, norm};
}
