/** WebGPU program of KArAtFourierAttentionGradProj (flash-style Fourier-KArAt attention). */
import type {WebGPUProgram} from '@tensorflow/tfjs-backend-webgpu';

import {FLASH_WG} from './plan';

/** dProj[h,j,p] = Σ_b Σ_c v[b,h,j,c] dU[b,h,p,c], one thread per output; dispatch [⌈N·r/64⌉, h]. */
export class FourierAttentionGradProjProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = {x: [0], y: [1]};
  dispatch: [number, number, number];
  variableNames = ['v', 'du'];
  workgroupSize: [number, number, number] = [FLASH_WG, 1, 1];

  constructor(heads: number, tokens: number, private readonly rank: number) {
    this.outputShape = [heads, tokens, rank];
    this.dispatch = [Math.ceil(tokens * rank / FLASH_WG), heads, 1];
    this.shaderKey = `karatFlashGradProj_${rank}`;
  }

  getUserCode(): string {
    const R = this.rank;
    return `
      fn main() {
        let e = i32(workgroupId.x) * ${FLASH_WG} + i32(localId.x);
        let h = i32(workgroupId.y);
        let B = uniforms.vShape[0];
        let H = uniforms.vShape[1];
        let N = uniforms.vShape[2];
        let dv = uniforms.vShape[3];
        if (e < N * ${R}) {
          let j = e / ${R};
          let p = e - j * ${R};
          var acc = 0.0;
          for (var b = 0; b < B; b = b + 1) {
            let bh = b * H + h;
            let vr = (bh * N + j) * dv;
            let ur = (bh * ${R} + p) * dv;
            for (var c = 0; c < dv; c = c + 1) { acc = acc + v[vr + c] * du[ur + c]; }
          }
          result[(h * N + j) * ${R} + p] = acc;
        }
      }`;
  }
}
