/**
 * The WebAssembly SIMD module of the wasm kernels (source: assembly/fourier_karat.ts, see
 * its header for the design; bytes: fourier_karat_module.ts) and the code that feeds it.
 *
 * The module has its own linear memory. Per (batch, head) slice, the scores (and dy) are
 * copied from tfjs-backend-wasm's heap into it, the head's coefficients once per head with
 * rows padded to a multiple of 4 floats, and the slice's outputs copied back into the output
 * tensors on tfjs's heap. Its memory therefore holds one slice, O(N² + r·N·G) floats, never
 * a [B,h,N,N,2G] tensor. dCoeffs is summed over slices in float64.
 *
 * Loading: the first kernel call compiles the module synchronously (Node, workers). Where
 * that is refused (browsers refuse synchronous compilation of modules over 4 KB on the main
 * thread) or WebAssembly SIMD is unsupported, the kernels run the cpu kernels'
 * implementation in place on tfjs's heap instead (same results within float32 rounding),
 * and an asynchronous compilation is started so later calls use the module.
 * `wasmKernelStatus()` says which path runs; the tf.env flag KARAT_WASM_SIMD (default true)
 * set to false forces the TypeScript path (for tests and benchmarks).
 */
import * as tf from '@tensorflow/tfjs-core';

import {KARAT_WASM_SIMD_FLAG} from '../core/flags';
import type {FourierKArAtDims} from '../core/kernel_names';
import {FOURIER_KARAT_WASM_BASE64} from './fourier_karat_module';


interface SimdExports {
  memory: WebAssembly.Memory;
  heapBase(): number;
  hidden(S: number, rows: number, N: number, G: number, NGp: number, R: number,
         A: number, B: number, cf: number, sf: number, out: number): void;
  grad(dy: number, S: number, rows: number, N: number, G: number, NGp: number, R: number,
       A: number, B: number, dA: number, dB: number,
       cf: number, sf: number, ag: number, bg: number, gs: number, dS: number): void;
}

let simd: SimdExports | null = null;
let unavailable: string | null = null;
let asyncLoad: Promise<void> | null = null;

function moduleBytes(): Uint8Array<ArrayBuffer> {
  const s = atob(FOURIER_KARAT_WASM_BASE64);
  const b = new Uint8Array(new ArrayBuffer(s.length));
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
  return b;
}

/** The module's exports; null (TypeScript path) while it is unavailable or still loading. */
function simdModule(): SimdExports | null {
  if (simd != null || unavailable != null || asyncLoad != null) return simd;
  if (typeof WebAssembly === 'undefined') {
    unavailable = 'WebAssembly is not available';
    return null;
  }
  const bytes = moduleBytes();
  if (!WebAssembly.validate(bytes)) {
    unavailable = 'this WebAssembly engine does not support SIMD';
    return null;
  }
  try {
    simd = new WebAssembly.Instance(new WebAssembly.Module(bytes), {}).exports as unknown as SimdExports;
  } catch {
    asyncLoad = WebAssembly.compile(bytes).then((mod) => WebAssembly.instantiate(mod, {})).then(
        (instance) => {
          simd = instance.exports as unknown as SimdExports;
        },
        (e: Error) => {
          unavailable = `the SIMD module failed to load: ${e.message}`;
        });
  }
  return simd;
}

export interface WasmKernelStatus {
  /** 'simd': the WebAssembly SIMD module; 'typescript': the cpu kernels' implementation on tfjs's heap. */
  path: 'simd' | 'typescript';
  /** Why the SIMD module is not used, when it is not. */
  reason: string | null;
}

/** Which implementation the wasm Fourier-KArAt kernels run now (loads the module if not yet tried). */
export function wasmKernelStatus(): WasmKernelStatus {
  if (!tf.env().getBool(KARAT_WASM_SIMD_FLAG)) return {path: 'typescript', reason: `${KARAT_WASM_SIMD_FLAG} is false`};
  const m = simdModule();
  if (m != null) return {path: 'simd', reason: null};
  return {path: 'typescript', reason: unavailable ?? 'the SIMD module is still loading'};
}

/** The module when it is to be used for this call, else null. */
function activeModule(): SimdExports | null {
  return tf.env().getBool(KARAT_WASM_SIMD_FLAG) ? simdModule() : null;
}

const ceil = (x: number, m: number) => Math.ceil(x / m) * m;

/** Byte offsets of regions of `floats[i]` floats each (16-byte aligned); grows the memory to fit. */
function layout(m: SimdExports, floats: number[]): number[] {
  let at = ceil(m.heapBase(), 16);
  const offsets = floats.map((n) => {
    const o = at;
    at += ceil(n * 4, 16);
    return o;
  });
  const have = m.memory.buffer.byteLength;
  if (at > have) m.memory.grow(Math.ceil((at - have) / 65536));
  return offsets;
}

/** Copies head h's coefficients [2, R, N·G] into A, B [R][NGp] (padding zeroed). */
function loadCoeffs(mem: Float32Array, C: Float32Array, h: number, R: number, NG: number, NGp: number,
                    a: number, b: number): void {
  mem.fill(0, a, a + R * NGp);
  mem.fill(0, b, b + R * NGp);
  for (let k = 0; k < 2; k++) {
    for (let p = 0; p < R; p++) {
      const src = ((h * 2 + k) * R + p) * NG;
      mem.set(C.subarray(src, src + NG), (k === 0 ? a : b) + p * NGp);
    }
  }
}

/** ĥ of the op into `out` with the SIMD module; false (nothing written) when it is not in use. */
export function fourierKArAtSimd(S: Float32Array, C: Float32Array, d: FourierKArAtDims, out: Float32Array): boolean {
  const m = activeModule();
  if (m == null) return false;
  const {batch: B, heads: H, tokens: N, rank: R, grid: G} = d;
  const NG = N * G, NGp = ceil(NG, 4), rows = ceil(N, 4);
  const [oS, oA, oB, oCf, oSf, oOut] = layout(m, [rows * N, R * NGp, R * NGp, 4 * NGp, 4 * NGp, rows * R]);
  const mem = new Float32Array(m.memory.buffer);
  const fS = oS >> 2;
  mem.fill(0, fS + N * N, fS + rows * N);
  for (let h = 0; h < H; h++) {
    loadCoeffs(mem, C, h, R, NG, NGp, oA >> 2, oB >> 2);
    for (let b = 0; b < B; b++) {
      const slice = b * H + h;
      mem.set(S.subarray(slice * N * N, (slice + 1) * N * N), fS);
      m.hidden(oS, rows, N, G, NGp, R, oA, oB, oCf, oSf, oOut);
      out.set(mem.subarray(oOut >> 2, (oOut >> 2) + N * R), slice * N * R);
    }
  }
  return true;
}

/** dScores and dCoeffs of the op into `dS`, `dC` with the SIMD module; false when it is not in use. */
export function fourierKArAtGradSimd(dy: Float32Array, S: Float32Array, C: Float32Array, d: FourierKArAtDims,
                                     dS: Float32Array, dC: Float32Array): boolean {
  const m = activeModule();
  if (m == null) return false;
  const {batch: B, heads: H, tokens: N, rank: R, grid: G} = d;
  const NG = N * G, NGp = ceil(NG, 4), rows = ceil(N, 2);
  const [oDy, oS, oA, oB, oDA, oDB, oCf, oSf, oAg, oBg, oGs, oDS] = layout(m, [
    rows * R, rows * N, R * NGp, R * NGp, R * NGp, R * NGp, 2 * NGp, 2 * NGp, 2 * NGp, 2 * NGp, 2 * R * 4, rows * N]);
  const mem = new Float32Array(m.memory.buffer);
  const fS = oS >> 2, fDy = oDy >> 2, fDA = oDA >> 2, fDB = oDB >> 2;
  mem.fill(0, fS + N * N, fS + rows * N);
  mem.fill(0, fDy + N * R, fDy + rows * R);
  const dC64 = new Float64Array(H * 2 * R * NG);
  for (let h = 0; h < H; h++) {
    loadCoeffs(mem, C, h, R, NG, NGp, oA >> 2, oB >> 2);
    for (let b = 0; b < B; b++) {
      const slice = b * H + h;
      mem.set(S.subarray(slice * N * N, (slice + 1) * N * N), fS);
      mem.set(dy.subarray(slice * N * R, (slice + 1) * N * R), fDy);
      mem.fill(0, fDA, fDA + R * NGp);
      mem.fill(0, fDB, fDB + R * NGp);
      m.grad(oDy, oS, rows, N, G, NGp, R, oA, oB, oDA, oDB, oCf, oSf, oAg, oBg, oGs, oDS);
      dS.set(mem.subarray(oDS >> 2, (oDS >> 2) + N * N), slice * N * N);
      for (let k = 0; k < 2; k++) {
        const src = k === 0 ? fDA : fDB;
        for (let p = 0; p < R; p++) {
          const o = ((h * 2 + k) * R + p) * NG, s = src + p * NGp;
          for (let j = 0; j < NG; j++) dC64[o + j] += mem[s + j];
        }
      }
    }
  }
  dC.set(dC64);
  return true;
}
