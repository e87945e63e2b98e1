/**
 * The AdamW update ops (tfjs-core `op()`s): `adamWUpdate` (new tensors) and
 * `adamWUpdateVariables` (assigns), each
 * running the KArAtAdamW / KArAtAdamWInPlace kernel of the active backend when one is
 * registered, else a composite of stock tfjs ops with the same math.
 */
import * as tf from '@tensorflow/tfjs-core';
import {op} from '@tensorflow/tfjs-core';

import {hasFusedKernel} from './flags';
import {KArAtAdamW, KArAtAdamWInPlace} from './kernel_names';
import {checkTensor, KArAtArgumentError} from './validate';


/** Hyper-parameters of one AdamW step (PyTorch AdamW: decay applied to p before the Adam step). */
export interface AdamWUpdateAttrs {
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  /** Decoupled weight decay (0 = plain Adam). */
  weightDecay: number;
  /** 1-based step number (for the bias corrections 1 - β^t). */
  step: number;
}

// ------------------------------------------------------------------ AdamW

/** Bias corrections and decay factor of one step, as the kernels use them. */
export function adamWScalars(a: AdamWUpdateAttrs) {
  return {
    bc1: 1 - Math.pow(a.beta1, a.step),
    bc2: 1 - Math.pow(a.beta2, a.step),
    decay: 1 - a.learningRate * a.weightDecay,
  };
}

export function compositeAdamW(param: tf.Tensor, m: tf.Tensor, v: tf.Tensor, grad: tf.Tensor,
                               a: AdamWUpdateAttrs): [tf.Tensor, tf.Tensor, tf.Tensor] {
  return tf.tidy(() => {
    const {bc1, bc2, decay} = adamWScalars(a);
    const m1 = tf.add(tf.mul(m, a.beta1), tf.mul(grad, 1 - a.beta1));
    const v1 = tf.add(tf.mul(v, a.beta2), tf.mul(tf.square(grad), 1 - a.beta2));
    const upd = tf.div(tf.div(m1, bc1), tf.add(tf.sqrt(tf.div(v1, bc2)), a.epsilon));
    const p1 = tf.sub(decay === 1 ? param : tf.mul(param, decay), tf.mul(upd, a.learningRate));
    return [p1, m1, v1];
  });
}

const ADAMW_KEYS = ['learningRate', 'beta1', 'beta2', 'epsilon', 'weightDecay', 'step'] as const;

/** The hyper-parameters (and nothing else of `attrs`) as the attrs of the AdamW kernels. */
function kernelAttrs(attrs: AdamWUpdateAttrs): never {
  const a: Record<string, number> = {};
  for (const k of ADAMW_KEYS) a[k] = attrs[k];
  return a as never;
}

function checkAdamWAttrs(a: AdamWUpdateAttrs) {
  const name = 'adamWUpdate';
  if (a != null && typeof a === 'object') {
    for (const k of Object.keys(a)) {
      if (!(ADAMW_KEYS as readonly string[]).includes(k)) {
        throw new KArAtArgumentError(`${name}: unknown hyper-parameter '${k}'; the hyper-parameters are ${ADAMW_KEYS.join(', ')}`);
      }
    }
  }
  for (const k of ADAMW_KEYS) {
    if (typeof a?.[k] !== 'number' || !Number.isFinite(a[k])) {
      throw new KArAtArgumentError(`${name}: hyper-parameter '${k}' must be a finite number, got ${String(a?.[k])}`);
    }
  }
  if (!(a.beta1 >= 0 && a.beta1 < 1) || !(a.beta2 >= 0 && a.beta2 < 1)) {
    throw new KArAtArgumentError(`${name}: beta1 and beta2 must be in [0, 1), got ${a.beta1}, ${a.beta2}`);
  }
  if (!Number.isInteger(a.step) || a.step < 1) {
    throw new KArAtArgumentError(`${name}: 'step' must be an integer >= 1, got ${a.step}`);
  }
}

/**
 * One AdamW step for one parameter: returns [param', m', v'] (new tensors; the caller assigns
 * them to its variables). m' = β1 m + (1-β1) g; v' = β2 v + (1-β2) g²;
 * param' = param·(1 - lr·wd) - lr · (m'/(1-β1^t)) / (sqrt(v'/(1-β2^t)) + ε).
 * Three dispatches with the webgpu kernel (about 14 from stock ops).
 */
function adamWUpdate_(param: tf.Tensor, m: tf.Tensor, v: tf.Tensor, grad: tf.Tensor,
                      attrs: AdamWUpdateAttrs): [tf.Tensor, tf.Tensor, tf.Tensor] {
  const name = 'adamWUpdate';
  const names = param instanceof tf.Tensor ? param.shape.map((_, i) => `d${i}`) : ['...'];
  const p = checkTensor(name, 'param', param, names);
  for (const [n, t] of [['m', m], ['v', v], ['grad', grad]] as const) checkTensor(name, n, t, names, p.shape);
  checkAdamWAttrs(attrs);
  if (hasFusedKernel(KArAtAdamW)) {
    const out = tf.engine().runKernel(KArAtAdamW, {param: p, m, v, grad}, kernelAttrs(attrs)) as unknown as tf.Tensor[];
    return [out[0], out[1], out[2]];
  }
  return compositeAdamW(p, m, v, grad, attrs);
}
export const adamWUpdate = op({adamWUpdate_});

/**
 * One AdamW step applied to variables: param, m and v are assigned their new values. On webgpu
 * the kernel updates the three buffers in place with ONE dispatch when no other tensor shares
 * them (otherwise, and on other backends, it is adamWUpdate followed by assign). The optimizer
 * of src/training can call this per parameter.
 */
function adamWUpdateVariables_(param: tf.Variable, m: tf.Variable, v: tf.Variable, grad: tf.Tensor,
                               attrs: AdamWUpdateAttrs): void {
  const name = 'adamWUpdateVariables';
  for (const [n, t] of [['param', param], ['m', m], ['v', v]] as const) {
    if (!(t instanceof tf.Variable)) throw new KArAtArgumentError(`${name}: argument '${n}' must be a tf.Variable`);
  }
  const names = param.shape.map((_, i) => `d${i}`);
  for (const [n, t] of [['m', m], ['v', v], ['grad', grad]] as const) checkTensor(name, n, t, names, param.shape);
  checkTensor(name, 'param', param, names);
  checkAdamWAttrs(attrs);
  tf.tidy(() => {
    let out: tf.Tensor[];
    if (hasFusedKernel(KArAtAdamWInPlace)) {
      out = tf.engine().runKernel(KArAtAdamWInPlace, {param, m, v, grad}, kernelAttrs(attrs)) as unknown as tf.Tensor[];
    } else {
      out = compositeAdamW(param, m, v, grad, attrs);
    }
    param.assign(out[0]);
    m.assign(out[1]);
    v.assign(out[2]);
  });
}
export const adamWUpdateVariables = op({adamWUpdateVariables_});
