/**
 * WebGPU program of the query-row kernels of flash-style Fourier-KArAt attention, one
 * workgroup per query row (b, h, i), dispatch [N, B·h]: 'out' (KArAtFourierAttention),
 * 'hidden' (KArAtFourierAttentionHidden) and 'dq' (KArAtFourierAttentionGradQ). Tiling and
 * precision: fourier_attention_program.ts.
 */
import {dScoreSnippet, featuresSnippet, FlashProgram, FourierAttentionDims, FourierAttentionRowMode} from './fourier_attention_program';
import {SINCOS_WGSL, unroll} from './plan';

/** One workgroup per query row: 'out' (forward), 'hidden' (ĥ recompute) and 'dq'. */
export class FourierAttentionRowProgram extends FlashProgram {
  variableNames: string[];

  constructor(readonly mode: FourierAttentionRowMode, d: FourierAttentionDims, valueDim = 0) {
    const shape = mode === 'out' ? [d.batch, d.heads, d.tokens, valueDim] :
        mode === 'hidden' ? [d.batch, d.heads, d.tokens, d.rank] : [d.batch, d.heads, d.tokens, d.headDim];
    super(d, shape, [d.tokens, d.batch * d.heads, 1], `karatFlashRow_${mode}`);
    this.variableNames = mode === 'out' ? ['q', 'k', 'coeffs', 'u'] :
        mode === 'hidden' ? ['q', 'k', 'coeffs'] : ['q', 'k', 'coeffs', 'dh'];
  }

  private forwardCode(): string {
    const {rank: R, grid: G} = this.d;
    const {wg: W, split: SP} = this.plan;
    const tail = this.mode === 'hidden' ?
        `if (tid < ${R}) { result[row * ${R} + tid] = hid[tid]; }` : `
        let dv = uniforms.uShape[3];
        let uBase = bh * ${R} * dv;
        for (var c = tid; c < dv; c = c + ${W}) {
          var o = 0.0;
          for (var p = 0; p < ${R}; p = p + 1) { o = o + hid[p] * u[uBase + p * dv + c]; }
          result[row * dv + c] = o;
        }`;
    return `
      var<workgroup> fc : array<f32, ${W * G}>;
      var<workgroup> fs : array<f32, ${W * G}>;
      var<workgroup> red : array<f32, ${W}>;
      var<workgroup> hid : array<f32, ${R}>;
      fn main() {
        ${this.preamble()}
        let p = tid / ${SP};
        let lane = tid - p * ${SP};
        let busy = p < ${R};
        let aBase = cBase + min(p, ${R - 1}) * N * ${G};
        let bBase = aBase + ${R} * N * ${G};
        var acc = 0.0;
        for (var j0 = 0; j0 < N; j0 = j0 + ${W}) {
          let j = j0 + tid;
          ${featuresSnippet(G, `let kr = kBase + j * d; for (var c = 0; c < d; c = c + 1) { s = s + qr[c] * k[kr + c]; }`, 'j < N')}
          let valid = select(0.0, 1.0, j < N);
          ${unroll(G, (m) => `fc[tid * ${G} + ${m}] = cm${m} * valid; fs[tid * ${G} + ${m}] = sm${m} * valid;`)}
          workgroupBarrier();
          if (busy) {
            let jEnd = min(${W}, N - j0);
            for (var jj = lane; jj < jEnd; jj = jj + ${SP}) {
              let o = (j0 + jj) * ${G};
              ${unroll(G, (m) => `acc = acc + coeffs[aBase + o + ${m}] * fc[jj * ${G} + ${m}] + coeffs[bBase + o + ${m}] * fs[jj * ${G} + ${m}];`)}
            }
          }
          workgroupBarrier();
        }
        red[tid] = acc;
        workgroupBarrier();
        if (tid < ${R}) {
          var sum = 0.0;
          for (var l = 0; l < ${SP}; l = l + 1) { sum = sum + red[tid * ${SP} + l]; }
          hid[tid] = sum;
        }
        workgroupBarrier();
        ${tail}
      }`;
  }

  private gradQCode(): string {
    const {rank: R, grid: G} = this.d;
    const {wg: W, dAcc: DA} = this.plan;
    return `
      var<workgroup> dhr : array<f32, ${R}>;
      var<workgroup> ds : array<f32, ${W}>;
      fn main() {
        ${this.preamble(`if (tid < ${R}) { dhr[tid] = dh[row * ${R} + tid]; }`)}
        ${unroll(DA, (a) => `var acc${a} = 0.0;`)}
        for (var j0 = 0; j0 < N; j0 = j0 + ${W}) {
          let j = j0 + tid;
          ${featuresSnippet(G, `let kr = kBase + j * d; for (var c = 0; c < d; c = c + 1) { s = s + qr[c] * k[kr + c]; }`, 'j < N')}
          var g = 0.0;
          if (j < N) {
            ${dScoreSnippet(G, R, (p) => `dhr[${p}]`, (p, m) => `coeffs[cBase + ${p} * N * ${G} + j * ${G} + ${m}]`,
                (p, m) => `coeffs[cBase + (${R} + ${p}) * N * ${G} + j * ${G} + ${m}]`)}
          }
          ds[tid] = g;
          workgroupBarrier();
          let jEnd = min(${W}, N - j0);
          ${unroll(DA, (a) => `{
            let c = tid + ${a * W};
            if (c < d) {
              for (var jj = 0; jj < jEnd; jj = jj + 1) { acc${a} = acc${a} + ds[jj] * k[kBase + (j0 + jj) * d + c]; }
            }
          }`)}
          workgroupBarrier();
        }
        ${unroll(DA, (a) => `if (tid + ${a * W} < d) { result[row * d + tid + ${a * W}] = acc${a}; }`)}
      }`;
  }

  /** Indices of the row and its head, the q row staged in `qr` (plus `extra`), one barrier. */
  private preamble(extra = ''): string {
    const {rank: R, grid: G} = this.d;
    return `
        let tid = i32(localId.x);
        let i = i32(workgroupId.x);
        let bh = i32(workgroupId.y);
        let N = uniforms.kShape[2];
        let d = uniforms.qShape[3];
        let h = bh % uniforms.qShape[1];
        let row = bh * N + i;
        let kBase = bh * N * d;
        let cBase = h * ${2 * R} * N * ${G};
        for (var c = tid; c < d; c = c + ${this.plan.wg}) { qr[c] = q[row * d + c]; }
        ${extra}
        workgroupBarrier();`;
  }

  getUserCode(): string {
    return `${SINCOS_WGSL}
      var<workgroup> qr : array<f32, ${this.plan.dMax}>;
      ${this.mode === 'dq' ? this.gradQCode() : this.forwardCode()}`;
  }
}
