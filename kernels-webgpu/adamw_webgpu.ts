/**
 * The AdamW step in WGSL, shared by both webgpu AdamW kernels: the uniforms and their data
 * (`ADAMW_UNIFORMS`, `adamWUniformData`), the step itself (`adamWStepWGSL`), and
 * `AdamWProgram`, one output of the step per program (KArAtAdamW: m', v' or param').
 * The in-place kernel (adamw_inplace.ts) runs the same snippet with all three outputs.
 */
import type {NamedAttrMap} from '@tensorflow/tfjs-core';

import {AdamWUpdateAttrs, adamWScalars} from '../core/adamw';
import {ElementwiseProgram} from './elementwise_program';

/** Uniforms of the AdamW programs, in declaration order. */
export const ADAMW_UNIFORMS = 'beta1 : f32, beta2 : f32, epsilon : f32, lr : f32, decay : f32, bc1 : f32, bc2 : f32,';

/** The AdamW attrs as the uniform data of ADAMW_UNIFORMS (bias corrections and decay from adamWScalars). */
export function adamWUniformData(attrs?: NamedAttrMap): Array<{type: string, data: number[]}> {
  const a = attrs as unknown as AdamWUpdateAttrs;
  const {bc1, bc2, decay} = adamWScalars(a);
  return [a.beta1, a.beta2, a.epsilon, a.learningRate, decay, bc1, bc2].map((x) => ({type: 'float32', data: [x]}));
}

/**
 * WGSL statements of one AdamW step, in the op order of core/adamw.ts compositeAdamW, with the
 * hyper-parameters read from the struct `u` (fields of ADAMW_UNIFORMS) and the inputs given as
 * WGSL expressions: binds `m1` = β1 m + (1-β1) g (when `m` is given), `v1` = β2 v + (1-β2) g²
 * (when `v` is given) and `p1` = p·decay - lr · ((m1/bc1) / (sqrt(v1/bc2) + ε)) (when `param`
 * is given; needs `m` and `v`).
 */
export function adamWStepWGSL(u: string, x: {grad: string, m?: string, v?: string, param?: string}): string {
  const lines: string[] = [];
  if (x.m != null) lines.push(`let m1 = ${u}.beta1 * ${x.m} + (1.0 - ${u}.beta1) * ${x.grad};`);
  if (x.v != null) lines.push(`let v1 = ${u}.beta2 * ${x.v} + (1.0 - ${u}.beta2) * ${x.grad} * ${x.grad};`);
  if (x.param != null) {
    if (x.m == null || x.v == null) throw new Error('adamWStepWGSL: param\' needs m and v');
    lines.push(`let p1 = ${x.param} * ${u}.decay - ${u}.lr * ((m1 / ${u}.bc1) / (sqrt(v1 / ${u}.bc2) + ${u}.epsilon));`);
  }
  return lines.join('\n');
}

/** One output of the AdamW step: 'm' (new first moment), 'v' (second), 'param'. */
export class AdamWProgram extends ElementwiseProgram {
  variableNames: string[];
  override uniforms = ADAMW_UNIFORMS;
  constructor(private readonly which: 'param' | 'm' | 'v', shape: number[]) {
    super(shape, `karatAdamW_${which}`);
    this.variableNames = which === 'm' ? ['m', 'grad'] : which === 'v' ? ['v', 'grad'] : ['param', 'm', 'v', 'grad'];
  }
  getUserCode(): string {
    const w = this.which;
    const step = adamWStepWGSL('uniforms', {
      grad: 'g', m: w !== 'v' ? 'm[index]' : undefined, v: w !== 'm' ? 'v[index]' : undefined,
      param: w === 'param' ? 'param[index]' : undefined,
    });
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let g = grad[index];
          ${step}
          result[index] = ${w === 'm' ? 'm1' : w === 'v' ? 'v1' : 'p1'};
        }
      }`;
  }
}
