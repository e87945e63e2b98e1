/**
 * Base of the one-workgroup-per-row WebGPU programs (LayerNorm, softmax, their gradients,
 * column sums, softmax attention): RowProgram, the workgroup size ROW_WG and the WGSL pieces
 * they share (tree reduction in workgroup memory, row preamble, row mean and 1/std).
 *
 * Row programs use one workgroup of ROW_WG threads per row of an [M, C] input: the threads
 * stride the C columns and reduce through workgroup memory. Column programs use one workgroup
 * per column: the threads stride the M rows. Every program uses the flat global index
 * (`fn main(index : i32)`) so tfjs may reshape large dispatches.
 */
import type {WebGPUProgram} from '@tensorflow/tfjs-backend-webgpu';

export const ROW_WG = 64;

/**
 * Tree reduction of `buf` (ROW_WG entries) into buf[0] by sum (or max); all threads call it
 * (uniform control flow). Starts and ends with a barrier.
 */
export function reduceSnippet(buf: string, op: 'sum' | 'max' = 'sum'): string {
  const combine = op === 'sum' ? `${buf}[tid] + ${buf}[tid + s]` : `max(${buf}[tid], ${buf}[tid + s])`;
  return `
    workgroupBarrier();
    for (var s = ${ROW_WG / 2}; s > 0; s = s >> 1) {
      if (tid < s) { ${buf}[tid] = ${combine}; }
      workgroupBarrier();
    }`;
}

export abstract class RowProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: {x: number[]};
  dispatch: [number, number, number];
  abstract variableNames: string[];
  uniforms?: string;
  workgroupSize: [number, number, number] = [ROW_WG, 1, 1];

  constructor(outputShape: number[], groups: number, key: string) {
    this.outputShape = outputShape;
    this.dispatchLayout = {x: outputShape.map((_, i) => i)};
    this.dispatch = [groups, 1, 1];
    this.shaderKey = key;
  }
  abstract getUserCode(): string;
}

/**
 * Start of a one-workgroup-per-row main() over a [M, C] input `v`: thread id `tid`, sizes
 * `M`, `C`, the row (`rowRaw` may lie past the end in the last group; `row` is clamped) and
 * its offset `base`.
 */
export function rowPreamble(v: string): string {
  return `let tid = i32(localId.x);
        let M = uniforms.${v}Shape[0];
        let C = uniforms.${v}Shape[1];
        let rowRaw = index / ${ROW_WG};
        let row = min(rowRaw, M - 1);
        let base = row * C;`;
}

/** Mean and 1/sqrt(var + eps) of each row of x [M, C] (two passes), as WGSL statements. */
export function rowStatsSnippet(): string {
  return `
    var acc = 0.0;
    for (var c = tid; c < C; c = c + ${ROW_WG}) { acc = acc + x[base + c]; }
    buf[tid] = acc;
    ${reduceSnippet('buf')}
    let mean = buf[0] / f32(C);
    workgroupBarrier();
    var acc2 = 0.0;
    for (var c = tid; c < C; c = c + ${ROW_WG}) { let d = x[base + c] - mean; acc2 = acc2 + d * d; }
    buf[tid] = acc2;
    ${reduceSnippet('buf')}
    let rstd = inverseSqrt(buf[0] / f32(C) + uniforms.epsilon);
    workgroupBarrier();`;
}
