/**
 * The Fourier-KArAt op cases, written once and run on every backend (tfjs's
 * describeWithFlags pattern): test/ops.test.ts checks the CPU kernel against the float64
 * reference on these cases; test/wasm_kernels.test.ts checks both wasm paths against the same
 * reference and the CPU kernel; test/webgpu_kernels.test.ts (Node, Dawn) and
 * test/browser/ops.browser.ts (webgl and webgpu in Chromium) check each GPU backend against
 * the CPU kernel in the same process with describeOpCases(backend, ...).
 *
 * Browser-safe (bundled into the karma suites): tfjs and mocha's globals only.
 */
import * as tf from '@tensorflow/tfjs-core';

import {fourierKArAtGrad, fourierKArAtHidden} from '../../src/index';
import {expectClose, normalish, uniform} from '../browser/util';

export interface OpCase {B: number; h: number; N: number; r: number; G: number; smax?: number}

/**
 * Every value of each axis appears: N ∈ {1, 7, 9, 17, 65, 197} (partial tiles), r ∈ {1, 3, 5,
 * 7, 12, 20} (r = 20: two p-tiles on webgpu), G from 1 to 10 (G = 8 is the largest fused
 * webgl grid, G = 9 falls back to the composite there; G = 10 is two harmonic blocks on
 * webgpu), B·h up to 8, and scores far from 0 (sin/cos range reduction).
 */
export const OP_CASES: OpCase[] = [
  {B: 1, h: 1, N: 1, r: 1, G: 1},
  {B: 2, h: 3, N: 1, r: 12, G: 5},
  {B: 2, h: 3, N: 7, r: 5, G: 2},
  {B: 4, h: 2, N: 7, r: 12, G: 3},
  {B: 2, h: 4, N: 7, r: 1, G: 3},
  {B: 3, h: 1, N: 7, r: 5, G: 8},
  {B: 2, h: 2, N: 7, r: 3, G: 9},
  {B: 1, h: 2, N: 9, r: 20, G: 2},
  {B: 2, h: 1, N: 9, r: 7, G: 10},
  {B: 2, h: 1, N: 17, r: 12, G: 4},
  {B: 2, h: 3, N: 65, r: 12, G: 3},
  {B: 1, h: 1, N: 65, r: 1, G: 5},
  {B: 1, h: 2, N: 65, r: 12, G: 3, smax: 40},
  {B: 1, h: 2, N: 197, r: 12, G: 3},
  {B: 2, h: 1, N: 197, r: 1, G: 1},
  {B: 1, h: 1, N: 197, r: 12, G: 5},
];

export function caseLabel(c: OpCase): string {
  return `B${c.B} h${c.h} N${c.N} r${c.r} G${c.G}` + (c.smax ? ` |S|<=${c.smax}` : '');
}

export interface OpInputs {scores: Float32Array; coeffs: Float32Array; weight: Float32Array}

/** Deterministic inputs: scores uniform in ±smax (3), coeffs ~ 1/√(N·G), weight (dy) ~ 1. */
export function opInputs(c: OpCase, seed: number): OpInputs {
  const smax = c.smax ?? 3;
  return {
    scores: uniform(c.B * c.h * c.N * c.N, -smax, smax, seed),
    coeffs: normalish(c.h * 2 * c.r * c.N * c.G, 1 / Math.sqrt(c.N * c.G), seed + 1),
    weight: normalish(c.B * c.h * c.N * c.r, 1, seed + 2),
  };
}

export interface OpResult {hidden: Float32Array; dScores: Float32Array; dCoeffs: Float32Array}

/** ĥ and the gradients of sum(ĥ · weight) w.r.t. scores and coeffs, on the active backend. */
export async function runOp(c: OpCase, d: OpInputs): Promise<OpResult> {
  const s = tf.tensor4d(d.scores, [c.B, c.h, c.N, c.N]);
  const k = tf.tensor5d(d.coeffs, [c.h, 2, c.r, c.N, c.G]);
  const w = tf.tensor4d(d.weight, [c.B, c.h, c.N, c.r]);
  try {
    const hidden = fourierKArAtHidden(s, k);
    const [dS, dC] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.mul(fourierKArAtHidden(a as tf.Tensor4D, b as tf.Tensor5D), w)))([s, k]);
    const out = {
      hidden: await hidden.data() as Float32Array,
      dScores: await dS.data() as Float32Array,
      dCoeffs: await dC.data() as Float32Array,
    };
    tf.dispose([hidden, dS, dC]);
    return out;
  } finally {
    tf.dispose([s, k, w]);
  }
}

/** dScores, dCoeffs of sum(ĥ² · weight) through tf.grads (a non-linear loss), on the active backend. */
export async function squaredHiddenGrads(c: OpCase, d: OpInputs): Promise<Float32Array[]> {
  const outs = tf.tidy(() => {
    const s = tf.tensor4d(d.scores, [c.B, c.h, c.N, c.N]);
    const k = tf.tensor5d(d.coeffs, [c.h, 2, c.r, c.N, c.G]);
    const wt = tf.tensor4d(d.weight, [c.B, c.h, c.N, c.r]);
    const f = (x: tf.Tensor, y: tf.Tensor) =>
        tf.sum(tf.mul(tf.square(fourierKArAtHidden(x as tf.Tensor4D, y as tf.Tensor5D)), wt));
    return tf.grads(f)([s, k]);
  });
  const vals = await Promise.all(outs.map((t) => t.data() as Promise<Float32Array>));
  tf.dispose(outs);
  return vals;
}

/**
 * Runs ĥ, FourierKArAtGrad and tf.grads through ĥ on the active backend once (so whatever the
 * backend compiles is compiled), then `repeats` more times and once inside each of `variants`
 * (a flag flipped, say), and throws if engine tensors or the backend's data ids grew.
 */
export async function expectOpRunsLeakNothing(c: OpCase, d: OpInputs, repeats: number,
                                              variants: Array<(run: () => Promise<void>) => Promise<void>> = []): Promise<void> {
  const s = tf.tensor4d(d.scores, [c.B, c.h, c.N, c.N]);
  const k = tf.tensor5d(d.coeffs, [c.h, 2, c.r, c.N, c.G]);
  const g = tf.tensor4d(d.weight, [c.B, c.h, c.N, c.r]);
  try {
    const run = async () => {
      const outs = tf.tidy(() => [fourierKArAtHidden(s, k), ...fourierKArAtGrad(g, s, k)]);
      await Promise.all(outs.map((t) => t.data()));
      tf.dispose(outs);
      const grads = tf.grads((x: tf.Tensor, y: tf.Tensor) =>
          tf.sum(fourierKArAtHidden(x as tf.Tensor4D, y as tf.Tensor5D)))([s, k]);
      await Promise.all(grads.map((t) => t.data()));
      tf.dispose(grads);
    };
    await run();
    const tensors = tf.memory().numTensors;
    const dataIds = tf.backend().numDataIds();
    for (let i = 0; i < repeats; i++) await run();
    for (const v of variants) await v(run);
    if (tf.memory().numTensors !== tensors) throw new Error(`engine tensors leaked: ${tf.memory().numTensors - tensors}`);
    if (tf.backend().numDataIds() !== dataIds) throw new Error(`${tf.getBackend()} buffers leaked: ${tf.backend().numDataIds() - dataIds}`);
  } finally {
    tf.dispose([s, k, g]);
  }
}

export interface OpSuiteOptions {
  /** Makes `backend` available; resolves to null, or to why it cannot run here (the suite skips). */
  start(): Promise<string | null>;
  /** |got − cpu| ≤ atolRel·max|cpu| + rtol·|cpu| elementwise, per case (default: 2e-5, 0). */
  tolerance?(c: OpCase): {rtol: number, atolRel: number};
  cases?: OpCase[];
}

/**
 * One mocha suite: every case's forward and both gradients on `backend` against the CPU kernel
 * in the same process, with no tensor leaked on `backend`.
 */
export function describeOpCases(backend: string, options: OpSuiteOptions): void {
  const tolerance = options.tolerance ?? (() => ({rtol: 0, atolRel: 2e-5}));
  describe(`Fourier-KArAt op cases on ${backend} match the CPU kernel`, function() {
    before(async function() {
      const why = await options.start();
      if (why != null) {
        console.warn(`!!! SKIPPED: backend ${backend} is not available here: ${why}`);
        this.skip();
      }
    });

    (options.cases ?? OP_CASES).forEach((c, i) => {
      const label = caseLabel(c);
      it(`${label}: forward, dScores and dCoeffs`, async function() {
        const d = opInputs(c, 1000 + 17 * i);
        await tf.setBackend('cpu');
        const ref = await runOp(c, d);
        await tf.setBackend(backend);
        const startTensors = tf.memory().numTensors;
        const got = await runOp(c, d);
        const leaked = tf.memory().numTensors - startTensors;
        const {rtol, atolRel} = tolerance(c);
        await tf.setBackend('cpu');
        if (leaked !== 0) throw new Error(`leaked ${leaked} tensors on ${backend}`);
        const errors = (['hidden', 'dScores', 'dCoeffs'] as const).map((k) =>
            expectClose(`${backend} ${k} ${label}`, got[k], ref[k], rtol, atolRel));
        console.log(`      ${backend} ${label}: max error / max|cpu| = ` +
                    errors.map((e) => e.toExponential(2)).join(', ') + ' (hidden, dScores, dCoeffs)');
      });
    });
  });
}
