/**
 * Shared benchmark helpers: one record format for every backend and case, timing by
 * median of repeated runs (with the backend synchronised), and peak bytes from tf.profile.
 */
import * as tf from '@tensorflow/tfjs-core';

/** One measurement, as written by `npm run bench -- --json FILE`. */
export interface BenchRecord {
  backend: string;
  case: string;
  impl: string;
  B: number;
  h: number;
  N: number;
  r: number;
  G: number;
  pass: 'fwd' | 'fwd+bwd' | string;
  ms_median: number;
  peak_bytes: number;
  [extra: string]: unknown;
}

export interface MeasureOptions {
  warmup?: number;
  iters?: number;
}

/** Waits until the backend has finished all work on `result` (downloads one value per tensor). */
export async function sync(result: tf.TensorContainer): Promise<void> {
  for (const t of tf.tensor_util.getTensorsInContainer(result)) {
    const one = tf.slice(tf.reshape(t, [-1]), 0, 1);
    await one.data();
    one.dispose();
  }
}

/** Waits for `result` by downloading every tensor: no kernel runs (for kernel counts). */
export async function downloadAll(result: tf.TensorContainer): Promise<void> {
  for (const t of tf.tensor_util.getTensorsInContainer(result)) await t.data();
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Runs `fn` (which returns tensors it created) `warmup` + `iters` times; returns the
 * median wall time in ms, and the peak bytes tfjs allocated during one call, measured by
 * tf.profile (relative to the bytes live before the call).
 */
export async function measure(fn: () => tf.TensorContainer, opts: MeasureOptions = {}):
    Promise<{ms_median: number, peak_bytes: number, times: number[]}> {
  const warmup = opts.warmup ?? 2, iters = opts.iters ?? 5;
  for (let i = 0; i < warmup; i++) {
    const out = tf.tidy(fn);
    await sync(out);
    tf.dispose(out);
  }
  const times: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    const out = tf.tidy(fn);
    await sync(out);
    times.push(performance.now() - t0);
    tf.dispose(out);
  }
  const before = tf.memory().numBytes;
  const info = await tf.profile(async () => {
    const out = tf.tidy(fn);
    await sync(out);
    tf.dispose(out);
  });
  return {ms_median: median(times), peak_bytes: Math.max(0, info.peakBytes - before), times};
}

export function printTable(records: BenchRecord[]): void {
  const rows = records.map((r) => ({
    backend: r.backend, case: r.case, impl: r.impl, pass: r.pass,
    shape: `B${r.B} h${r.h} N${r.N} r${r.r} G${r.G}`,
    'ms (median)': r.ms_median.toFixed(2), 'peak MiB': (r.peak_bytes / 2 ** 20).toFixed(2),
  }));
  console.table(rows);
}
