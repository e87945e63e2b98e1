/**
 * WebGPU program of KArAtBiasGelu and the dx of KArAtBiasGeluGrad (one thread per element),
 * and the WGSL erf / GELU helpers it shares with the dbias column sum.
 */
import {ElementwiseProgram} from './elementwise_program';

/** The erf approximation tfjs-backend-webgpu uses (Abramowitz & Stegun 7.1.26), and GELU helpers. */
export const GELU_WGSL = `
  fn karatErf(a : f32) -> f32 {
    let p = 0.3275911;
    let a1 = 0.254829592;
    let a2 = -0.284496736;
    let a3 = 1.421413741;
    let a4 = -1.453152027;
    let a5 = 1.061405429;
    let absA = abs(a);
    let t = 1.0 / (1.0 + p * absA);
    return sign(a) * (1.0 - (((((a5 * t + a4) * t) + a3) * t + a2) * t + a1) * t * exp(-absA * absA));
  }
  fn karatGelu(z : f32) -> f32 { return z * 0.5 * (1.0 + karatErf(z * 0.7071067811865476)); }
  fn karatGeluGrad(z : f32) -> f32 {
    return 0.5 * (1.0 + karatErf(z * 0.7071067811865476)) + z * 0.3989422804014327 * exp(-0.5 * z * z);
  }
`;

/** forward: gelu(x + bias); grad: dy · gelu'(x + bias). x, dy [M, C], bias [C]. */
export class BiasGeluProgram extends ElementwiseProgram {
  variableNames: string[];
  constructor(private readonly grad: boolean, shape: number[]) {
    super(shape, grad ? 'karatBiasGeluGrad' : 'karatBiasGelu');
    this.variableNames = grad ? ['dy', 'x', 'bias'] : ['x', 'bias'];
  }
  getUserCode(): string {
    return `
      ${GELU_WGSL}
      fn main(index : i32) {
        if (index < uniforms.size) {
          let C = uniforms.xShape[1];
          let z = x[index] + bias[index % C];
          result[index] = ${this.grad ? 'dy[index] * karatGeluGrad(z)' : 'karatGelu(z)'};
        }
      }`;
  }
}
