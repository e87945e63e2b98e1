/**
 * Base of the one-thread-per-element WebGPU programs (bias + GELU, AdamW): dispatch over the
 * flat output, `uniforms.size` elements, workgroups of 64 threads.
 */
import type {WebGPUProgram} from '@tensorflow/tfjs-backend-webgpu';

const EW_WG = 64;

export abstract class ElementwiseProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: {x: number[]};
  dispatch: [number, number, number];
  abstract variableNames: string[];
  uniforms?: string;
  size = true;
  workgroupSize: [number, number, number] = [EW_WG, 1, 1];
  constructor(outputShape: number[], key: string) {
    this.outputShape = outputShape;
    this.dispatchLayout = {x: outputShape.map((_, i) => i)};
    const n = outputShape.reduce((a, b) => a * b, 1);
    this.dispatch = [Math.ceil(n / EW_WG), 1, 1];
    this.shaderKey = key;
  }
  abstract getUserCode(): string;
}
