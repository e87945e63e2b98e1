/**
 * WebGL (GLSL ES 3.0) programs of the fused Fourier-KArAt kernels, in tfjs-backend-webgl's
 * GPGPUProgram style: `variableNames` name the inputs (the shader compiler generates
 * getters such as `getScores(b, h, i, q)`), `outputShape` + `userCode` with `main()`
 * calling `setOutput`. Sizes are baked into the source as constants (one compiled
 * program per shape, as tfjs does).
 *
 * All heavy programs use *packed* textures (RGBA texel = 2x2 block of the last two axes:
 * x=(r,c), y=(r,c+1), z=(r+1,c), w=(r+1,c+1)), so one fetch brings four values:
 *
 *   CoeffPackProgram      coeffs [h,2,r,N,G]  -> C' [h, 2·N·G, r] packed: the texel at
 *                         (2k, p) holds A[p,k], A[p+1,k], B[p,k], B[p+1,k] (k = q·G+m-1)
 *   ForwardProgram        scores, C'          -> ĥ [B,h,N,r] packed; a texel = rows i,i+1 x
 *                         ranks p,p+1; per score one sincos + angle-addition recurrence
 *   GradScoresProgram     dy, scores, C'      -> dS [B,h,N,N] packed; a texel = rows i,i+1
 *                         x columns q,q+1; Σ_p dy·A / dy·B per harmonic kept in registers
 *   GradCoeffsPartialProgram dy, scores       -> P [K, h, 2·N·G, r] packed: partial sums of
 *                         dA, dB over chunk k of the B·N rows (no atomics)
 *   GradCoeffsReduceProgram  P                -> dCoeffs as [h, 2, r, N·G] (unpacked):
 *                         sums the K partials and restores the contract's layout
 *
 * Out-of-range channels of packed inputs (odd N or r) may hold anything, so they are
 * never read into a valid output: tails are peeled at code-generation time.
 */
import type {GPGPUProgram} from '@tensorflow/tfjs-backend-webgl';
import type {TensorInfo} from '@tensorflow/tfjs-core';

import {fourierKArAtDims} from '../core/kernel_names';

/** GLSL float literal. */
function f(x: number): string {
  const s = String(x);
  return /[.eE]/.test(s) ? s : s + '.0';
}

/**
 * `vec2 karatSinCos(float x)` = (cos x, sin x) to float32 accuracy for |x| up to ~1e4:
 * Cody-Waite reduction by π/2 in three parts, then minimax polynomials on [-π/4, π/4]
 * (the Cephes sinf/cosf coefficients). GPU built-in sin/cos are only required to be
 * accurate to ~2^-11 absolute (Vulkan/SwiftShader) and degrade for large arguments.
 */
export const SINCOS_GLSL = `
  vec2 karatSinCos(float x) {
    float k = floor(x * 0.6366197723675814 + 0.5);
    float r = ((x - k * 1.5703125) - k * 4.837512969970703125e-4) - k * 7.54978995489188216e-8;
    float z = r * r;
    float sr = ((-1.9515295891e-4 * z + 8.3321608736e-3) * z - 1.6666654611e-1) * z * r + r;
    float cr = ((2.443315711809948e-5 * z - 1.388731625493765e-3) * z + 4.166664568298827e-2) * z * z
               - 0.5 * z + 1.0;
    float quadrant = k - 4.0 * floor(k * 0.25);
    vec2 cs = vec2(cr, sr);
    if (quadrant == 1.0 || quadrant == 3.0) cs = vec2(-cs.y, cs.x);
    if (quadrant >= 2.0) cs = -cs;
    return cs;
  }
`;

/** Sizes shared by the programs. */
export interface Dims {B: number; H: number; N: number; R: number; G: number}

/** The programs' sizes for the kernel inputs scores and coeffs. */
export function webglDims(scores: TensorInfo, coeffs: TensorInfo): Dims {
  const d = fourierKArAtDims(scores, coeffs);
  return {B: d.batch, H: d.heads, N: d.tokens, R: d.rank, G: d.grid};
}

/** coeffs [h,2,r,N,G] (unpacked) -> C' [h, 2·N·G, r] packed (see the file comment). */
export class CoeffPackProgram implements GPGPUProgram {
  variableNames = ['coeffs'];
  outputShape: number[];
  userCode: string;
  packedInputs = false;
  packedOutput = true;

  constructor(d: Dims) {
    const {H, N, R, G} = d;
    this.outputShape = [H, 2 * N * G, R];
    this.userCode = `
      void main() {
        ivec3 rc = getOutputCoords();
        int hh = rc.x;
        int k = rc.y / 2;
        int p = rc.z;
        int q = k / ${G};
        int m = k - q * ${G};
        vec4 v = vec4(0.0);
        v.x = getCoeffs(hh, 0, p, q, m);
        v.z = getCoeffs(hh, 1, p, q, m);
        if (p + 1 < ${R}) {
          v.y = getCoeffs(hh, 0, p + 1, q, m);
          v.w = getCoeffs(hh, 1, p + 1, q, m);
        }
        setOutput(v);
      }
    `;
  }
}

/** Code that advances (c, s) = (cos mθ, sin mθ) to m+1 given (c1, s1) = (cos θ, sin θ). */
function step(c: string, s: string, c1: string, s1: string, tmp: string): string {
  return `${tmp} = ${c} * ${c1} - ${s} * ${s1}; ${s} = ${s} * ${c1} + ${c} * ${s1}; ${c} = ${tmp};`;
}

/** ĥ [B,h,N,r] from scores [B,h,N,N] and C' (packed in, packed out). */
export class ForwardProgram implements GPGPUProgram {
  variableNames = ['scores', 'coef'];
  outputShape: number[];
  userCode: string;
  packedInputs = true;
  packedOutput = true;

  constructor(d: Dims) {
    const {B, H, N, R, G} = d;
    this.outputShape = [B, H, N, R];
    // One column q of scores for rows i (s0) and i+1 (s1): features for m = 1..G by the
    // recurrence, 8 multiply-adds per coefficient texel.
    const column = (q: string, s0: string, s1: string) => {
      const lines = [
        `{`,
        `  int row = 2 * (${q}) * ${G};`,
        `  vec2 f0 = karatSinCos(${s0});`,
        `  vec2 f1 = karatSinCos(${s1});`,
        `  float c0 = f0.x, sn0 = f0.y, c1 = f1.x, sn1 = f1.y, t;`,
      ];
      for (let m = 0; m < G; m++) {
        if (m > 0) {
          lines.push(`  ${step('c0', 'sn0', 'f0.x', 'f0.y', 't')}`);
          lines.push(`  ${step('c1', 'sn1', 'f1.x', 'f1.y', 't')}`);
        }
        lines.push(`  { vec4 c = getCoef(hh, row + ${2 * m}, p);`);
        lines.push(`    acc.xy += c.xy * c0 + c.zw * sn0;`);
        lines.push(`    acc.zw += c.xy * c1 + c.zw * sn1; }`);
      }
      lines.push(`}`);
      return lines.join('\n        ');
    };
    const pairs = Math.floor(N / 2);
    this.userCode = `
      ${SINCOS_GLSL}
      void main() {
        ivec4 rc = getOutputCoords();
        int b = rc.x, hh = rc.y, i = rc.z, p = rc.w;
        vec4 acc = vec4(0.0);
        for (int qp = 0; qp < ${pairs}; qp++) {
          int q = 2 * qp;
          vec4 s = getScores(b, hh, i, q);
          ${column('q', 's.x', 's.z')}
          ${column('q + 1', 's.y', 's.w')}
        }
        ${N % 2 === 1 ? `{
          vec4 s = getScores(b, hh, i, ${N - 1});
          ${column(String(N - 1), 's.x', 's.z')}
        }` : ''}
        setOutput(acc);
      }
    `;
  }
}

/** dScores [B,h,N,N] from dy [B,h,N,r], scores and C' (packed in, packed out). */
export class GradScoresProgram implements GPGPUProgram {
  variableNames = ['dy', 'scores', 'coef'];
  outputShape: number[];
  userCode: string;
  packedInputs = true;
  packedOutput = true;

  constructor(d: Dims) {
    const {B, H, N, R, G} = d;
    this.outputShape = [B, H, N, N];
    // aM/bM (vec4 over the texel's four (row, column) pairs) = Σ_p dy·A[p,q,m], Σ_p dy·B.
    const decl: string[] = [];
    for (let m = 0; m < G; m++) decl.push(`vec4 a${m} = vec4(0.0), b${m} = vec4(0.0);`);
    // One pair of ranks p, p+1 (full = both valid) for all harmonics.
    const ranks = (full: boolean) => {
      const lines = [`vec4 g = getDy(b, hh, i, p);`];
      if (!full) lines.push(`g.yw = vec2(0.0);`);   // rank p+1 does not exist
      for (let m = 0; m < G; m++) {
        lines.push(`{ vec4 c = getCoef(hh, rowQ + ${2 * m}, p);`);
        lines.push(`  vec4 e = getCoef(hh, rowQ1 + ${2 * m}, p);`);
        if (!full) lines.push(`  c.yw = vec2(0.0); e.yw = vec2(0.0);`);
        lines.push(`  a${m} += vec4(dot(g.xy, c.xy), dot(g.xy, e.xy), dot(g.zw, c.xy), dot(g.zw, e.xy));`);
        lines.push(`  b${m} += vec4(dot(g.xy, c.zw), dot(g.xy, e.zw), dot(g.zw, c.zw), dot(g.zw, e.zw)); }`);
      }
      return lines.join('\n          ');
    };
    const combine: string[] = [];
    for (let m = 0; m < G; m++) {
      if (m > 0) {
        combine.push(`t = cm * c1 - sm * s1; sm = sm * c1 + cm * s1; cm = t;`);
      }
      combine.push(`ds += ${f(m + 1)} * (b${m} * cm - a${m} * sm);`);
    }
    this.userCode = `
      ${SINCOS_GLSL}
      void main() {
        ivec4 rc = getOutputCoords();
        int b = rc.x, hh = rc.y, i = rc.z, q = rc.w;
        int q1 = min(q + 1, ${N - 1});
        int rowQ = 2 * q * ${G};
        int rowQ1 = 2 * q1 * ${G};
        ${decl.join('\n        ')}
        for (int pp = 0; pp < ${Math.floor(R / 2)}; pp++) {
          int p = 2 * pp;
          ${ranks(true)}
        }
        ${R % 2 === 1 ? `{
          int p = ${R - 1};
          ${ranks(false)}
        }` : ''}
        vec4 s = getScores(b, hh, i, q);
        vec2 f0 = karatSinCos(s.x), f1 = karatSinCos(s.y), f2 = karatSinCos(s.z), f3 = karatSinCos(s.w);
        vec4 c1 = vec4(f0.x, f1.x, f2.x, f3.x), s1 = vec4(f0.y, f1.y, f2.y, f3.y);
        vec4 cm = c1, sm = s1, t;
        vec4 ds = vec4(0.0);
        ${combine.join('\n        ')}
        setOutput(ds);
      }
    `;
  }
}

/**
 * Partial sums of dA, dB over chunks of the B·N rows: output [K, h, 2·N·G, r] packed,
 * chunk k covering row pairs [k·chunk, (k+1)·chunk) of the B·ceil(N/2) pairs (i, i+1).
 * The texel at (k, h, 2(q·G+m-1), p) holds dA[p], dA[p+1], dB[p], dB[p+1] for (q, m);
 * its harmonic m comes from the texel's position, so cos(m·s), sin(m·s) are evaluated
 * directly (one karatSinCos per score and texel).
 */
export class GradCoeffsPartialProgram implements GPGPUProgram {
  variableNames = ['dy', 'scores'];
  outputShape: number[];
  userCode: string;
  packedInputs = true;
  packedOutput = true;

  constructor(d: Dims, chunks: number, chunkPairs: number) {
    const {B, H, N, R, G} = d;
    this.outputShape = [chunks, H, 2 * N * G, R];
    const rowPairs = Math.ceil(N / 2);
    const totalPairs = B * rowPairs;
    this.userCode = `
      ${SINCOS_GLSL}
      void main() {
        ivec4 rc = getOutputCoords();
        int chunk = rc.x, hh = rc.y, k = rc.z / 2, p = rc.w;
        int q = k / ${G};
        float m = float(k - q * ${G} + 1);
        bool qOdd = q - 2 * (q / 2) == 1;
        int t0 = chunk * ${chunkPairs};
        int t1 = min(t0 + ${chunkPairs}, ${totalPairs});
        vec4 acc = vec4(0.0);
        for (int t = t0; t < t1; t++) {
          int b = t / ${rowPairs};
          int i = 2 * (t - b * ${rowPairs});
          vec4 s4 = getScores(b, hh, i, q);
          vec2 s = qOdd ? s4.yw : s4.xz;   // (i, q), (i+1, q) in the 2x2 texel
          vec4 g = getDy(b, hh, i, p);
          vec2 e0 = karatSinCos(m * s.x);
          acc.xy += g.xy * e0.x;
          acc.zw += g.xy * e0.y;
          ${N % 2 === 1 ? `if (i + 1 < ${N}) {` : '{'}
            vec2 e1 = karatSinCos(m * s.y);
            acc.xy += g.zw * e1.x;
            acc.zw += g.zw * e1.y;
          }
        }
        setOutput(acc);
      }
    `;
  }
}

/** Sums the K partials (packed) into dCoeffs laid out as [h, 2, r, N·G] (unpacked). */
export class GradCoeffsReduceProgram implements GPGPUProgram {
  variableNames = ['part'];
  outputShape: number[];
  userCode: string;
  packedInputs = true;
  packedOutput = false;

  constructor(d: Dims, chunks: number) {
    const {H, N, R, G} = d;
    this.outputShape = [H, 2, R, N * G];
    this.userCode = `
      void main() {
        ivec4 rc = getOutputCoords();
        int hh = rc.x, c = rc.y, p = rc.z, k = rc.w;
        int channel = 2 * c + (p - 2 * (p / 2));
        float sum = 0.0;
        for (int chunk = 0; chunk < ${chunks}; chunk++) {
          vec4 v = getPart(chunk, hh, 2 * k + c, p);
          sum += v[channel];
        }
        setOutput(sum);
      }
    `;
  }
}

/**
 * How the dCoeffs reduction is split: enough chunks that the partial pass has about
 * 2^16 texels to run in parallel, each chunk at least 32 row pairs long.
 */
export function coeffChunks(d: Dims): {chunks: number, chunkPairs: number} {
  const totalPairs = d.B * Math.ceil(d.N / 2);
  const texels = d.H * d.N * d.G * Math.ceil(d.R / 2);
  const wanted = Math.max(1, Math.min(Math.ceil(totalPairs / 32), Math.ceil(65536 / texels)));
  const chunkPairs = Math.ceil(totalPairs / wanted);
  return {chunks: Math.ceil(totalPairs / chunkPairs), chunkPairs};
}
