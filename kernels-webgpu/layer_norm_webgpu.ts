/** WebGPU program of KArAtLayerNorm: y = (x - mean) · rstd · gamma + beta over the last axis of [M, C]. */
import {ROW_WG, RowProgram, rowPreamble, rowStatsSnippet} from './row_program';

/** y = (x - mean) · rstd · gamma + beta, one workgroup per row. */
export class LayerNormProgram extends RowProgram {
  variableNames = ['x', 'gamma', 'beta'];
  override uniforms = 'epsilon : f32,';
  constructor(M: number, C: number) {
    super([M, C], M, 'karatLayerNorm');
  }
  getUserCode(): string {
    return `
      var<workgroup> buf : array<f32, ${ROW_WG}>;
      fn main(index : i32) {
        ${rowPreamble('x')}
        ${rowStatsSnippet()}
        if (rowRaw < M) {
          for (var c = tid; c < C; c = c + ${ROW_WG}) {
            result[base + c] = (x[base + c] - mean) * rstd * gamma[c] + beta[c];
          }
        }
      }`;
  }
}
