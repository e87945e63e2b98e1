/** WebGPU program of KArAtSoftmax: softmax over the last axis of [M, C], one workgroup per row. */
import {reduceSnippet, ROW_WG, RowProgram, rowPreamble} from './row_program';

/** Softmax over the last axis of x [M, C]: one workgroup per row (max, sum of exp, write). */
export class SoftmaxRowProgram extends RowProgram {
  variableNames = ['x'];
  constructor(M: number, C: number) {
    super([M, C], M, 'karatSoftmax');
  }
  getUserCode(): string {
    return `
      var<workgroup> buf : array<f32, ${ROW_WG}>;
      fn main(index : i32) {
        ${rowPreamble('x')}
        var mx = -3.402823e+38;
        for (var c = tid; c < C; c = c + ${ROW_WG}) { mx = max(mx, x[base + c]); }
        buf[tid] = mx;
        ${reduceSnippet('buf', 'max')}
        let rowMax = buf[0];
        workgroupBarrier();
        var acc = 0.0;
        for (var c = tid; c < C; c = c + ${ROW_WG}) { acc = acc + exp(x[base + c] - rowMax); }
        buf[tid] = acc;
        ${reduceSnippet('buf')}
        let inv = 1.0 / buf[0];
        if (rowRaw < M) {
          for (var c = tid; c < C; c = c + ${ROW_WG}) { result[base + c] = exp(x[base + c] - rowMax) * inv; }
        }
      }`;
  }
}
