/**
 * The Fourier-KArAt op cases, written once and run on every backend by describeOpCases
 * (describeWithBackends, test/support/backend_suites.ts): against the float64 reference of the
 * spec's formulas and the CPU kernel in the same process. test/ops.test.ts runs them on cpu
 * (also against the composite), test/wasm_kernels.test.ts on both wasm paths,
 * test/webgpu_kernels.test.ts on webgpu (Node, Dawn), test/tensorflow/backend.tftest.ts on
 * tensorflow (composite and fused op), test/browser/ops.browser.ts on webgl and webgpu in
 * Chromium.
 *
 * Browser-safe (bundled into the karma suites): tfjs and mocha's globals only.
 */
import * as tf from '@tensorflow/tfjs-core';

import {FourierKArAt, FourierKArAtGrad, fourierKArAtGrad, fourierKArAtHidden} from '../../src/index';
import {expectClose, normalish, uniform} from '../browser/util';
import {describeWithBackends, expectBelowOverUnit, onCpu, TestBackend, valuesOf} from './backend_suites';
import {refGrads, refHidden} from './reference';

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
export function squaredHiddenGrads(c: OpCase, d: OpInputs): Promise<Float32Array[]> {
  return valuesOf(() => {
    const s = tf.tensor4d(d.scores, [c.B, c.h, c.N, c.N]);
    const k = tf.tensor5d(d.coeffs, [c.h, 2, c.r, c.N, c.G]);
    const wt = tf.tensor4d(d.weight, [c.B, c.h, c.N, c.r]);
    const f = (x: tf.Tensor, y: tf.Tensor) =>
        tf.sum(tf.mul(tf.square(fourierKArAtHidden(x as tf.Tensor4D, y as tf.Tensor5D)), wt));
    return tf.grads(f)([s, k]);
  });
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
  /**
   * |got − ref| ≤ atolRel·max|ref| + rtol·|ref| elementwise, per case, against the cpu kernel
   * and the float64 reference (default: rtol 0, atolRel 2e-5).
   */
  tolerance?(c: OpCase, env: TestBackend): {rtol: number, atolRel: number};
  cases?: OpCase[];
  /** Whether FourierKArAt and FourierKArAtGrad must run (true), must not (false), or either (undefined). */
  fusedKernels?(c: OpCase, env: TestBackend): boolean | undefined;
  /** Whether the backend must equal the cpu kernel bit for bit (same float64 accumulation). */
  exact?(env: TestBackend): boolean;
  /** max error over unit of tf.grads of a non-linear loss against cpu (default 2e-5). */
  gradTol?: number;
}

const float64Cache = new Map<string, Float64Array[]>();

/** ĥ, dScores, dCoeffs of case `c` from the spec's formulas in float64 (test/support/reference.ts). */
export function opFloat64(c: OpCase, d: OpInputs, seed: number): Float64Array[] {
  const key = `${caseLabel(c)} ${seed}`;
  if (!float64Cache.has(key)) {
    const {dS, dC} = refGrads(d.weight, d.scores, d.coeffs, c);
    float64Cache.set(key, [refHidden(d.scores, d.coeffs, c), dS, dC]);
  }
  return float64Cache.get(key)!;
}

/** The case of the tf.grads and leak checks. */
export const GRAD_CASE: OpCase = {B: 2, h: 2, N: 13, r: 5, G: 3};

/**
 * One mocha suite per test backend among `backends` (describeWithBackends): every case's forward
 * and both gradients against the float64 reference and (off cpu) the cpu kernel in the same
 * process, with no tensor leaked and, where `fusedKernels` says so, the fused kernels running;
 * tf.grads of a non-linear loss against cpu; no tensors or backend buffers leaked over repeats.
 */
export function describeOpCases(backends: string[], options: OpSuiteOptions = {}): void {
  const tolerance = options.tolerance ?? (() => ({rtol: 0, atolRel: 2e-5}));
  describeWithBackends('Fourier-KArAt op cases match the float64 reference and the cpu kernel', {backends}, (env) => {
    const name = env.id;
    (options.cases ?? OP_CASES).forEach((c, i) => {
      const label = caseLabel(c);
      it(`${label}: forward, dScores and dCoeffs`, async () => {
        const seed = 1000 + 17 * i;
        const d = opInputs(c, seed);
        const ref = env.backend === 'cpu' ? null : await onCpu(() => runOp(c, d));
        const startTensors = tf.memory().numTensors;
        let got: OpResult | null = null;
        const info = await tf.profile(async () => {
          got = await runOp(c, d);
        });
        const leaked = tf.memory().numTensors - startTensors;
        if (leaked !== 0) throw new Error(`leaked ${leaked} tensors on ${name}`);
        const fused = options.fusedKernels?.(c, env);
        if (fused != null) {
          const ran = info.kernelNames.includes(FourierKArAt) && info.kernelNames.includes(FourierKArAtGrad);
          const any = info.kernelNames.includes(FourierKArAt) || info.kernelNames.includes(FourierKArAtGrad);
          if (fused ? !ran : any) {
            throw new Error(`${name}: the fused kernels ${fused ? 'did not run' : 'ran'}: ` +
                            info.kernelNames.filter((k) => /KArAt/.test(k)).join(', '));
          }
        }
        const {rtol, atolRel} = tolerance(c, env);
        const outputs = ['hidden', 'dScores', 'dCoeffs'] as const;
        const f64 = opFloat64(c, d, seed);
        const errors = outputs.map((k, j) => expectClose(`${name} ${k} ${label} vs float64`, got![k], f64[j], rtol, atolRel));
        if (ref != null) {
          const cpuErrors = outputs.map((k) => expectClose(`${name} ${k} ${label} vs cpu`, got![k], ref[k], rtol, atolRel));
          if (options.exact?.(env)) {
            for (const k of outputs) {
              if (got![k].some((v, j) => !Object.is(v, ref[k][j]))) throw new Error(`${name} ${k}: differs from the cpu kernel`);
            }
          }
          console.log(`      ${name} ${label}: max error / max|cpu| = ` +
                      cpuErrors.map((e) => e.toExponential(2)).join(', ') + ' (hidden, dScores, dCoeffs)');
        } else {
          console.log(`      ${name} ${label}: max error / max|float64| = ` +
                      errors.map((e) => e.toExponential(2)).join(', ') + ' (hidden, dScores, dCoeffs)');
        }
      });
    });

    if (env.backend !== 'cpu') {
      it(`tf.grads of a non-linear loss through fourierKArAtHidden equals cpu, ${caseLabel(GRAD_CASE)}`, async () => {
        const d = opInputs(GRAD_CASE, 7);
        const ref = await onCpu(() => squaredHiddenGrads(GRAD_CASE, d));
        let got: Float32Array[] = [];
        const info = await tf.profile(async () => {
          got = await squaredHiddenGrads(GRAD_CASE, d);
        });
        if (options.fusedKernels?.(GRAD_CASE, env) === true &&
            !(info.kernelNames.includes(FourierKArAt) && info.kernelNames.includes(FourierKArAtGrad))) {
          throw new Error(`fused kernels not used: ${info.kernelNames.join(', ')}`);
        }
        expectBelowOverUnit(got, ref, options.gradTol ?? 2e-5, `${name} tf.grads vs cpu`, ['dScores', 'dCoeffs']);
      });
    }

    it('leaks no tensors and no backend buffers', async () => {
      await expectOpRunsLeakNothing(GRAD_CASE, opInputs(GRAD_CASE, 9), 3);
    });
  });
}
