/**
 * WebGPU programs of the fused layer ops (core/fused_layers.ts): LayerNorm forward and
 * backward, bias + GELU forward and backward, AdamW update.
 *
 * Row programs (LayerNorm, statistics) use one workgroup of ROW_WG threads per row [M, C]:
 * the threads stride the C columns and reduce through workgroup memory. Column programs
 * (dgamma, dbeta, dbias) use one workgroup per column: the threads stride the M rows.
 * Elementwise programs (GELU, AdamW) use one thread per element. Every program uses the flat
 * global index (`fn main(index : i32)`) so tfjs may reshape large dispatches.
 */
import type {WebGPUProgram} from '@tensorflow/tfjs-backend-webgpu';

export const ROW_WG = 64;
const EW_WG = 64;

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
function rowPreamble(v: string): string {
  return `let tid = i32(localId.x);
        let M = uniforms.${v}Shape[0];
        let C = uniforms.${v}Shape[1];
        let rowRaw = index / ${ROW_WG};
        let row = min(rowRaw, M - 1);
        let base = row * C;`;
}

/** Mean and 1/sqrt(var + eps) of each row of x [M, C] (two passes), as WGSL statements. */
function rowStatsSnippet(): string {
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

/** y = (x - mean) · rstd · gamma + beta, one workgroup per row. */
export class LayerNormProgram extends RowProgram {
  variableNames = ['x', 'gamma', 'beta'];
  override uniforms = 'epsilon : f32,';
  constructor(M: number, C: number) {
    super([M, C], M, 'karatLayerNorm');
  }
  getUserCode(): string {
    return `
      var<workgroup> buf : array<f32, ${ROW_WG}>;
      fn main(index : i32) {
        ${rowPreamble('x')}
        ${rowStatsSnippet()}
        if (rowRaw < M) {
          for (var c = tid; c < C; c = c + ${ROW_WG}) {
            result[base + c] = (x[base + c] - mean) * rstd * gamma[c] + beta[c];
          }
        }
      }`;
  }
}

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

/** dx = rstd · (g - mean(g) - xhat · mean(g · xhat)), g = dy · gamma; one workgroup per row. */
export class LayerNormGradDxProgram extends RowProgram {
  variableNames = ['dy', 'x', 'gamma', 'stats'];
  constructor(M: number, C: number) {
    super([M, C], M, 'karatLayerNormGradDx');
  }
  getUserCode(): string {
    return `
      var<workgroup> buf : array<f32, ${ROW_WG}>;
      var<workgroup> buf2 : array<f32, ${ROW_WG}>;
      fn main(index : i32) {
        ${rowPreamble('x')}
        let mean = stats[row * 2];
        let rstd = stats[row * 2 + 1];
        var s1 = 0.0;
        var s2 = 0.0;
        for (var c = tid; c < C; c = c + ${ROW_WG}) {
          let g = dy[base + c] * gamma[c];
          s1 = s1 + g;
          s2 = s2 + g * (x[base + c] - mean) * rstd;
        }
        buf[tid] = s1;
        buf2[tid] = s2;
        workgroupBarrier();
        for (var s = ${ROW_WG / 2}; s > 0; s = s >> 1) {
          if (tid < s) {
            buf[tid] = buf[tid] + buf[tid + s];
            buf2[tid] = buf2[tid] + buf2[tid + s];
          }
          workgroupBarrier();
        }
        let m1 = buf[0] / f32(C);
        let m2 = buf2[0] / f32(C);
        if (rowRaw < M) {
          for (var c = tid; c < C; c = c + ${ROW_WG}) {
            let g = dy[base + c] * gamma[c];
            let xhat = (x[base + c] - mean) * rstd;
            result[base + c] = rstd * (g - m1 - xhat * m2);
          }
        }
      }`;
  }
}

/**
 * Column sums over the M rows of dy [M, C]: which = 'dgamma' (Σ dy · xhat, needs x and stats),
 * 'dbeta' (Σ dy), 'dbias-gelu' (Σ dy · gelu'(x + bias)). One workgroup per column.
 */
export class ColumnSumProgram extends RowProgram {
  variableNames: string[];
  constructor(private readonly which: 'dgamma' | 'dbeta' | 'dbias-gelu', C: number) {
    super([C], C, `karatColSum_${which}`);
    this.variableNames = which === 'dgamma' ? ['dy', 'x', 'stats'] :
        which === 'dbeta' ? ['dy'] : ['dy', 'x', 'bias'];
  }
  getUserCode(): string {
    const term = this.which === 'dgamma' ? 'dy[i] * (x[i] - stats[r * 2]) * stats[r * 2 + 1]' :
        this.which === 'dbeta' ? 'dy[i]' : 'dy[i] * karatGeluGrad(x[i] + bias[col])';
    return `
      ${this.which === 'dbias-gelu' ? GELU_WGSL : ''}
      var<workgroup> buf : array<f32, ${ROW_WG}>;
      fn main(index : i32) {
        let tid = i32(localId.x);
        let M = uniforms.dyShape[0];
        let C = uniforms.dyShape[1];
        let colRaw = index / ${ROW_WG};
        let col = min(colRaw, C - 1);
        var acc = 0.0;
        for (var r = tid; r < M; r = r + ${ROW_WG}) {
          let i = r * C + col;
          acc = acc + ${term};
        }
        buf[tid] = acc;
        ${reduceSnippet('buf')}
        if (colRaw < C && tid == 0) { result[col] = buf[0]; }
      }`;
  }
}

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

abstract class ElementwiseProgram implements WebGPUProgram {
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
