/**
 * Configuration of a general KArAt operator (spec §1, §5) and the interface every basis
 * implements. To add a basis: write a file exporting a `Basis` in this folder and add it to
 * `registry.ts` (or call `registerBasis` from user code).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

import {KArAtArgumentError} from '../../core/validate';

export type Initializer = ReturnType<typeof tfl.initializers.ones>;

export const BASIS_NAMES =
    ['fourier', 'rational', 'mexican_hat', 'morlet', 'dog', 'meyer', 'shannon', 'bspline'] as const;
export type BasisName = typeof BASIS_NAMES[number];
export const BASE_ACTIVATIONS = ['zero', 'silu', 'identity'] as const;
export type BaseActivationName = typeof BASE_ACTIVATIONS[number];

/** User-facing operator configuration; every field optional. */
export interface KArAtOperatorConfig {
  /** Basis of the learnable univariate functions φ̂_pq. Default 'fourier'. */
  basis?: BasisName;
  /** Grid size G (Fourier harmonics; B-spline intervals). Default 3. */
  grid?: number;
  /** Rank r of the modular operator, or 'full' for the N x N operator without W. Default 12. */
  rank?: number | 'full';
  /** Base activation b(x) added to every φ̂: 'zero' (default), 'silu' or 'identity'. */
  baseActivation?: BaseActivationName;
  /** Rational basis degrees (m, n) of numerator and denominator. Default [3, 3]. */
  rationalOrder?: [number, number];
  /** B-spline order k. Default 3. */
  splineOrder?: number;
  /** B-spline grid range [lo, hi]. Default [-1, 1]. */
  gridRange?: [number, number];
  /**
   * Coefficient initialisation: 'scaled' = Normal(0, 1/(N·G)) (default; Fourier-KAN scaling,
   * ĥ has O(1) variance), 'normal' = Normal(0, 1) as in the paper's table.
   */
  init?: 'scaled' | 'normal';
  /** Back-projection W initialisation: 'normal' = Normal(0, 1/r) (default) or 'glorot'. */
  projInit?: 'normal' | 'glorot';
  /** Seed for the initialisers (optional; unseeded when absent). */
  seed?: number;
}

export interface ResolvedOperatorConfig {
  basis: BasisName;
  grid: number;
  rank: number | 'full';
  baseActivation: BaseActivationName;
  rationalOrder: [number, number];
  splineOrder: number;
  gridRange: [number, number];
  init: 'scaled' | 'normal';
  projInit: 'normal' | 'glorot';
  seed: number | null;
}

/** One learnable tensor of an operator. */
export interface KArAtParamSpec {
  name: string;
  shape: number[];
  initializer: Initializer;
}

/** Sizes of one operator set. `outputs` is r, or N for rank 'full'. */
export interface OperatorDims {
  heads: number;
  tokens: number;
  outputs: number;
}

/** A family of learnable univariate functions φ̂_pq (without the base activation). */
export interface Basis {
  readonly name: string;
  /** Learnable tensors (besides proj and baseWeight), with shapes and initialisers. */
  params(cfg: ResolvedOperatorConfig, d: OperatorDims): KArAtParamSpec[];
  /** ĥ[b,h,i,p] = Σ_q φ̂_pq(S[b,h,i,q]) (no base term), shape [B, h, N, outputs]. */
  hidden(scores: tf.Tensor4D, params: Record<string, tf.Tensor>, cfg: ResolvedOperatorConfig,
         d: OperatorDims): tf.Tensor4D;
}

/** Keys accepted in an attention-activation config that belong to the layer, not the operator. */
const LAYER_KEYS = new Set(['type', 'mode']);
const OPERATOR_KEYS = new Set([
  'basis', 'grid', 'rank', 'baseActivation', 'rationalOrder', 'splineOrder', 'gridRange', 'init',
  'projInit', 'seed',
]);

function isPosInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1;
}

/** Fills defaults and validates; errors name `${argName}.${field}`. */
export function resolveOperatorConfig(
    cfg: KArAtOperatorConfig = {}, argName = 'attentionActivation'): ResolvedOperatorConfig {
  const fail = (field: string, what: string, got: unknown) => {
    throw new KArAtArgumentError(`${argName}.${field} must be ${what}, got ${JSON.stringify(got)}`);
  };
  if (cfg == null || typeof cfg !== 'object') {
    throw new KArAtArgumentError(`${argName} must be an object, got ${JSON.stringify(cfg)}`);
  }
  for (const k of Object.keys(cfg)) {
    if (!OPERATOR_KEYS.has(k) && !LAYER_KEYS.has(k)) {
      throw new KArAtArgumentError(
          `${argName} has an unknown key '${k}'; known keys: ${[...OPERATOR_KEYS, ...LAYER_KEYS].join(', ')}`);
    }
  }
  const out: ResolvedOperatorConfig = {
    basis: cfg.basis ?? 'fourier',
    grid: cfg.grid ?? 3,
    rank: cfg.rank ?? 12,
    baseActivation: cfg.baseActivation ?? 'zero',
    rationalOrder: cfg.rationalOrder ?? [3, 3],
    splineOrder: cfg.splineOrder ?? 3,
    gridRange: cfg.gridRange ?? [-1, 1],
    init: cfg.init ?? 'scaled',
    projInit: cfg.projInit ?? 'normal',
    seed: cfg.seed ?? null,
  };
  if (!(BASIS_NAMES as readonly string[]).includes(out.basis)) {
    fail('basis', `one of ${BASIS_NAMES.join(', ')}`, out.basis);
  }
  if (!isPosInt(out.grid)) fail('grid', 'an integer >= 1', out.grid);
  if (out.rank !== 'full' && !isPosInt(out.rank)) fail('rank', "an integer >= 1 or 'full'", out.rank);
  if (!(BASE_ACTIVATIONS as readonly string[]).includes(out.baseActivation)) {
    fail('baseActivation', `one of ${BASE_ACTIVATIONS.join(', ')}`, out.baseActivation);
  }
  const ro = out.rationalOrder;
  if (!Array.isArray(ro) || ro.length !== 2 || !Number.isInteger(ro[0]) || ro[0] < 0 ||
      !Number.isInteger(ro[1]) || ro[1] < 0) {
    fail('rationalOrder', '[m, n] with integers m >= 0, n >= 0', ro);
  }
  if (!Number.isInteger(out.splineOrder) || out.splineOrder < 0) {
    fail('splineOrder', 'an integer >= 0', out.splineOrder);
  }
  const gr = out.gridRange;
  if (!Array.isArray(gr) || gr.length !== 2 || !Number.isFinite(gr[0]) || !Number.isFinite(gr[1]) ||
      !(gr[0] < gr[1])) {
    fail('gridRange', '[lo, hi] with finite lo < hi', gr);
  }
  if (out.init !== 'scaled' && out.init !== 'normal') fail('init', "'scaled' or 'normal'", out.init);
  if (out.projInit !== 'normal' && out.projInit !== 'glorot') {
    fail('projInit', "'normal' or 'glorot'", out.projInit);
  }
  if (out.seed != null && !Number.isFinite(out.seed)) fail('seed', 'a finite number', out.seed);
  return out;
}

/** Normal(0, stddev) initialiser honouring cfg.seed (offset so tensors differ). */
export function normalInit(cfg: ResolvedOperatorConfig, stddev: number, seedOffset: number): Initializer {
  return tfl.initializers.randomNormal(
      {mean: 0, stddev, seed: cfg.seed == null ? undefined : cfg.seed + seedOffset});
}

/** Coefficient stddev for a linear basis with `perInput` functions per (p, q). */
export function coeffStd(cfg: ResolvedOperatorConfig, tokens: number, perInput: number): number {
  return cfg.init === 'normal' ? 1 : 1 / Math.sqrt(tokens * perInput);
}
