/** WebGPU program of KArAtAdamW: one output of the AdamW step per program (m', v' or param'). */
import {ElementwiseProgram} from './elementwise_program';

/** Uniforms of the AdamW programs, in declaration order. */
export const ADAMW_UNIFORMS = 'beta1 : f32, beta2 : f32, epsilon : f32, lr : f32, decay : f32, bc1 : f32, bc2 : f32,';

/** One output of the AdamW step: 'm' (new first moment), 'v' (second), 'param'. */
export class AdamWProgram extends ElementwiseProgram {
  variableNames: string[];
  override uniforms = ADAMW_UNIFORMS;
  constructor(private readonly which: 'param' | 'm' | 'v', shape: number[]) {
    super(shape, `karatAdamW_${which}`);
    this.variableNames = which === 'm' ? ['m', 'grad'] : which === 'v' ? ['v', 'grad'] : ['param', 'm', 'v', 'grad'];
  }
  getUserCode(): string {
    const body = this.which === 'm' ? 'result[index] = uniforms.beta1 * m[index] + (1.0 - uniforms.beta1) * g;' :
        this.which === 'v' ? 'result[index] = uniforms.beta2 * v[index] + (1.0 - uniforms.beta2) * g * g;' : `
          let m1 = uniforms.beta1 * m[index] + (1.0 - uniforms.beta1) * g;
          let v1 = uniforms.beta2 * v[index] + (1.0 - uniforms.beta2) * g * g;
          let upd = (m1 / uniforms.bc1) / (sqrt(v1 / uniforms.bc2) + uniforms.epsilon);
          result[index] = param[index] * uniforms.decay - uniforms.lr * upd;`;
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let g = grad[index];
          ${body}
        }
      }`;
  }
}
