/**
 * Fourier-KArAt in WebAssembly SIMD (AssemblyScript source of the module that
 * kernels-wasm/simd.ts loads; built by `npm run build:wasm` into fourier_karat_module.ts).
 *
 * Design. The module works on one (batch, head) slice at a time, in its own linear memory,
 * at addresses the caller lays out (simd.ts): scores S [rows][N], coefficients A, B
 * [R][NGp], upstream dy [rows][R], outputs. NG = N·G harmonics per row are padded to
 * NGp = a multiple of 4 with zero coefficients and zero features, and rows to a multiple of
 * 4 with zero scores and zero dy, so every loop runs whole f32x4 vectors and whole row
 * blocks with no remainder code.
 * Features cos(m·s), sin(m·s), m = 1..G, come from one sin/cos per score (float64) and
 * the angle-addition recurrence (float64), stored as float32, one row block at a time:
 * never the [N, N, 2G] feature tensor.
 * Forward: ĥ[i,p] = Σ_k A[p,k]·cf[i,k] + B[p,k]·sf[i,k], four rows per pass over the
 * coefficients, f32x4 accumulators (float32), one horizontal sum per (row, p).
 * Backward: two rows per pass over k; for each k-vector and p: the coefficient aggregates
 * Σ_p dy·A and Σ_p dy·B (kept in registers), and dA[p,k] += dy·cf, dB[p,k] += dy·sf
 * (float32, within the slice; the caller sums slices in float64). Then
 * dS[i,q] = Σ_m (m+1)·(aggB·cf − aggA·sf) in float64.
 * Deterministic: a fixed order of operations, no threads.
 */

export function heapBase(): usize {
  return __heap_base;
}

/** cf/sf[k], k = q·G + m, for one row of N scores; zeros for k in [N·G, NGp). */
// @ts-ignore: decorator
@inline
function rowFeatures(s: usize, N: i32, G: i32, NGp: i32, cf: usize, sf: usize): void {
  for (let q = 0; q < N; q++) {
    const x = <f64>load<f32>(s + (<usize>q << 2));
    const c1 = Math.cos(x), s1 = Math.sin(x);
    let c = c1, sn = s1;
    const o = <usize>(q * G) << 2;
    store<f32>(cf + o, <f32>c);
    store<f32>(sf + o, <f32>sn);
    for (let m = 1; m < G; m++) {
      const cNext = c * c1 - sn * s1;
      sn = sn * c1 + c * s1;
      c = cNext;
      store<f32>(cf + o + (<usize>m << 2), <f32>c);
      store<f32>(sf + o + (<usize>m << 2), <f32>sn);
    }
  }
  for (let k = N * G; k < NGp; k++) {
    store<f32>(cf + (<usize>k << 2), 0);
    store<f32>(sf + (<usize>k << 2), 0);
  }
}

// @ts-ignore: decorator
@inline
function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

/**
 * ĥ [rows][R] of one slice. rows: a multiple of 4; S [rows][N]; A, B [R][NGp];
 * cf, sf: scratch of 4·NGp floats each.
 */
export function hidden(S: usize, rows: i32, N: i32, G: i32, NGp: i32, R: i32,
                       A: usize, B: usize, cf: usize, sf: usize, out: usize): void {
  const rowBytes = <usize>NGp << 2;
  const cf1 = cf + rowBytes, cf2 = cf1 + rowBytes, cf3 = cf2 + rowBytes;
  const sf1 = sf + rowBytes, sf2 = sf1 + rowBytes, sf3 = sf2 + rowBytes;
  for (let i = 0; i < rows; i += 4) {
    for (let r = 0; r < 4; r++) {
      rowFeatures(S + (<usize>((i + r) * N) << 2), N, G, NGp, cf + <usize>r * rowBytes, sf + <usize>r * rowBytes);
    }
    for (let p = 0; p < R; p++) {
      const a = A + <usize>p * rowBytes, b = B + <usize>p * rowBytes;
      let acc0 = f32x4.splat(0), acc1 = f32x4.splat(0), acc2 = f32x4.splat(0), acc3 = f32x4.splat(0);
      for (let k: usize = 0; k < rowBytes; k += 16) {
        const av = v128.load(a + k), bv = v128.load(b + k);
        acc0 = f32x4.add(acc0, f32x4.add(f32x4.mul(av, v128.load(cf + k)), f32x4.mul(bv, v128.load(sf + k))));
        acc1 = f32x4.add(acc1, f32x4.add(f32x4.mul(av, v128.load(cf1 + k)), f32x4.mul(bv, v128.load(sf1 + k))));
        acc2 = f32x4.add(acc2, f32x4.add(f32x4.mul(av, v128.load(cf2 + k)), f32x4.mul(bv, v128.load(sf2 + k))));
        acc3 = f32x4.add(acc3, f32x4.add(f32x4.mul(av, v128.load(cf3 + k)), f32x4.mul(bv, v128.load(sf3 + k))));
      }
      const o = out + (<usize>(i * R + p) << 2), rb = <usize>R << 2;
      store<f32>(o, hsum(acc0));
      store<f32>(o + rb, hsum(acc1));
      store<f32>(o + 2 * rb, hsum(acc2));
      store<f32>(o + 3 * rb, hsum(acc3));
    }
  }
}

/**
 * Backward of one slice: dS [rows][N] (written), dA, dB [R][NGp] (accumulated).
 * rows: a multiple of 2; dy [rows][R]; scratch: cf, sf, ag, bg of 2·NGp floats each,
 * gs of 2·R f32x4 (dy splatted).
 */
export function grad(dy: usize, S: usize, rows: i32, N: i32, G: i32, NGp: i32, R: i32,
                     A: usize, B: usize, dA: usize, dB: usize,
                     cf: usize, sf: usize, ag: usize, bg: usize, gs: usize, dS: usize): void {
  const rowBytes = <usize>NGp << 2;
  const cf1 = cf + rowBytes, sf1 = sf + rowBytes, ag1 = ag + rowBytes, bg1 = bg + rowBytes;
  const gs1 = gs + (<usize>R << 4);
  for (let i = 0; i < rows; i += 2) {
    rowFeatures(S + (<usize>(i * N) << 2), N, G, NGp, cf, sf);
    rowFeatures(S + (<usize>((i + 1) * N) << 2), N, G, NGp, cf1, sf1);
    for (let p = 0; p < R; p++) {
      v128.store(gs + (<usize>p << 4), f32x4.splat(load<f32>(dy + (<usize>(i * R + p) << 2))));
      v128.store(gs1 + (<usize>p << 4), f32x4.splat(load<f32>(dy + (<usize>((i + 1) * R + p) << 2))));
    }
    for (let k: usize = 0; k < rowBytes; k += 16) {
      const c0 = v128.load(cf + k), s0 = v128.load(sf + k);
      const c1 = v128.load(cf1 + k), s1 = v128.load(sf1 + k);
      let aa0 = f32x4.splat(0), bb0 = f32x4.splat(0), aa1 = f32x4.splat(0), bb1 = f32x4.splat(0);
      let off = k;
      for (let p = 0; p < R; p++) {
        const g0 = v128.load(gs + (<usize>p << 4)), g1 = v128.load(gs1 + (<usize>p << 4));
        const av = v128.load(A + off), bv = v128.load(B + off);
        aa0 = f32x4.add(aa0, f32x4.mul(g0, av));
        bb0 = f32x4.add(bb0, f32x4.mul(g0, bv));
        aa1 = f32x4.add(aa1, f32x4.mul(g1, av));
        bb1 = f32x4.add(bb1, f32x4.mul(g1, bv));
        v128.store(dA + off, f32x4.add(v128.load(dA + off), f32x4.add(f32x4.mul(g0, c0), f32x4.mul(g1, c1))));
        v128.store(dB + off, f32x4.add(v128.load(dB + off), f32x4.add(f32x4.mul(g0, s0), f32x4.mul(g1, s1))));
        off += rowBytes;
      }
      v128.store(ag + k, aa0);
      v128.store(bg + k, bb0);
      v128.store(ag1 + k, aa1);
      v128.store(bg1 + k, bb1);
    }
    for (let r = 0; r < 2; r++) {
      const rb = <usize>r * rowBytes;
      const o = dS + (<usize>((i + r) * N) << 2);
      for (let q = 0; q < N; q++) {
        let acc: f64 = 0;
        for (let m = 0; m < G; m++) {
          const kb = rb + (<usize>(q * G + m) << 2);
          acc += <f64>(m + 1) * (<f64>load<f32>(bg + kb) * <f64>load<f32>(cf + kb) -
                                 <f64>load<f32>(ag + kb) * <f64>load<f32>(sf + kb));
        }
        store<f32>(o + (<usize>q << 2), <f32>acc);
      }
    }
  }
}
