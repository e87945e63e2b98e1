/**
 * WebGPU program of the fused softmax-attention kernels (core/attention.ts), flash-style:
 * one workgroup of ROW_WG threads per query row (b, h, i). The row's T x S scores never reach
 * GPU memory: the workgroup computes s_j = q_i · k_j into workgroup memory, reduces the row
 * maximum and the sum of exponentials, then, by mode,
 *   'out'     writes o_i = Σ_j p_j v_j          (KArAtSoftmaxAttention, the forward pass)
 *   'probs'   writes the row p_i· of P           (KArAtSoftmaxAttentionProbs, backward recompute)
 *   'dscores' writes dS_i· = p ∘ (dp − p·dp), dp_j = dy_i · v_j
 *                                                (KArAtSoftmaxAttentionGradScores)
 * Inputs q [B,h,T,d], k [B,h,S,d], v [B,h,S,dv], dy [B,h,T,dv]. Workgroup memory holds the
 * score row (S floats), the query row and, for 'dscores', the dy row, so S, d and dv are
 * bounded (SOFTMAX_ATTENTION_LIMITS in the op contract).
 */
import {reduceSnippet, ROW_WG, RowProgram} from './row_program';

export type AttentionMode = 'out' | 'probs' | 'dscores';

const roundUp = (n: number) => Math.max(ROW_WG, Math.ceil(n / ROW_WG) * ROW_WG);

export class AttentionRowProgram extends RowProgram {
  variableNames: string[];
  private readonly sMax: number;
  private readonly dMax: number;
  private readonly dvMax: number;

  constructor(readonly mode: AttentionMode, outputShape: number[], rows: number, S: number, d: number, dv: number) {
    const sMax = roundUp(S), dMax = roundUp(d), dvMax = roundUp(dv);
    super(outputShape, rows, `karatAttention_${mode}_${sMax}_${dMax}_${dvMax}`);
    this.sMax = sMax;
    this.dMax = dMax;
    this.dvMax = dvMax;
    this.variableNames = mode === 'out' ? ['q', 'k', 'v'] : mode === 'probs' ? ['q', 'k'] : ['q', 'k', 'v', 'dy'];
  }

  private tail(): string {
    const W = ROW_WG;
    if (this.mode === 'probs') {
      return `
        if (rowRaw < R) {
          for (var j = tid; j < S; j = j + ${W}) { result[row * S + j] = sc[j] * inv; }
        }`;
    }
    const vRows = `
        let dv = uniforms.vShape[3];
        let vBase = (row / T) * S * dv;`;
    if (this.mode === 'out') {
      return `${vRows}
        if (rowRaw < R) {
          for (var c = tid; c < dv; c = c + ${W}) {
            var acc = 0.0;
            for (var j = 0; j < S; j = j + 1) { acc = acc + sc[j] * v[vBase + j * dv + c]; }
            result[row * dv + c] = acc * inv;
          }
        }`;
    }
    // dscores: dp_j goes to result first (each thread rereads only its own entries), then
    // dS_j = p_j (dp_j - Σ p·dp).
    return `${vRows}
        for (var c = tid; c < dv; c = c + ${W}) { gr[c] = dy[row * dv + c]; }
        workgroupBarrier();
        var dot = 0.0;
        for (var j = tid; j < S; j = j + ${W}) {
          var acc = 0.0;
          let vr = vBase + j * dv;
          for (var c = 0; c < dv; c = c + 1) { acc = acc + gr[c] * v[vr + c]; }
          let p = sc[j] * inv;
          sc[j] = p;
          dot = dot + p * acc;
          if (rowRaw < R) { result[row * S + j] = acc; }
        }
        buf[tid] = dot;
        ${reduceSnippet('buf')}
        let total = buf[0];
        if (rowRaw < R) {
          for (var j = tid; j < S; j = j + ${W}) {
            result[row * S + j] = sc[j] * (result[row * S + j] - total);
          }
        }`;
  }

  getUserCode(): string {
    const W = ROW_WG;
    return `
      var<workgroup> buf : array<f32, ${W}>;
      var<workgroup> sc : array<f32, ${this.sMax}>;
      var<workgroup> qr : array<f32, ${this.dMax}>;
      ${this.mode === 'dscores' ? `var<workgroup> gr : array<f32, ${this.dvMax}>;` : ''}
      fn main(index : i32) {
        let tid = i32(localId.x);
        let T = uniforms.qShape[2];
        let d = uniforms.qShape[3];
        let S = uniforms.kShape[2];
        let R = uniforms.qShape[0] * uniforms.qShape[1] * T;
        let rowRaw = index / ${W};
        let row = min(rowRaw, R - 1);
        let kBase = (row / T) * S * d;
        for (var c = tid; c < d; c = c + ${W}) { qr[c] = q[row * d + c]; }
        workgroupBarrier();
        var mx = -3.402823e+38;
        for (var j = tid; j < S; j = j + ${W}) {
          var acc = 0.0;
          let kr = kBase + j * d;
          for (var c = 0; c < d; c = c + 1) { acc = acc + qr[c] * k[kr + c]; }
          sc[j] = acc;
          mx = max(mx, acc);
        }
        buf[tid] = mx;
        ${reduceSnippet('buf', 'max')}
        let rowMax = buf[0];
        workgroupBarrier();
        var sum = 0.0;
        for (var j = tid; j < S; j = j + ${W}) {
          let e = exp(sc[j] - rowMax);
          sc[j] = e;
          sum = sum + e;
        }
        buf[tid] = sum;
        ${reduceSnippet('buf')}
        let inv = 1.0 / buf[0];
        workgroupBarrier();
        ${this.tail()}
      }`;
  }
}
