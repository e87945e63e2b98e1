/**
 * WebGPU program of the key-column kernels of flash-style Fourier-KArAt attention: 'dk'
 * (KArAtFourierAttentionGradK, one workgroup per (b, h, j)) and 'dcoeffs'
 * (KArAtFourierAttentionGradCoeffs, one workgroup per (h, j) summing over b). Tiling and
 * precision: fourier_attention_program.ts.
 */
import {dScoreSnippet, featuresSnippet, FlashProgram, FourierAttentionColumnMode, FourierAttentionDims} from './fourier_attention_program';
import {SINCOS_WGSL, unroll} from './plan';

/** One workgroup per key column: 'dk' per (b, h, j), 'dcoeffs' per (h, j) summing over b. */
export class FourierAttentionColumnProgram extends FlashProgram {
  variableNames: string[];

  constructor(readonly mode: FourierAttentionColumnMode, d: FourierAttentionDims) {
    const shape = mode === 'dk' ? [d.batch, d.heads, d.tokens, d.headDim] : [d.heads, 2 * d.rank, d.tokens * d.grid];
    super(d, shape, [d.tokens, mode === 'dk' ? d.batch * d.heads : d.heads, 1], `karatFlashColumn_${mode}`);
    this.variableNames = mode === 'dk' ? ['q', 'k', 'coeffs', 'dh'] : ['q', 'k', 'dh'];
  }

  private gradKCode(): string {
    const {rank: R, grid: G} = this.d;
    const {wg: W, dAcc: DA} = this.plan;
    const RG = R * G;
    return `
      var<workgroup> cj : array<f32, ${2 * RG}>;
      var<workgroup> ds : array<f32, ${W}>;
      fn main() {
        let tid = i32(localId.x);
        let j = i32(workgroupId.x);
        let bh = i32(workgroupId.y);
        let N = uniforms.kShape[2];
        let d = uniforms.qShape[3];
        let h = bh % uniforms.qShape[1];
        let qBase = bh * N * d;
        let cBase = h * ${2 * R} * N * ${G};
        for (var c = tid; c < d; c = c + ${W}) { kr[c] = k[(bh * N + j) * d + c]; }
        for (var e = tid; e < ${2 * RG}; e = e + ${W}) {
          let abp = e / ${G};
          cj[e] = coeffs[cBase + abp * N * ${G} + j * ${G} + (e - abp * ${G})];
        }
        workgroupBarrier();
        ${unroll(DA, (a) => `var acc${a} = 0.0;`)}
        for (var i0 = 0; i0 < N; i0 = i0 + ${W}) {
          let i = i0 + tid;
          ${featuresSnippet(G, `let qrow = qBase + i * d; for (var c = 0; c < d; c = c + 1) { s = s + q[qrow + c] * kr[c]; }`, 'i < N')}
          var g = 0.0;
          if (i < N) {
            let dhBase = (bh * N + i) * ${R};
            ${dScoreSnippet(G, R, (p) => `dh[dhBase + ${p}]`, (p, m) => `cj[${p} * ${G} + ${m}]`,
                (p, m) => `cj[${RG} + ${p} * ${G} + ${m}]`)}
          }
          ds[tid] = g;
          workgroupBarrier();
          let iEnd = min(${W}, N - i0);
          ${unroll(DA, (a) => `{
            let c = tid + ${a * W};
            if (c < d) {
              for (var ii = 0; ii < iEnd; ii = ii + 1) { acc${a} = acc${a} + ds[ii] * q[qBase + (i0 + ii) * d + c]; }
            }
          }`)}
          workgroupBarrier();
        }
        ${unroll(DA, (a) => `if (tid + ${a * W} < d) { result[(bh * N + j) * d + tid + ${a * W}] = acc${a}; }`)}
      }`;
  }

  private gradCoeffsCode(): string {
    const {rank: R, grid: G} = this.d;
    const {wg: W, coeffAcc: CA} = this.plan;
    const RG = R * G;
    // Output o = (ab·r + p)·G + m of the key column; thread t owns o = t + W·a.
    return `
      var<workgroup> feat : array<f32, ${2 * W * G}>;
      fn main() {
        let tid = i32(localId.x);
        let j = i32(workgroupId.x);
        let h = i32(workgroupId.y);
        let N = uniforms.kShape[2];
        let d = uniforms.qShape[3];
        let H = uniforms.qShape[1];
        let B = uniforms.qShape[0];
        ${unroll(CA, (a) => `
        let o${a} = min(tid + ${a * W}, ${2 * RG - 1});
        let ab${a} = o${a} / ${RG};
        let p${a} = (o${a} - ab${a} * ${RG}) / ${G};
        let f${a} = ab${a} * ${W * G} + (o${a} % ${G});
        var acc${a} = 0.0;`)}
        for (var b = 0; b < B; b = b + 1) {
          let bh = b * H + h;
          let qBase = bh * N * d;
          workgroupBarrier();
          for (var c = tid; c < d; c = c + ${W}) { kr[c] = k[(bh * N + j) * d + c]; }
          workgroupBarrier();
          for (var i0 = 0; i0 < N; i0 = i0 + ${W}) {
            let i = i0 + tid;
            ${featuresSnippet(G, `let qrow = qBase + i * d; for (var c = 0; c < d; c = c + 1) { s = s + q[qrow + c] * kr[c]; }`, 'i < N')}
            let valid = select(0.0, 1.0, i < N);
            ${unroll(G, (m) => `feat[tid * ${G} + ${m}] = cm${m} * valid; feat[${W * G} + tid * ${G} + ${m}] = sm${m} * valid;`)}
            workgroupBarrier();
            let iEnd = min(${W}, N - i0);
            let dhBase = (bh * N + i0) * ${R};
            ${unroll(CA, (a) => `
            for (var ii = 0; ii < iEnd; ii = ii + 1) {
              acc${a} = acc${a} + dh[dhBase + ii * ${R} + p${a}] * feat[f${a} + ii * ${G}];
            }`)}
            workgroupBarrier();
          }
        }
        ${unroll(CA, (a) => `if (tid + ${a * W} < ${2 * RG}) {
          result[((h * ${2 * R} + ab${a} * ${R} + p${a}) * N + j) * ${G} + (o${a} % ${G})] = acc${a};
        }`)}
      }`;
  }

  getUserCode(): string {
    return `${SINCOS_WGSL}
      var<workgroup> kr : array<f32, ${this.plan.dMax}>;
      ${this.mode === 'dk' ? this.gradKCode() : this.gradCoeffsCode()}`;
  }
}
