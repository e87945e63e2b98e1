/**
 * Independent float64 reference of Fourier-KArAt, straight from the spec's formulas
 * (a separate cos/sin call per harmonic, no recurrence), for testing every kernel.
 */
import {mulberry32} from '../../src/data/rng';

export interface RefDims {B: number; h: number; N: number; r: number; G: number}

export function refHidden(S: ArrayLike<number>, C: ArrayLike<number>, d: RefDims): Float64Array {
  const {B, h: H, N, r: R, G} = d;
  const out = new Float64Array(B * H * N * R);
  const cIdx = (h: number, k: number, p: number, q: number, m: number) =>
      ((((h * 2 + k) * R + p) * N + q) * G + m);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < N; i++) {
        for (let p = 0; p < R; p++) {
          let acc = 0;
          for (let q = 0; q < N; q++) {
            const s = S[((b * H + h) * N + i) * N + q];
            for (let m = 0; m < G; m++) {
              acc += C[cIdx(h, 0, p, q, m)] * Math.cos((m + 1) * s) +
                  C[cIdx(h, 1, p, q, m)] * Math.sin((m + 1) * s);
            }
          }
          out[((b * H + h) * N + i) * R + p] = acc;
        }
      }
    }
  }
  return out;
}

/** Deterministic pseudo-random numbers (mulberry32), scaled to [-scale, scale). */
export function randomArray(n: number, seed: number, scale = 1): Float32Array {
  const r = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() * 2 - 1) * scale;
  return out;
}

/** max |a - b| / max(max |b|, tiny). */
export function maxRelError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let num = 0, den = 1e-12;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

/**
 * max |a − b| / max(1, max |b|), Infinity when any difference is NaN: the error measure of the
 * GPU-vs-CPU and fused-vs-stock comparisons (absolute for small outputs, relative for large).
 */
export function maxErrorOverUnit(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let err = 0, ref = 0;
  for (let i = 0; i < b.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    err = Number.isNaN(d) ? Infinity : Math.max(err, d);
    ref = Math.max(ref, Math.abs(b[i]));
  }
  return err / Math.max(1, ref);
}

/**
 * Float64 gradients of Fourier-KArAt for upstream dy = dL/dĥ [B,h,N,r], straight from the
 * spec's formulas: dC[h,0,p,q,m] = Σ_{b,i} dy[b,h,i,p]·cos((m+1)s), dC[h,1,p,q,m] = Σ dy·sin((m+1)s),
 * dS[b,h,i,q] = Σ_{p,m} dy[b,h,i,p]·(m+1)·(B·cos((m+1)s) − A·sin((m+1)s)), s = S[b,h,i,q].
 */
export function refGrads(dy: ArrayLike<number>, S: ArrayLike<number>, C: ArrayLike<number>, d: RefDims):
    {dS: Float64Array, dC: Float64Array} {
  const {B, h: H, N, r: R, G} = d;
  const dS = new Float64Array(B * H * N * N), dC = new Float64Array(H * 2 * R * N * G);
  const cIdx = (h: number, k: number, p: number, q: number, m: number) =>
      ((((h * 2 + k) * R + p) * N + q) * G + m);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < N; i++) {
        for (let q = 0; q < N; q++) {
          const si = ((b * H + h) * N + i) * N + q;
          const s = S[si];
          let acc = 0;
          for (let p = 0; p < R; p++) {
            const g = dy[((b * H + h) * N + i) * R + p];
            for (let m = 0; m < G; m++) {
              const c = Math.cos((m + 1) * s), sn = Math.sin((m + 1) * s);
              dC[cIdx(h, 0, p, q, m)] += g * c;
              dC[cIdx(h, 1, p, q, m)] += g * sn;
              acc += g * (m + 1) * (C[cIdx(h, 1, p, q, m)] * c - C[cIdx(h, 0, p, q, m)] * sn);
            }
          }
          dS[si] = acc;
        }
      }
    }
  }
  return {dS, dC};
}
