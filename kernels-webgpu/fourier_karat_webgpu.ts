/**
 * WebGPU program for the Fourier-KArAt forward ĥ [B,h,N,r] (kernel FourierKArAt).
 *
 * Workgroup = 8 lanes x 32 rows. The 32 rows are consecutive (b, i) pairs of one head
 * h (workgroupId.y); workgroupId.z picks a tile of `pt` outputs p. For each q-tile the
 * workgroup stages the coefficients A/B[h, p-tile, q-tile, m-block] in workgroup memory;
 * each lane then takes q = q0 + lane + 8j, computes sin/cos of the score once, the higher
 * harmonics by the angle-addition recurrence, and updates all `pt` accumulators from
 * those features (features are never recomputed per p). The 8 lanes of a row are
 * summed through workgroup memory at the end.
 *
 * Inputs: scores [B,h,N,N], coeffs viewed as [h*2*r, N*G]. Output [B,h,N,r].
 */
import type {WebGPUProgram} from '@tensorflow/tfjs-backend-webgpu';

import type {FourierKArAtDims} from '../core/kernel_names';
import {ForwardPlan, forwardPlan, unroll, SINCOS_WGSL} from './plan';

/** The program-defined uniforms every Fourier-KArAt program declares first. */
export const DIMS_UNIFORMS = 'batch : i32, heads : i32, tokens : i32,';

export function dimsUniformData(d: FourierKArAtDims): Array<{type: string, data: number[]}> {
  return [
    {type: 'int32', data: [d.batch]},
    {type: 'int32', data: [d.heads]},
    {type: 'int32', data: [d.tokens]},
  ];
}

export class FourierKArAtProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: {x: number[], y?: number[], z?: number[]};
  dispatch: [number, number, number];
  variableNames = ['scores', 'coeffs'];
  uniforms = DIMS_UNIFORMS;
  workgroupSize: [number, number, number];
  readonly plan: ForwardPlan;

  constructor(private readonly d: FourierKArAtDims) {
    const p = forwardPlan(d);
    this.plan = p;
    this.outputShape = [d.batch, d.heads, d.tokens, d.rank];
    this.workgroupSize = [p.lanes, p.rows, 1];
    // Custom 3-D dispatch; a layout of rank != output rank makes tfjs skip getOutputCoords.
    this.dispatchLayout = {x: [0], y: [1]};
    this.dispatch = [p.rowTiles, d.heads, p.pTiles];
    this.shaderKey = `karatFwd_${d.rank}_${d.grid}_${p.pt}_${p.qpl}`;
  }

  getUserCode(): string {
    const {rank: R, grid: G} = this.d;
    const {lanes: KS, rows: RT, pt: PT, qpl: QPL, qt: QT, mb: MB, blocks: NMB} = this.plan;
    const coefSize = 2 * PT * MB * QT;
    // coefficient tile layout [ab][pp][mm][qq]: lanes read consecutive qq (no bank conflicts)
    const cIdx = (ab: number, pp: number, mm: number, j: number) =>
        `${((ab * PT + pp) * MB + mm) * QT + KS * j} + lane`;
    return `${SINCOS_WGSL}
      var<workgroup> coefTile : array<f32, ${coefSize}>;
      var<workgroup> redTile : array<f32, ${KS * RT}>;

      fn main() {
        let lane = i32(localId.x);
        let rowLocal = i32(localId.y);
        let li = rowLocal * ${KS} + lane;
        let h = i32(workgroupId.y);
        let p0 = i32(workgroupId.z) * ${PT};
        let N = uniforms.tokens;
        let rowsPerHead = uniforms.batch * N;
        let t = i32(workgroupId.x) * ${RT} + rowLocal;
        let tc = min(t, rowsPerHead - 1);
        let bIdx = tc / N;
        let row = (bIdx * uniforms.heads + h) * N + (tc - bIdx * N);
        let sBase = row * N;
        let coefBase = h * ${2 * R} * N * ${G};
        ${unroll(PT, (pp) => `var acc${pp} = 0.0;`)}
        ${unroll(QPL, (j) => `var c1_${j} = 0.0; var s1_${j} = 0.0; var cm_${j} = 0.0; var sm_${j} = 0.0;`)}
        for (var q0 = 0; q0 < N; q0 = q0 + ${QT}) {
          ${unroll(QPL, (j) => `{
            let s = scores[sBase + min(q0 + lane + ${KS * j}, N - 1)];
            let cs = karatCosSin(s); c1_${j} = cs.x; s1_${j} = cs.y; cm_${j} = 1.0; sm_${j} = 0.0;
          }`)}
          for (var mb = 0; mb < ${NMB}; mb = mb + 1) {
            workgroupBarrier();
            for (var e = li; e < ${coefSize}; e = e + ${KS * RT}) {
              let qq = e % ${QT};
              let r1 = e / ${QT};
              let mm = r1 % ${MB};
              let r2 = r1 / ${MB};
              let pp = r2 % ${PT};
              let ab = r2 / ${PT};
              let q = q0 + qq;
              let m = mb * ${MB} + mm;
              let p = p0 + pp;
              var v = 0.0;
              if (q < N && m < ${G} && p < ${R}) {
                v = coeffs[coefBase + (ab * ${R} + p) * N * ${G} + q * ${G} + m];
              }
              coefTile[e] = v;
            }
            workgroupBarrier();
            ${unroll(QPL, (j) => unroll(MB, (mm) => `{
              let cn = cm_${j} * c1_${j} - sm_${j} * s1_${j};
              sm_${j} = sm_${j} * c1_${j} + cm_${j} * s1_${j};
              cm_${j} = cn;
              ${unroll(PT, (pp) => `acc${pp} = acc${pp} + coefTile[${cIdx(0, pp, mm, j)}] * cm_${j} + coefTile[${cIdx(1, pp, mm, j)}] * sm_${j};`)}
            }`))}
          }
        }
        ${unroll(PT, (pp) => `
        workgroupBarrier();
        redTile[li] = acc${pp};
        workgroupBarrier();
        if (lane == 0 && t < rowsPerHead && p0 + ${pp} < ${R}) {
          var sum = 0.0;
          for (var k = 0; k < ${KS}; k = k + 1) { sum = sum + redTile[rowLocal * ${KS} + k]; }
          result[row * ${R} + p0 + ${pp}] = sum;
        }`)}
      }
    `;
  }
}
