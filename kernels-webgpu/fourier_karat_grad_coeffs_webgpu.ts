/**
 * WebGPU program for dCoeffs [h,2,r,N,G] of the Fourier-KArAt backward (spec §3):
 *
 *   dA[h,p,q,m] = Σ_{b,i} dy[b,h,i,p] cos(m S[b,h,i,q]),  dB likewise with sin,
 *
 * a reduction over the B·N rows of each head, done in two deterministic passes without
 * atomics and without a [B,h,N,N,2G] buffer:
 *
 * 1. FourierKArAtGradCoeffsPartialProgram: the rows of each head are cut into `chunks`
 *    chunks. Thread (q, chunk) walks its chunk's rows, computes the features of S[row, q]
 *    once per row (one sin/cos, angle-addition recurrence) and accumulates dA and dB for
 *    a tile of pt outputs p and one m-block in registers; writes partial
 *    [chunks, h*2*r, N*G]. dy[row, p] is read by the 32 q-lanes of a chunk at the same
 *    address (a broadcast), scores by consecutive q (coalesced).
 * 2. SumChunksProgram (sum_chunks_webgpu.ts): dC[k] = Σ_c partial[c, k], summed in chunk order.
 */
import type {WebGPUProgram} from '@tensorflow/tfjs-backend-webgpu';

import type {FourierKArAtDims} from '../core/kernel_names';
import {DIMS_UNIFORMS} from './fourier_karat_webgpu';
import {GradCoeffsPlan, gradCoeffsPlan, unroll, SINCOS_WGSL} from './plan';

export class FourierKArAtGradCoeffsPartialProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: {x: number[], y?: number[], z?: number[]};
  dispatch: [number, number, number];
  variableNames = ['dy', 'scores'];
  uniforms = `${DIMS_UNIFORMS} chunkRows : i32,`;
  workgroupSize: [number, number, number];
  readonly plan: GradCoeffsPlan;

  constructor(private readonly d: FourierKArAtDims) {
    const p = gradCoeffsPlan(d);
    this.plan = p;
    this.outputShape = [p.chunks, d.heads * 2 * d.rank, d.tokens * d.grid];
    this.workgroupSize = [p.qLanes, p.chunkLanes, 1];
    this.dispatchLayout = {x: [0], y: [1]};
    this.dispatch = [p.qTiles, p.chunkTiles, d.heads * p.pTiles * p.blocks];
    this.shaderKey = `karatGradCoeffs_${d.rank}_${d.grid}_${p.pt}`;
  }

  getUserCode(): string {
    const {rank: R, grid: G} = this.d;
    const {qLanes: QL, chunkLanes: CL, pt: PT, pTiles: NPT, mb: MB, blocks: NMB} = this.plan;
    const pm = (f: (pp: number, mm: number) => string) =>
        unroll(PT, (pp) => unroll(MB, (mm) => f(pp, mm)));
    return `${SINCOS_WGSL}
      fn main() {
        let N = uniforms.tokens;
        let q = i32(workgroupId.x) * ${QL} + i32(localId.x);
        let chunk = i32(workgroupId.y) * ${CL} + i32(localId.y);
        let z = i32(workgroupId.z);
        let h = z / ${NPT * NMB};
        let rest = z - h * ${NPT * NMB};
        let p0 = (rest / ${NMB}) * ${PT};
        let m0 = (rest % ${NMB}) * ${MB};
        let rowsPerHead = uniforms.batch * N;
        let tBegin = chunk * uniforms.chunkRows;
        if (q >= N || tBegin >= rowsPerHead) { return; }
        let tEnd = min(rowsPerHead, tBegin + uniforms.chunkRows);
        ${pm((pp, mm) => `var a${pp}_${mm} = 0.0; var b${pp}_${mm} = 0.0;`)}
        for (var t = tBegin; t < tEnd; t = t + 1) {
          let bIdx = t / N;
          let row = (bIdx * uniforms.heads + h) * N + (t - bIdx * N);
          let s = scores[row * N + q];
          let cs = karatCosSin(s);
          let c1 = cs.x;
          let s1 = cs.y;
          var cm = 1.0;
          var sm = 0.0;
          for (var k = 0; k < m0; k = k + 1) {
            let cn = cm * c1 - sm * s1;
            sm = sm * c1 + cm * s1;
            cm = cn;
          }
          ${unroll(PT, (pp) => `let g${pp} = dy[row * ${R} + min(p0 + ${pp}, ${R - 1})];`)}
          ${unroll(MB, (mm) => `{
            let cn = cm * c1 - sm * s1;
            sm = sm * c1 + cm * s1;
            cm = cn;
            ${unroll(PT, (pp) => `a${pp}_${mm} = a${pp}_${mm} + g${pp} * cm; b${pp}_${mm} = b${pp}_${mm} + g${pp} * sm;`)}
          }`)}
        }
        let outBase = chunk * ${2 * R} * uniforms.heads * N * ${G};
        ${pm((pp, mm) => `if (p0 + ${pp} < ${R} && m0 + ${mm} < ${G}) {
          let o = outBase + (h * ${2 * R} + p0 + ${pp}) * N * ${G} + q * ${G} + m0 + ${mm};
          result[o] = a${pp}_${mm};
          result[o + ${R} * N * ${G}] = b${pp}_${mm};
        }`)}
      }
    `;
  }
}
