/**
 * WebGPU program of the second dCoeffs pass of FourierKArAtGrad: sums the per-chunk partials
 * of FourierKArAtGradCoeffsPartialProgram in chunk order (deterministic, no atomics).
 */
import type {WebGPUProgram} from '@tensorflow/tfjs-backend-webgpu';

/** Sums a [chunks, ...rest] tensor over its first axis in chunk order: output rest. */
export class SumChunksProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey = 'karatSumChunks';
  dispatchLayout: {x: number[], y?: number[], z?: number[]};
  dispatch: [number, number, number];
  variableNames = ['partial'];
  uniforms = 'chunks : i32,';
  size = true;
  workgroupSize: [number, number, number] = [64, 1, 1];

  constructor(partialShape: number[]) {
    this.outputShape = partialShape.slice(1);
    const n = this.outputShape.reduce((a, b) => a * b, 1);
    this.dispatchLayout = {x: this.outputShape.map((_, i) => i)};
    this.dispatch = [Math.ceil(n / this.workgroupSize[0]), 1, 1];
  }

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          var sum = 0.0;
          for (var c = 0; c < uniforms.chunks; c = c + 1) {
            sum = sum + partial[c * uniforms.size + index];
          }
          result[index] = sum;
        }
      }
    `;
  }
}
