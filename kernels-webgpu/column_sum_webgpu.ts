/**
 * WebGPU program of the column sums of the fused layer gradients: dgamma and dbeta
 * (KArAtLayerNormGrad), dbias (KArAtBiasGeluGrad). One workgroup per column.
 */
import {GELU_WGSL} from './bias_gelu_webgpu';
import {reduceSnippet, ROW_WG, RowProgram} from './row_program';

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
