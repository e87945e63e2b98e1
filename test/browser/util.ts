/**
 * Helpers shared by the browser suites (bundled by scripts/karma-run.mjs, run by karma in
 * headless Chromium). Not a suite itself: suites are the files named *.browser.ts.
 */
import * as tf from '@tensorflow/tfjs-core';

import {mulberry32} from '../../src/data/rng';

/**
 * Tries to make `name` the active backend. Returns false (with a loud console message)
 * when it does not initialise in this page; callers then skip their tests.
 */
export async function tryBackend(name: string): Promise<boolean> {
  let ok = false;
  let why = '';
  try {
    ok = await tf.setBackend(name);
  } catch (e) {
    why = String(e);
  }
  if (!ok) {
    console.warn(`!!! SKIPPING ${name} browser tests: tf.setBackend('${name}') failed in this page` +
                 `${why ? ': ' + why : ''} !!!`);
  }
  return ok;
}

/** n values uniform in [lo, hi). */
export function uniform(n: number, lo: number, hi: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * r();
  return out;
}

/** n values with mean 0 and standard deviation `std` (sum of uniforms, close to normal). */
export function normalish(n: number, std: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() + r() + r() + r() - 2) * std * Math.sqrt(3);
  return out;
}

export function maxAbs(x: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]));
  return m;
}

/**
 * Throws unless |actual - expected| <= atol + rtol·|expected| everywhere, with
 * atol = atolRel · max|expected| (so tolerances scale with the tensor's magnitude).
 * Returns the largest error relative to max|expected| (for logging).
 */
export function expectClose(
    what: string, actual: ArrayLike<number>, expected: ArrayLike<number>,
    rtol: number, atolRel: number): number {
  if (actual.length !== expected.length) {
    throw new Error(`${what}: length ${actual.length}, expected ${expected.length}`);
  }
  const scale = Math.max(maxAbs(expected), 1e-30);
  const atol = atolRel * scale;
  let worst = -1, worstExcess = 0, maxErr = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i], e = expected[i];
    const err = Math.abs(a - e);
    if (!(err <= atol + rtol * Math.abs(e))) {   // also catches NaN
      const excess = Number.isNaN(err) ? Infinity : err - (atol + rtol * Math.abs(e));
      if (worst < 0 || excess > worstExcess) {
        worst = i;
        worstExcess = excess;
      }
    }
    if (err > maxErr || Number.isNaN(err)) maxErr = Number.isNaN(err) ? Infinity : err;
  }
  if (worst >= 0) {
    throw new Error(
        `${what}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} ` +
        `(|diff| ${Math.abs(actual[worst] - expected[worst]).toExponential(3)} > ` +
        `atol ${atol.toExponential(3)} + rtol ${rtol} * |expected|; max|expected| ${scale.toExponential(3)})`);
  }
  return maxErr / scale;
}
