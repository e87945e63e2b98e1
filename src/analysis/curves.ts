/**
 * Learned activation curves φ̂_pq(x) of a KArAt operator, for chosen (head, p, q), over a range
 * of x (typically the observed range of the scores S). Works for every basis of src/bases:
 * the operator's parameters are sliced to the single input token q (the token axis of each
 * parameter is found by comparing the basis' parameter shapes for N and N + 1 tokens), and the
 * basis evaluates a one-token operator on scores [X, h, 1, 1] whose image k holds x_k, so
 * ĥ[k, head, 0, p] = φ̂_pq(x_k) exactly (base activation term w_b·b(x) included).
 * The Shannon basis multiplies by a Hamming window over token positions, which a one-token
 * operator does not see; that window weight of q is applied explicitly.
 *
 * For Fourier, `fourierCurve` evaluates Σ_m A cos(m x) + B sin(m x) directly from the
 * coefficient values (float64), the reference the general path is tested against.
 */
import * as tf from '@tensorflow/tfjs-core';

import {getBasis, KArAtOperatorConfig, ResolvedOperatorConfig, resolveOperatorConfig} from '../bases/index';
import {KArAtArgumentError} from '../../core/validate';

export interface CurvePair {
  head: number;
  /** Output index p (0 <= p < r; < N for rank 'full'). */
  p: number;
  /** Input token index q (0 <= q < N). */
  q: number;
}

export interface ActivationCurve extends CurvePair {
  x: Float64Array;
  y: Float64Array;
}

/** `count` evenly spaced values from lo to hi inclusive. */
export function linspace(lo: number, hi: number, count: number): Float64Array {
  if (!Number.isInteger(count) || count < 2) throw new KArAtArgumentError(`linspace: count must be an integer >= 2, got ${count}`);
  return Float64Array.from({length: count}, (_, k) => lo + (hi - lo) * k / (count - 1));
}

/**
 * φ̂_pq(x) of a Fourier operator from its coefficient values: `coeffs` holds the contract's
 * [h, 2, r, N, G] tensor as a flat row-major array.
 */
export function fourierCurve(coeffs: ArrayLike<number>, shape: number[], pair: CurvePair,
                             xs: ArrayLike<number>): Float64Array {
  const [h, two, r, N, G] = shape;
  if (two !== 2 || coeffs.length !== h * 2 * r * N * G) {
    throw new KArAtArgumentError(`fourierCurve: 'coeffs' must hold [h, 2, r, N, G] values, got shape [${shape}] with ${coeffs.length} values`);
  }
  checkPair('fourierCurve', pair, h, r, N);
  const at = (ab: number, m: number) => coeffs[(((pair.head * 2 + ab) * r + pair.p) * N + pair.q) * G + m];
  return Float64Array.from(xs, x => {
    let acc = 0;
    for (let m = 0; m < G; m++) acc += at(0, m) * Math.cos((m + 1) * x) + at(1, m) * Math.sin((m + 1) * x);
    return acc;
  });
}

function checkPair(op: string, pair: CurvePair, h: number, R: number, N: number) {
  const bad = (name: string, v: number, n: number) =>
      !Number.isInteger(v) || v < 0 || v >= n ?
      `${op}: ${name} must be an integer in [0, ${n - 1}], got ${v}` : null;
  const msg = bad('head', pair.head, h) ?? bad('p', pair.p, R) ?? bad('q', pair.q, N);
  if (msg) throw new KArAtArgumentError(msg);
}

/** Index of the token axis of each parameter of `cfg`'s basis (plus 'baseWeight'). */
export function tokenAxes(cfg: ResolvedOperatorConfig, heads: number, tokens: number): Record<string, number> {
  const R = cfg.rank === 'full' ? tokens : cfg.rank;
  const basis = getBasis(cfg.basis);
  const a = basis.params(cfg, {heads, tokens, outputs: R});
  const b = basis.params(cfg, {heads, tokens: tokens + 1, outputs: R});
  const out: Record<string, number> = {};
  a.forEach((spec, i) => {
    const diff = spec.shape.map((d, k) => (d !== b[i].shape[k] ? k : -1)).filter(k => k >= 0);
    if (diff.length !== 1) {
      throw new KArAtArgumentError(
          `activationCurves: cannot find the token axis of parameter '${spec.name}' of basis '${cfg.basis}'`);
    }
    out[spec.name] = diff[0];
  });
  if (cfg.baseActivation !== 'zero') out.baseWeight = 2;  // [h, R, N]
  return out;
}

function baseFn(name: string, x: number): number {
  if (name === 'silu') return x / (1 + Math.exp(-x));
  if (name === 'identity') return x;
  return 0;
}

/**
 * φ̂_pq(x) for each pair at each x, for an operator with configuration `config` and parameter
 * tensors `params` (e.g. KArAtOperator.params(): coeffs [h,2,r,N,G], proj, ...).
 */
export function activationCurves(
    config: KArAtOperatorConfig | ResolvedOperatorConfig, params: Record<string, tf.Tensor>,
    pairs: CurvePair[], xs: ArrayLike<number>): ActivationCurve[] {
  const cfg = resolveOperatorConfig(config as KArAtOperatorConfig, 'config');
  const basis = getBasis(cfg.basis);
  const first = basis.params(cfg, {heads: 1, tokens: 1, outputs: 1})[0];
  const ref = params?.[first.name];
  if (!(ref instanceof tf.Tensor)) {
    throw new KArAtArgumentError(`activationCurves: params.${first.name} must be a tf.Tensor (basis '${cfg.basis}')`);
  }
  const axes0 = tokenAxes(cfg, 1, 1);
  const heads = ref.shape[0];
  const tokens = ref.shape[axes0[first.name]];
  const R = cfg.rank === 'full' ? tokens : cfg.rank;
  const axes = tokenAxes(cfg, heads, tokens);
  const specs = basis.params(cfg, {heads, tokens, outputs: R});
  for (const s of specs) {
    const t = params[s.name];
    if (!(t instanceof tf.Tensor) || t.shape.join() !== s.shape.join()) {
      throw new KArAtArgumentError(
          `activationCurves: params.${s.name} must have shape [${s.shape}], got ${t instanceof tf.Tensor ? `[${t.shape}]` : typeof t}`);
    }
  }
  if (cfg.baseActivation !== 'zero' && !(params.baseWeight instanceof tf.Tensor)) {
    throw new KArAtArgumentError(`activationCurves: params.baseWeight is required for baseActivation '${cfg.baseActivation}'`);
  }
  pairs.forEach(pr => checkPair('activationCurves', pr, heads, R, tokens));
  const X = xs.length;
  if (X < 1) throw new KArAtArgumentError('activationCurves: xs must not be empty');
  const xArr = Float64Array.from(xs);
  const byQ = new Map<number, Float32Array>();  // q -> values [X, h, 1, R]
  const baseW = cfg.baseActivation !== 'zero' ? params.baseWeight.arraySync() as number[][][] : null;
  for (const q of new Set(pairs.map(p => p.q))) {
    const values = tf.tidy(() => {
      const sliced: Record<string, tf.Tensor> = {};
      for (const s of specs) {
        const t = params[s.name];
        const begin = t.shape.map(() => 0), size = t.shape.map(() => -1);
        begin[axes[s.name]] = q;
        size[axes[s.name]] = 1;
        sliced[s.name] = tf.slice(t, begin, size);
      }
      // Scores [X, h, 1, 1]: one 1 x 1 "attention matrix" per x (the contract wants N x N).
      const col = tf.tensor4d(Float32Array.from(xArr), [X, 1, 1, 1]);
      const scores = tf.tile(col, [1, heads, 1, 1]) as tf.Tensor4D;
      return basis.hidden(scores, sliced, cfg, {heads, tokens: 1, outputs: R});  // [X, h, 1, R]
    });
    byQ.set(q, values.dataSync() as Float32Array);
    values.dispose();
  }
  const window = (q: number) =>
      cfg.basis === 'shannon' && tokens > 1 ? 0.54 - 0.46 * Math.cos(2 * Math.PI * q / (tokens - 1)) : 1;
  return pairs.map(pr => {
    const v = byQ.get(pr.q)!;
    const w = window(pr.q);
    const y = Float64Array.from({length: X}, (_, k) => {
      let val = v[(k * heads + pr.head) * R + pr.p] * w;
      if (baseW) val += baseW[pr.head][pr.p][pr.q] * baseFn(cfg.baseActivation, xArr[k]);
      return val;
    });
    return {...pr, x: Float64Array.from(xArr), y};
  });
}
