/** WebGPU program of the LayerNorm input gradient dx (KArAtLayerNormGrad), one workgroup per row. */
import {ROW_WG, RowProgram, rowPreamble} from './row_program';

/** dx = rstd · (g - mean(g) - xhat · mean(g · xhat)), g = dy · gamma; one workgroup per row. */
export class LayerNormGradDxProgram extends RowProgram {
  variableNames = ['dy', 'x', 'gamma', 'stats'];
  constructor(M: number, C: number) {
    super([M, C], M, 'karatLayerNormGradDx');
  }
  getUserCode(): string {
    return `
      var<workgroup> buf : array<f32, ${ROW_WG}>;
      var<workgroup> buf2 : array<f32, ${ROW_WG}>;
      fn main(index : i32) {
        ${rowPreamble('x')}
        let mean = stats[row * 2];
        let rstd = stats[row * 2 + 1];
        var s1 = 0.0;
        var s2 = 0.0;
        for (var c = tid; c < C; c = c + ${ROW_WG}) {
          let g = dy[base + c] * gamma[c];
          s1 = s1 + g;
          s2 = s2 + g * (x[base + c] - mean) * rstd;
        }
        buf[tid] = s1;
        buf2[tid] = s2;
        workgroupBarrier();
        for (var s = ${ROW_WG / 2}; s > 0; s = s >> 1) {
          if (tid < s) {
            buf[tid] = buf[tid] + buf[tid + s];
            buf2[tid] = buf2[tid] + buf2[tid + s];
          }
          workgroupBarrier();
        }
        let m1 = buf[0] / f32(C);
        let m2 = buf2[0] / f32(C);
        if (rowRaw < M) {
          for (var c = tid; c < C; c = c + ${ROW_WG}) {
            let g = dy[base + c] * gamma[c];
            let xhat = (x[base + c] - mean) * rstd;
            result[base + c] = rstd * (g - m1 - xhat * m2);
          }
        }
      }`;
  }
}
