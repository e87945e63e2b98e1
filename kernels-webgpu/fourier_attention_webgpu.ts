/**
 * WebGPU programs of flash-style Fourier-KArAt attention (core/attention.ts,
 * fourierAttention): the scores s_ij = q_i · k_j are formed on the fly, per tile of 64, and
 * never reach GPU memory; neither does any other N x N tensor.
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

import {FLASH_WG, FourierAttentionPlan, fourierAttentionPlan, SINCOS_WGSL, unroll} from './plan';

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

/** WGSL: the score s (0 for an invalid index) and its harmonics into cm_m / sm_m, m = 0..G-1. */
function featuresSnippet(G: number, dot: string, valid: string): string {
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
function dScoreSnippet(G: number, R: number, dh: (p: string) => string, a: (p: string, m: number) => string,
                       b: (p: string, m: number) => string): string {
  return `
          ${unroll(G, (m) => `var aAgg${m} = 0.0; var bAgg${m} = 0.0;`)}
          for (var p = 0; p < ${R}; p = p + 1) {
            let gp = ${dh('p')};
            ${unroll(G, (m) => `aAgg${m} = aAgg${m} + gp * ${a('p', m)}; bAgg${m} = bAgg${m} + gp * ${b('p', m)};`)}
          }
          g = ${unroll(G, (m) => `${m + 1}.0 * (bAgg${m} * cm${m} - aAgg${m} * sm${m})`).split('\n').join(' + ')};`;
}

abstract class FlashProgram implements WebGPUProgram {
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

/** One workgroup per query row: 'out' (forward), 'hidden' (ĥ recompute) and 'dq'. */
export class FourierAttentionRowProgram extends FlashProgram {
  variableNames: string[];

  constructor(readonly mode: FourierAttentionRowMode, d: FourierAttentionDims, valueDim = 0) {
    const shape = mode === 'out' ? [d.batch, d.heads, d.tokens, valueDim] :
        mode === 'hidden' ? [d.batch, d.heads, d.tokens, d.rank] : [d.batch, d.heads, d.tokens, d.headDim];
    super(d, shape, [d.tokens, d.batch * d.heads, 1], `karatFlashRow_${mode}`);
    this.variableNames = mode === 'out' ? ['q', 'k', 'coeffs', 'u'] :
        mode === 'hidden' ? ['q', 'k', 'coeffs'] : ['q', 'k', 'coeffs', 'dh'];
  }

  private forwardCode(): string {
    const {rank: R, grid: G} = this.d;
    const {wg: W, split: SP} = this.plan;
    const tail = this.mode === 'hidden' ?
        `if (tid < ${R}) { result[row * ${R} + tid] = hid[tid]; }` : `
        let dv = uniforms.uShape[3];
        let uBase = bh * ${R} * dv;
        for (var c = tid; c < dv; c = c + ${W}) {
          var o = 0.0;
          for (var p = 0; p < ${R}; p = p + 1) { o = o + hid[p] * u[uBase + p * dv + c]; }
          result[row * dv + c] = o;
        }`;
    return `
      var<workgroup> fc : array<f32, ${W * G}>;
      var<workgroup> fs : array<f32, ${W * G}>;
      var<workgroup> red : array<f32, ${W}>;
      var<workgroup> hid : array<f32, ${R}>;
      fn main() {
        ${this.preamble()}
        let p = tid / ${SP};
        let lane = tid - p * ${SP};
        let busy = p < ${R};
        let aBase = cBase + min(p, ${R - 1}) * N * ${G};
        let bBase = aBase + ${R} * N * ${G};
        var acc = 0.0;
        for (var j0 = 0; j0 < N; j0 = j0 + ${W}) {
          let j = j0 + tid;
          ${featuresSnippet(G, `let kr = kBase + j * d; for (var c = 0; c < d; c = c + 1) { s = s + qr[c] * k[kr + c]; }`, 'j < N')}
          let valid = select(0.0, 1.0, j < N);
          ${unroll(G, (m) => `fc[tid * ${G} + ${m}] = cm${m} * valid; fs[tid * ${G} + ${m}] = sm${m} * valid;`)}
          workgroupBarrier();
          if (busy) {
            let jEnd = min(${W}, N - j0);
            for (var jj = lane; jj < jEnd; jj = jj + ${SP}) {
              let o = (j0 + jj) * ${G};
              ${unroll(G, (m) => `acc = acc + coeffs[aBase + o + ${m}] * fc[jj * ${G} + ${m}] + coeffs[bBase + o + ${m}] * fs[jj * ${G} + ${m}];`)}
            }
          }
          workgroupBarrier();
        }
        red[tid] = acc;
        workgroupBarrier();
        if (tid < ${R}) {
          var sum = 0.0;
          for (var l = 0; l < ${SP}; l = l + 1) { sum = sum + red[tid * ${SP} + l]; }
          hid[tid] = sum;
        }
        workgroupBarrier();
        ${tail}
      }`;
  }

  private gradQCode(): string {
    const {rank: R, grid: G} = this.d;
    const {wg: W, dAcc: DA} = this.plan;
    return `
      var<workgroup> dhr : array<f32, ${R}>;
      var<workgroup> ds : array<f32, ${W}>;
      fn main() {
        ${this.preamble(`if (tid < ${R}) { dhr[tid] = dh[row * ${R} + tid]; }`)}
        ${unroll(DA, (a) => `var acc${a} = 0.0;`)}
        for (var j0 = 0; j0 < N; j0 = j0 + ${W}) {
          let j = j0 + tid;
          ${featuresSnippet(G, `let kr = kBase + j * d; for (var c = 0; c < d; c = c + 1) { s = s + qr[c] * k[kr + c]; }`, 'j < N')}
          var g = 0.0;
          if (j < N) {
            ${dScoreSnippet(G, R, (p) => `dhr[${p}]`, (p, m) => `coeffs[cBase + ${p} * N * ${G} + j * ${G} + ${m}]`,
                (p, m) => `coeffs[cBase + (${R} + ${p}) * N * ${G} + j * ${G} + ${m}]`)}
          }
          ds[tid] = g;
          workgroupBarrier();
          let jEnd = min(${W}, N - j0);
          ${unroll(DA, (a) => `{
            let c = tid + ${a * W};
            if (c < d) {
              for (var jj = 0; jj < jEnd; jj = jj + 1) { acc${a} = acc${a} + ds[jj] * k[kBase + (j0 + jj) * d + c]; }
            }
          }`)}
          workgroupBarrier();
        }
        ${unroll(DA, (a) => `if (tid + ${a * W} < d) { result[row * d + tid + ${a * W}] = acc${a}; }`)}
      }`;
  }

  /** Indices of the row and its head, the q row staged in `qr` (plus `extra`), one barrier. */
  private preamble(extra = ''): string {
    const {rank: R, grid: G} = this.d;
    return `
        let tid = i32(localId.x);
        let i = i32(workgroupId.x);
        let bh = i32(workgroupId.y);
        let N = uniforms.kShape[2];
        let d = uniforms.qShape[3];
        let h = bh % uniforms.qShape[1];
        let row = bh * N + i;
        let kBase = bh * N * d;
        let cBase = h * ${2 * R} * N * ${G};
        for (var c = tid; c < d; c = c + ${this.plan.wg}) { qr[c] = q[row * d + c]; }
        ${extra}
        workgroupBarrier();`;
  }

  getUserCode(): string {
    return `${SINCOS_WGSL}
      var<workgroup> qr : array<f32, ${this.plan.dMax}>;
      ${this.mode === 'dq' ? this.gradQCode() : this.forwardCode()}`;
  }
}

/** One workgroup per key column: 'dk' per (b, h, j), 'dcoeffs' per (h, j) summing over b. */
export class FourierAttentionColumnProgram extends FlashProgram {
  variableNames: string[];

  constructor(readonly mode: FourierAttentionColumnMode, d: FourierAttentionDims) {
    const shape = mode === 'dk' ? [d.batch, d.heads, d.tokens, d.headDim] : [d.heads, 2 * d.rank, d.tokens * d.grid];
    super(d, shape, [d.tokens, mode === 'dk' ? d.batch * d.heads : d.heads, 1], `karatFlashColumn_${mode}`);
    this.variableNames = mode === 'dk' ? ['q', 'k', 'coeffs', 'dh'] : ['q', 'k', 'dh'];
  }

  private gradKCode(): string {
    const {rank: R, grid: G} = this.d;
    const {wg: W, dAcc: DA} = this.plan;
    const RG = R * G;
    return `
      var<workgroup> cj : array<f32, ${2 * RG}>;
      var<workgroup> ds : array<f32, ${W}>;
      fn main() {
        let tid = i32(localId.x);
        let j = i32(workgroupId.x);
        let bh = i32(workgroupId.y);
        let N = uniforms.kShape[2];
        let d = uniforms.qShape[3];
        let h = bh % uniforms.qShape[1];
        let qBase = bh * N * d;
        let cBase = h * ${2 * R} * N * ${G};
        for (var c = tid; c < d; c = c + ${W}) { kr[c] = k[(bh * N + j) * d + c]; }
        for (var e = tid; e < ${2 * RG}; e = e + ${W}) {
          let abp = e / ${G};
          cj[e] = coeffs[cBase + abp * N * ${G} + j * ${G} + (e - abp * ${G})];
        }
        workgroupBarrier();
        ${unroll(DA, (a) => `var acc${a} = 0.0;`)}
        for (var i0 = 0; i0 < N; i0 = i0 + ${W}) {
          let i = i0 + tid;
          ${featuresSnippet(G, `let qrow = qBase + i * d; for (var c = 0; c < d; c = c + 1) { s = s + q[qrow + c] * kr[c]; }`, 'i < N')}
          var g = 0.0;
          if (i < N) {
            let dhBase = (bh * N + i) * ${R};
            ${dScoreSnippet(G, R, (p) => `dh[dhBase + ${p}]`, (p, m) => `cj[${p} * ${G} + ${m}]`,
                (p, m) => `cj[${RG} + ${p} * ${G} + ${m}]`)}
          }
          ds[tid] = g;
          workgroupBarrier();
          let iEnd = min(${W}, N - i0);
          ${unroll(DA, (a) => `{
            let c = tid + ${a * W};
            if (c < d) {
              for (var ii = 0; ii < iEnd; ii = ii + 1) { acc${a} = acc${a} + ds[ii] * q[qBase + (i0 + ii) * d + c]; }
            }
          }`)}
          workgroupBarrier();
        }
        ${unroll(DA, (a) => `if (tid + ${a * W} < d) { result[(bh * N + j) * d + tid + ${a * W}] = acc${a}; }`)}
      }`;
  }

  private gradCoeffsCode(): string {
    const {rank: R, grid: G} = this.d;
    const {wg: W, coeffAcc: CA} = this.plan;
    const RG = R * G;
    // Output o = (ab·r + p)·G + m of the key column; thread t owns o = t + W·a.
    return `
      var<workgroup> feat : array<f32, ${2 * W * G}>;
      fn main() {
        let tid = i32(localId.x);
        let j = i32(workgroupId.x);
        let h = i32(workgroupId.y);
        let N = uniforms.kShape[2];
        let d = uniforms.qShape[3];
        let H = uniforms.qShape[1];
        let B = uniforms.qShape[0];
        ${unroll(CA, (a) => `
        let o${a} = min(tid + ${a * W}, ${2 * RG - 1});
        let ab${a} = o${a} / ${RG};
        let p${a} = (o${a} - ab${a} * ${RG}) / ${G};
        let f${a} = ab${a} * ${W * G} + (o${a} % ${G});
        var acc${a} = 0.0;`)}
        for (var b = 0; b < B; b = b + 1) {
          let bh = b * H + h;
          let qBase = bh * N * d;
          workgroupBarrier();
          for (var c = tid; c < d; c = c + ${W}) { kr[c] = k[(bh * N + j) * d + c]; }
          workgroupBarrier();
          for (var i0 = 0; i0 < N; i0 = i0 + ${W}) {
            let i = i0 + tid;
            ${featuresSnippet(G, `let qrow = qBase + i * d; for (var c = 0; c < d; c = c + 1) { s = s + q[qrow + c] * kr[c]; }`, 'i < N')}
            let valid = select(0.0, 1.0, i < N);
            ${unroll(G, (m) => `feat[tid * ${G} + ${m}] = cm${m} * valid; feat[${W * G} + tid * ${G} + ${m}] = sm${m} * valid;`)}
            workgroupBarrier();
            let iEnd = min(${W}, N - i0);
            let dhBase = (bh * N + i0) * ${R};
            ${unroll(CA, (a) => `
            for (var ii = 0; ii < iEnd; ii = ii + 1) {
              acc${a} = acc${a} + dh[dhBase + ii * ${R} + p${a}] * feat[f${a} + ii * ${G}];
            }`)}
            workgroupBarrier();
          }
        }
        ${unroll(CA, (a) => `if (tid + ${a * W} < ${2 * RG}) {
          result[((h * ${2 * R} + ab${a} * ${R} + p${a}) * N + j) * ${G} + (o${a} % ${G})] = acc${a};
        }`)}
      }`;
  }

  getUserCode(): string {
    return `${SINCOS_WGSL}
      var<workgroup> kr : array<f32, ${this.plan.dMax}>;
      ${this.mode === 'dk' ? this.gradKCode() : this.gradCoeffsCode()}`;
  }
}

/** dProj[h,j,p] = Σ_b Σ_c v[b,h,j,c] dU[b,h,p,c], one thread per output; dispatch [⌈N·r/64⌉, h]. */
export class FourierAttentionGradProjProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = {x: [0], y: [1]};
  dispatch: [number, number, number];
  variableNames = ['v', 'du'];
  workgroupSize: [number, number, number] = [FLASH_WG, 1, 1];

  constructor(heads: number, tokens: number, private readonly rank: number) {
    this.outputShape = [heads, tokens, rank];
    this.dispatch = [Math.ceil(tokens * rank / FLASH_WG), heads, 1];
    this.shaderKey = `karatFlashGradProj_${rank}`;
  }

  getUserCode(): string {
    const R = this.rank;
    return `
      fn main() {
        let e = i32(workgroupId.x) * ${FLASH_WG} + i32(localId.x);
        let h = i32(workgroupId.y);
        let B = uniforms.vShape[0];
        let H = uniforms.vShape[1];
        let N = uniforms.vShape[2];
        let dv = uniforms.vShape[3];
        if (e < N * ${R}) {
          let j = e / ${R};
          let p = e - j * ${R};
          var acc = 0.0;
          for (var b = 0; b < B; b = b + 1) {
            let bh = b * H + h;
            let vr = (bh * N + j) * dv;
            let ur = (bh * ${R} + p) * dv;
            for (var c = 0; c < dv; c = c + 1) { acc = acc + v[vr + c] * du[ur + c]; }
          }
          result[(h * N + j) * ${R} + p] = acc;
        }
      }`;
  }
}
