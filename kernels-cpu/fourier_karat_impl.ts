/**
 * Plain-TypeScript Fourier-KArAt over typed arrays, shared by the cpu kernels (which
 * allocate their outputs) and the wasm kernels (which pass views of their outputs on the
 * wasm heap, so inputs are read and outputs written in place).
 * Features cos(m·s), sin(m·s), m = 1..G, come from one sin/cos per score and the
 * angle-addition recurrence, one row of N·G at a time: never a [B,h,N,N,2G] buffer.
 * Accumulation is in float64 (JS numbers).
 */
import type {FourierKArAtDims} from '../core/kernel_names';

type Values = ArrayLike<number>;

/** Fills cf/sf[q·G + (m-1)] with cos(m·s_q), sin(m·s_q) for one row of scores. */
export function fillFeatures(
    S: Values, rowOffset: number, N: number, G: number, cf: Float64Array, sf: Float64Array): void {
  for (let q = 0; q < N; q++) {
    const s = S[rowOffset + q];
    const c1 = Math.cos(s), s1 = Math.sin(s);
    let c = c1, sn = s1;
    const o = q * G;
    cf[o] = c;
    sf[o] = sn;
    for (let m = 1; m < G; m++) {
      const cNext = c * c1 - sn * s1;
      sn = sn * c1 + c * s1;
      c = cNext;
      cf[o + m] = c;
      sf[o + m] = sn;
    }
  }
}

/** ĥ [B,h,N,r] from scores [B,h,N,N] and coeffs [h,2,r,N,G], in a new array. */
export function fourierKArAtImpl(S: Values, C: Values, d: FourierKArAtDims): Float32Array {
  const out = new Float32Array(d.batch * d.heads * d.tokens * d.rank);
  fourierKArAtInto(S, C, d, out);
  return out;
}

/** ĥ [B,h,N,r] from scores [B,h,N,N] and coeffs [h,2,r,N,G], written to `out` (B·h·N·r values). */
export function fourierKArAtInto(S: Values, C: Values, d: FourierKArAtDims, out: Float32Array): void {
  const {batch: B, heads: H, tokens: N, rank: R, grid: G} = d;
  const NG = N * G;
  const cf = new Float64Array(NG), sf = new Float64Array(NG);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const aBase = h * 2 * R * NG, bBase = aBase + R * NG;
      for (let i = 0; i < N; i++) {
        const row = (b * H + h) * N + i;
        fillFeatures(S, row * N, N, G, cf, sf);
        for (let p = 0; p < R; p++) {
          const ao = aBase + p * NG, bo = bBase + p * NG;
          let acc = 0;
          for (let k = 0; k < NG; k++) acc += C[ao + k] * cf[k] + C[bo + k] * sf[k];
          out[row * R + p] = acc;
        }
      }
    }
  }
}

/** [dScores [B,h,N,N], dCoeffs [h,2,r,N,G]] for upstream dy [B,h,N,r] (spec §3), in new arrays. */
export function fourierKArAtGradImpl(
    dy: Values, S: Values, C: Values, d: FourierKArAtDims): [Float32Array, Float32Array] {
  const {batch: B, heads: H, tokens: N, rank: R, grid: G} = d;
  const dS = new Float32Array(B * H * N * N);
  const dC = new Float32Array(H * 2 * R * N * G);
  fourierKArAtGradInto(dy, S, C, d, dS, dC);
  return [dS, dC];
}

/**
 * dScores and dCoeffs for upstream dy, written to `dS` (every element) and `dC` (every
 * element; accumulated in a float64 scratch array, then stored).
 */
export function fourierKArAtGradInto(
    dy: Values, S: Values, C: Values, d: FourierKArAtDims, dS: Float32Array, dCOut: Float32Array): void {
  const {batch: B, heads: H, tokens: N, rank: R, grid: G} = d;
  const NG = N * G;
  const dC = new Float64Array(H * 2 * R * NG);
  const cf = new Float64Array(NG), sf = new Float64Array(NG);
  const aAgg = new Float64Array(NG), bAgg = new Float64Array(NG);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const aBase = h * 2 * R * NG, bBase = aBase + R * NG;
      for (let i = 0; i < N; i++) {
        const row = (b * H + h) * N + i;
        fillFeatures(S, row * N, N, G, cf, sf);
        aAgg.fill(0);
        bAgg.fill(0);
        for (let p = 0; p < R; p++) {
          const g = dy[row * R + p];
          if (g === 0) continue;
          const ao = aBase + p * NG, bo = bBase + p * NG;
          for (let k = 0; k < NG; k++) {
            aAgg[k] += g * C[ao + k];
            bAgg[k] += g * C[bo + k];
            dC[ao + k] += g * cf[k];
            dC[bo + k] += g * sf[k];
          }
        }
        for (let q = 0; q < N; q++) {
          let acc = 0;
          for (let m = 0; m < G; m++) {
            const k = q * G + m;
            acc += (m + 1) * (bAgg[k] * cf[k] - aAgg[k] * sf[k]);
          }
          dS[row * N + q] = acc;
        }
      }
    }
  }
  dCOut.set(dC);
}
