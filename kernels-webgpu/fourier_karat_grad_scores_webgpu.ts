/**
 * WebGPU program for dScores [B,h,N,N] of the Fourier-KArAt backward (spec §3):
 *
 *   dS[b,h,i,q] = Σ_m m · ( cos(m s)·Σ_p dy[b,h,i,p] B[h,p,q,m] − sin(m s)·Σ_p dy[b,h,i,p] A[h,p,q,m] )
 *
 * Workgroup = 32 q-lanes x 8 row-lanes over a tile of 32 q x (8·rpt) rows (b, i) of one
 * head (workgroupId.z). Each thread computes the features of its rpt rows at its q once
 * (one sin/cos each, angle-addition for the higher harmonics) and keeps them in registers.
 * p is processed in chunks of pc: dy[rows, p-chunk] and A/B[p-chunk, q-tile, m-block] are
 * staged in workgroup memory, and each thread accumulates Σ_p dy·A and Σ_p dy·B per
 * (row, m), which are combined with the features once per m-block.
 *
 * Inputs: dy [B,h,N,r], scores [B,h,N,N], coeffs viewed as [h*2*r, N*G].
 */
import type {WebGPUProgram} from '@tensorflow/tfjs-backend-webgpu';

import type {FourierKArAtDims} from '../core/kernel_names';
import {DIMS_UNIFORMS} from './fourier_karat_webgpu';
import {GradScoresPlan, gradScoresPlan, unroll, SINCOS_WGSL} from './plan';

export class FourierKArAtGradScoresProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: {x: number[], y?: number[], z?: number[]};
  dispatch: [number, number, number];
  variableNames = ['dy', 'scores', 'coeffs'];
  uniforms = DIMS_UNIFORMS;
  workgroupSize: [number, number, number];
  readonly plan: GradScoresPlan;

  constructor(private readonly d: FourierKArAtDims) {
    const p = gradScoresPlan(d);
    this.plan = p;
    this.outputShape = [d.batch, d.heads, d.tokens, d.tokens];
    this.workgroupSize = [p.qLanes, p.rowLanes, 1];
    this.dispatchLayout = {x: [0], y: [1]};
    this.dispatch = [p.qTiles, p.rowTiles, d.heads];
    this.shaderKey = `karatGradScores_${d.rank}_${d.grid}_${p.pc}_${p.rpt}`;
  }

  /** Per-thread row k: `row` + its index, the features (c1, s1) of its score at q, accumulator. */
  private rowSetupCode(): string {
    const {rowLanes: RL, rpt: RPT} = this.plan;
    return unroll(RPT, (k) => `
        let t${k} = tBase + ly + ${RL * k};
        let row${k} = rowOf(min(t${k}, rowsPerHead - 1), h);
        var c1_${k} = 0.0; var s1_${k} = 0.0;
        {
          let s = scores[row${k} * N + qc];
          let cs = karatCosSin(s); c1_${k} = cs.x; s1_${k} = cs.y;
        }
        var cm_${k} = 1.0; var sm_${k} = 0.0;
        var acc${k} = 0.0;`);
  }

  /** Stages dy[rows, p-chunk] and A/B[p-chunk, q-tile, m-block] in workgroup memory (zero-padded). */
  private stageCode(): string {
    const {rank: R, grid: G} = this.d;
    const {qLanes: QL, pc: PC, mb: MB} = this.plan;
    const threads = QL * this.plan.rowLanes;
    return `
            for (var e = li; e < ${this.dySize}; e = e + ${threads}) {
              let rl = e / ${PC};
              let p = pc * ${PC} + (e - rl * ${PC});
              let t = tBase + rl;
              var v = 0.0;
              if (t < rowsPerHead && p < ${R}) { v = dy[rowOf(t, h) * ${R} + p]; }
              dyTile[e] = v;
            }
            for (var e = li; e < ${this.coefSize}; e = e + ${threads}) {
              let qq = e % ${QL};
              let r1 = e / ${QL};
              let mm = r1 % ${MB};
              let r2 = r1 / ${MB};
              let pp = r2 % ${PC};
              let ab = r2 / ${PC};
              let qg = qBase + qq;
              let m = mb * ${MB} + mm;
              let p = pc * ${PC} + pp;
              var v = 0.0;
              if (qg < N && m < ${G} && p < ${R}) {
                v = coeffs[coefBase + (ab * ${R} + p) * N * ${G} + qg * ${G} + m];
              }
              coefTile[e] = v;
            }`;
  }

  /** Σ_p dy·A and Σ_p dy·B over the staged p-chunk, per (row k, m of the block). */
  private accumulateCode(): string {
    const {qLanes: QL, rowLanes: RL, rpt: RPT, pc: PC, mb: MB} = this.plan;
    const k4 = (f: (k: number) => string) => unroll(RPT, f);
    return `
            for (var pp = 0; pp < ${PC}; pp = pp + 1) {
              ${k4((k) => `let g${k} = dyTile[(ly + ${RL * k}) * ${PC} + pp];`)}
              ${unroll(MB, (mm) => `{
                let a = coefTile[((pp) * ${MB} + ${mm}) * ${QL} + lx];
                let b = coefTile[((${PC} + pp) * ${MB} + ${mm}) * ${QL} + lx];
                ${k4((k) => `aAgg${k}_${mm} = aAgg${k}_${mm} + g${k} * a; bAgg${k}_${mm} = bAgg${k}_${mm} + g${k} * b;`)}
              }`)}
            }`;
  }

  /** Advances cos/sin(m s) over the m-block (recurrence) and adds m (bAgg cos − aAgg sin) to acc. */
  private combineCode(): string {
    const {rpt: RPT, mb: MB} = this.plan;
    return unroll(MB, (mm) => `{
            let mf = f32(mb * ${MB} + ${mm + 1});
            ${unroll(RPT, (k) => `{
              let cn = cm_${k} * c1_${k} - sm_${k} * s1_${k};
              sm_${k} = sm_${k} * c1_${k} + cm_${k} * s1_${k};
              cm_${k} = cn;
              acc${k} = acc${k} + mf * (bAgg${k}_${mm} * cm_${k} - aAgg${k}_${mm} * sm_${k});
            }`)}
          }`);
  }

  private get dySize(): number {
    return this.plan.rt * this.plan.pc;
  }

  private get coefSize(): number {
    return 2 * this.plan.pc * this.plan.mb * this.plan.qLanes;
  }

  getUserCode(): string {
    const {rank: R, grid: G} = this.d;
    const {qLanes: QL, rpt: RPT, rt: RT, pChunks: NPC, mb: MB, blocks: NMB} = this.plan;
    return `${SINCOS_WGSL}
      var<workgroup> dyTile : array<f32, ${this.dySize}>;
      var<workgroup> coefTile : array<f32, ${this.coefSize}>;

      fn rowOf(t : i32, h : i32) -> i32 {
        let bIdx = t / uniforms.tokens;
        return (bIdx * uniforms.heads + h) * uniforms.tokens + (t - bIdx * uniforms.tokens);
      }

      fn main() {
        let lx = i32(localId.x);
        let ly = i32(localId.y);
        let li = ly * ${QL} + lx;
        let h = i32(workgroupId.z);
        let N = uniforms.tokens;
        let rowsPerHead = uniforms.batch * N;
        let qBase = i32(workgroupId.x) * ${QL};
        let q = qBase + lx;
        let qc = min(q, N - 1);
        let tBase = i32(workgroupId.y) * ${RT};
        let coefBase = h * ${2 * R} * N * ${G};
        ${this.rowSetupCode()}
        for (var mb = 0; mb < ${NMB}; mb = mb + 1) {
          ${unroll(RPT, (k) => unroll(MB, (mm) => `var aAgg${k}_${mm} = 0.0; var bAgg${k}_${mm} = 0.0;`))}
          for (var pc = 0; pc < ${NPC}; pc = pc + 1) {
            workgroupBarrier();
            ${this.stageCode()}
            workgroupBarrier();
            ${this.accumulateCode()}
          }
          ${this.combineCode()}
        }
        ${unroll(RPT, (k) => `if (q < N && t${k} < rowsPerHead) { result[row${k} * N + q] = acc${k}; }`)}
      }
    `;
  }
}
