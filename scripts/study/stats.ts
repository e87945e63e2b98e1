/**
 * Small-sample statistics for the multi-seed study: mean, sample standard deviation and the
 * paired-difference interval (Student's t, two-sided 95%). Plain arithmetic, no dependencies,
 * so the report's numbers can be checked by hand.
 */

/** Two-sided 95% quantiles t_{0.975, df} of Student's t for df = 1..30 (standard tables). */
const T975: readonly number[] = [
  12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.306, 2.2622, 2.2281,
  2.201, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.093, 2.086,
  2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
];

/** t_{0.975, df}; beyond df = 30 the normal quantile's first-order correction (error < 0.002). */
export function tQuantile975(df: number): number {
  if (!Number.isInteger(df) || df < 1) throw new Error(`tQuantile975: df must be an integer >= 1, got ${df}`);
  if (df <= T975.length) return T975[df - 1];
  const z = 1.959964;
  return z + (z ** 3 + z) / (4 * df);
}

export function mean(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error('mean: no values');
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Sample standard deviation (n - 1 in the denominator); 0 for a single value. */
export function sd(xs: readonly number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
}

export interface PairedInterval {
  /** Per-pair differences a[i] - b[i]. */
  diffs: number[];
  mean: number;
  sd: number;
  n: number;
  /** Half-width of the 95% interval: t_{0.975, n-1} · sd / √n (NaN for n < 2). */
  halfWidth: number;
  lo: number;
  hi: number;
  /** True when the interval lies entirely above or below 0 (never for n < 2). */
  excludesZero: boolean;
}

/** The paired difference a - b (same seed = same data order) with its 95% t interval. */
export function pairedInterval(a: readonly number[], b: readonly number[]): PairedInterval {
  if (a.length !== b.length) throw new Error(`pairedInterval: ${a.length} vs ${b.length} values; pairs must match`);
  const diffs = a.map((v, i) => v - b[i]);
  const n = diffs.length;
  const m = mean(diffs), s = sd(diffs);
  const halfWidth = n >= 2 ? tQuantile975(n - 1) * s / Math.sqrt(n) : NaN;
  const lo = m - halfWidth, hi = m + halfWidth;
  return {diffs, mean: m, sd: s, n, halfWidth, lo, hi, excludesZero: n >= 2 && (lo > 0 || hi < 0)};
}
