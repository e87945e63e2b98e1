/**
 * Shared base of the WebGPU programs of flash-style Fourier-KArAt attention (core/attention.ts,
 * fourierAttention): FlashProgram, the dims, and the WGSL score/feature and dS snippets. The
 * scores s_ij = q_i · k_j are formed on the fly, per tile of 64, and never reach GPU memory;
 * neither does any other N x N tensor.
 *
 * Tiling. Every program runs FLASH_WG = 64 threads per workgroup (plan.ts,
 * fourierAttentionPlan) and one workgroup per head row:
 *   FourierAttentionRowProgram, one workgroup per query row (b, h, i), dispatch [N, B·h]:
 *     'out'     out_i = ĥ_i U_bh, U = projᵀ v [B,h,r,dv] (computed once per head by the op)
 *     'hidden'  ĥ_i                                     (backward recompute, for dU = ĥᵀ dy)
 *     'dq'      dQ_i = Σ_j dS_ij k_j
 *   FourierAttentionColumnProgram, one workgroup per key column:
 *     'dk'      (b, h, j), dispatch [N, B·h]:  dK_j = Σ_i dS_ij q_i
 *     'dcoeffs' (h, j),    dispatch [N, h]:    dA[h,p,j,m] = Σ_b Σ_i dĥ[b,h,i,p] cos(m s_ij),
 *                                              dB likewise with sin
 *   FourierAttentionGradProjProgram, one thread per (h, j, p):
 *     dProj[h,j,p] = Σ_b Σ_c v[b,h,j,c] dU[b,h,p,c]
 * with dS_ij = Σ_p dĥ_ip Σ_m m (B[h,p,j,m] cos(m s_ij) − A[h,p,j,m] sin(m s_ij)).
 *
 * Per tile, thread t takes one score of the tile (key j0 + t, or query row i0 + t), forms it
 * from the q (or k) row staged in workgroup memory and the other row read from global
 * memory, computes (cos s, sin s) once (karatCosSin) and cos/sin(m s) for m = 2..G by the
 * angle-addition recurrence. The forward writes the 2G features of the tile to workgroup
 * memory and then r·split threads (split = ⌊64/r⌋ lanes per output p, fixed key subsets)
 * accumulate ĥ; 'dq' and 'dk' write dS of the tile to workgroup memory and then the threads
 * own head-dimension columns c = t + 64k of dQ_i / dK_j; 'dcoeffs' writes the features and
 * the threads own outputs (ab, p, m) of the key column.
 *
 * Precision: float32 throughout, features from the range-reduced karatCosSin (plan.ts), the
 * same as the other Fourier-KArAt programs; the score is a float32 dot product in head-dim
 * order (the materialising path uses the tfjs matmul, whose summation order differs: the two
 * agree to float32 rounding, not bit for bit).
 *
 * Determinism: no atomics. Every sum runs in a fixed order: over the keys of a tile in key
 * order, tiles in order, the `split` partial sums of the forward in lane order, and dCoeffs
 * over b in order then over i. The same inputs give the same bits on a given device.
 *
 * Limits (FOURIER_ATTENTION_LIMITS in the op contract): r ≤ 64 (one output p per thread),
 * G ≤ 8, head dims ≤ 256 (staged row, ≤ 4 accumulators per thread), N and B·h ≤ 65535 (one
 * dispatch dimension each); every program then uses ≤ 16 KiB of workgroup memory. Beyond
 * them the op runs the materialising path.
 *
 * Coefficients are read through the rank-2 view [h·2·r, N·G] of coeffs (util.ts); dCoeffs is
 * written as [h, 2·r, N·G] and relabelled [h, 2, r, N, G] by the kernel (same buffer).
 */
import type {WebGPUProgram} from '@tensorflow/tfjs-backend-webgpu';
import type {TensorInfo} from '@tensorflow/tfjs-core';

import {FLASH_WG, FourierAttentionPlan, fourierAttentionPlan, unroll} from './plan';

export type FourierAttentionRowMode = 'out' | 'hidden' | 'dq';
export type FourierAttentionColumnMode = 'dk' | 'dcoeffs';

export interface FourierAttentionDims {
  batch: number;
  heads: number;
  tokens: number;
  headDim: number;
  rank: number;
  grid: number;
}

/** Dims of a call from q [B,h,N,d] and coeffs [h,2,r,N,G]. */
export function fourierAttentionDims(q: TensorInfo, coeffs: TensorInfo): FourierAttentionDims {
  const [batch, heads, tokens, headDim] = q.shape;
  return {batch, heads, tokens, headDim, rank: coeffs.shape[2], grid: coeffs.shape[4]};
}

/** WGSL: the score s (0 for an invalid index) and its harmonics into cm_m / sm_m, m = 0..G-1. */
export function featuresSnippet(G: number, dot: string, valid: string): string {
  return `
        var s = 0.0;
        if (${valid}) { ${dot} }
        let cs = karatCosSin(s);
        let c1 = cs.x;
        let s1 = cs.y;
        ${unroll(G, (m) => m === 0 ? `let cm0 = c1; let sm0 = s1;` :
            `let cm${m} = cm${m - 1} * c1 - sm${m - 1} * s1; let sm${m} = sm${m - 1} * c1 + cm${m - 1} * s1;`)}`;
}

/** WGSL: dS = Σ_m m (bAgg_m cos(m s) − aAgg_m sin(m s)), the aAgg/bAgg sums over p given. */
export function dScoreSnippet(G: number, R: number, dh: (p: string) => string, a: (p: string, m: number) => string,
                       b: (p: string, m: number) => string): string {
  return `
          ${unroll(G, (m) => `var aAgg${m} = 0.0; var bAgg${m} = 0.0;`)}
          for (var p = 0; p < ${R}; p = p + 1) {
            let gp = ${dh('p')};
            ${unroll(G, (m) => `aAgg${m} = aAgg${m} + gp * ${a('p', m)}; bAgg${m} = bAgg${m} + gp * ${b('p', m)};`)}
          }
          g = ${unroll(G, (m) => `${m + 1}.0 * (bAgg${m} * cm${m} - aAgg${m} * sm${m})`).split('\n').join(' + ')};`;
}

export abstract class FlashProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: {x: number[], y?: number[], z?: number[]};
  dispatch: [number, number, number];
  abstract variableNames: string[];
  workgroupSize: [number, number, number] = [FLASH_WG, 1, 1];
  readonly plan: FourierAttentionPlan;

  constructor(protected readonly d: FourierAttentionDims, outputShape: number[], dispatch: [number, number, number],
              key: string) {
    this.plan = fourierAttentionPlan(d);
    this.outputShape = outputShape;
    // Custom 2-D dispatch; a layout of rank != output rank makes tfjs skip getOutputCoords.
    this.dispatchLayout = {x: [0], y: [1]};
    this.dispatch = dispatch;
    this.shaderKey = `${key}_${d.rank}_${d.grid}_${this.plan.dMax}`;
  }
  abstract getUserCode(): string;
}
