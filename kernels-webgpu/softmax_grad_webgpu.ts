/** WebGPU program of KArAtSoftmaxGrad: y · (dy - Σ dy·y) per row of [M, C], one workgroup per row. */
import {reduceSnippet, ROW_WG, RowProgram, rowPreamble} from './row_program';

/** Softmax backward dx = y · (dy - Σ dy·y) per row of [M, C]: one workgroup per row. */
export class SoftmaxGradRowProgram extends RowProgram {
  variableNames = ['dy', 'y'];
  constructor(M: number, C: number) {
    super([M, C], M, 'karatSoftmaxGrad');
  }
  getUserCode(): string {
    return `
      var<workgroup> buf : array<f32, ${ROW_WG}>;
      fn main(index : i32) {
        ${rowPreamble('y')}
        var acc = 0.0;
        for (var c = tid; c < C; c = c + ${ROW_WG}) { acc = acc + dy[base + c] * y[base + c]; }
        buf[tid] = acc;
        ${reduceSnippet('buf')}
        let dot = buf[0];
        if (rowRaw < M) {
          for (var c = tid; c < C; c = c + ${ROW_WG}) { result[base + c] = y[base + c] * (dy[base + c] - dot); }
        }
      }`;
  }
}
