/** WebGPU program of the LayerNorm row statistics (mean, rstd) used by KArAtLayerNormGrad. */
import {ROW_WG, RowProgram, rowPreamble, rowStatsSnippet} from './row_program';

/** Row statistics [M, 2] = (mean, rstd) for the backward. */
export class LayerNormStatsProgram extends RowProgram {
  variableNames = ['x'];
  override uniforms = 'epsilon : f32,';
  constructor(M: number) {
    super([M, 2], M, 'karatLayerNormStats');
  }
  getUserCode(): string {
    return `
      var<workgroup> buf : array<f32, ${ROW_WG}>;
      fn main(index : i32) {
        ${rowPreamble('x')}
        ${rowStatsSnippet()}
        if (rowRaw < M && tid == 0) {
          result[row * 2] = mean;
          result[row * 2 + 1] = rstd;
        }
      }`;
  }
}
