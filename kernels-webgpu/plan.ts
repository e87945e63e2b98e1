/**
 * Tiling plan shared by the WebGPU Fourier-KArAt programs (the WebGPU counterpart of
 * kernels-cpu/fourier_karat_impl.ts): pure arithmetic on the op sizes, no GPU, so it can
 * be unit-tested anywhere. docs/webgpu.md explains every choice.
 *
 * Harmonics are processed in blocks of at most HARMONIC_BLOCK (= MAX_FUSED_GRID) so that
 * register and workgroup-memory use stay bounded for any grid size G; for G <= 8 (every
 * configuration of the paper) there is exactly one block.
 */
import {FourierKArAtDims, MAX_FUSED_GRID} from '../core/kernel_names';

/** Harmonics handled per block (m-block). */
export const HARMONIC_BLOCK = MAX_FUSED_GRID;

/**
 * Workgroup memory (in f32) the coefficient tiles may use: 12 KiB, well inside the 16 KiB
 * every WebGPU adapter guarantees (maxComputeWorkgroupStorageSize), leaving room for the
 * small reduction / dy tiles.
 */
export const TILE_FLOATS = 3072;

/** Splits `n` items into the fewest tiles of at most `max`, balanced: [tiles, perTile]. */
export function balancedTiles(n: number, max: number): [number, number] {
  const tiles = Math.ceil(n / max);
  return [tiles, Math.ceil(n / tiles)];
}

/** Harmonic blocking common to all programs. */
export interface HarmonicBlocks {
  /** harmonics per block, min(G, HARMONIC_BLOCK) */
  mb: number;
  /** number of blocks, ceil(G / mb) */
  blocks: number;
}

export function harmonicBlocks(grid: number): HarmonicBlocks {
  const mb = Math.min(grid, HARMONIC_BLOCK);
  return {mb, blocks: Math.ceil(grid / mb)};
}

/**
 * Forward program: a workgroup of LANES x ROWS threads owns ROWS consecutive rows
 * (b, i) of one head and one tile of PT outputs p; the LANES threads of a row split the
 * q axis and are reduced through workgroup memory at the end.
 */
export interface ForwardPlan extends HarmonicBlocks {
  lanes: number;       // threads per row (split of q)
  rows: number;        // rows per workgroup
  pt: number;          // outputs p per thread (accumulators)
  pTiles: number;      // ceil(r / pt), dispatch z
  qpl: number;         // q per lane per q-tile
  qt: number;          // q-tile = lanes * qpl
  rowTiles: number;    // dispatch x
}

export function forwardPlan(d: FourierKArAtDims): ForwardPlan {
  const lanes = 8, rows = 32;
  const hb = harmonicBlocks(d.grid);
  const [pTiles, pt] = balancedTiles(d.rank, 16);
  const qpl = Math.max(1, Math.min(4, Math.floor(TILE_FLOATS / (2 * pt * hb.mb * lanes))));
  return {
    ...hb, lanes, rows, pt, pTiles, qpl, qt: lanes * qpl,
    rowTiles: Math.ceil(d.batch * d.tokens / rows),
  };
}

/**
 * dScores program: a workgroup of 32 (q) x 8 (row lanes) threads owns a 32-q by
 * (8 * rpt)-row tile of one head; each thread keeps the features of its rpt rows at its q
 * in registers and loops over p in chunks of pc staged (with dy) in workgroup memory.
 */
export interface GradScoresPlan extends HarmonicBlocks {
  qLanes: number;      // 32
  rowLanes: number;    // 8
  rpt: number;         // rows per thread
  rt: number;          // rows per workgroup = rowLanes * rpt
  pc: number;          // p per staged chunk
  pChunks: number;     // ceil(r / pc), loop inside the shader
  qTiles: number;      // dispatch x
  rowTiles: number;    // dispatch y
}

export function gradScoresPlan(d: FourierKArAtDims): GradScoresPlan {
  const qLanes = 32, rowLanes = 8;
  const hb = harmonicBlocks(d.grid);
  const rpt = hb.mb > 4 ? 2 : 4;
  const rt = rowLanes * rpt;
  // workgroup floats: dy tile rt*pc + coefficient tile 2*pc*mb*32
  const pcMax = Math.max(1, Math.min(16, Math.floor((TILE_FLOATS + 512) / (rt + 2 * hb.mb * qLanes))));
  const [pChunks, pc] = balancedTiles(d.rank, pcMax);
  return {
    ...hb, qLanes, rowLanes, rpt, rt, pc, pChunks,
    qTiles: Math.ceil(d.tokens / qLanes),
    rowTiles: Math.ceil(d.batch * d.tokens / rt),
  };
}

/**
 * dCoeffs, pass 1: rows (b, i) of each head are cut into `chunks` chunks of `chunkRows`;
 * thread (q, chunk) accumulates dA/dB for pt outputs p and one harmonic block in
 * registers and writes them to a partial buffer [chunks, h*2*r, N*G]. Pass 2 sums the
 * chunks in a fixed order: deterministic, no atomics, no [B,h,N,N,2G] buffer.
 */
export interface GradCoeffsPlan extends HarmonicBlocks {
  qLanes: number;      // 32
  chunkLanes: number;  // 8
  pt: number;
  pTiles: number;
  chunks: number;
  chunkRows: number;
  qTiles: number;      // dispatch x
  chunkTiles: number;  // dispatch y
}

/** Upper bound on the number of row chunks (the partial buffer is chunks x |coeffs|). */
export const MAX_CHUNKS = 64;
/** Rows per chunk are at least this many (fewer chunks for small inputs). */
export const MIN_CHUNK_ROWS = 32;

export function gradCoeffsPlan(d: FourierKArAtDims): GradCoeffsPlan {
  const qLanes = 32, chunkLanes = 8;
  const hb = harmonicBlocks(d.grid);
  // 2 * pt * mb accumulators per thread, at most 96 (r = 12, G = 3: one p-tile, 72)
  const [pTiles, pt] = balancedTiles(d.rank, Math.max(1, Math.floor(48 / hb.mb)));
  const rowsPerHead = d.batch * d.tokens;
  const want = Math.max(1, Math.min(MAX_CHUNKS, Math.ceil(rowsPerHead / MIN_CHUNK_ROWS)));
  const chunkRows = Math.ceil(rowsPerHead / want);
  const chunks = Math.ceil(rowsPerHead / chunkRows);
  return {
    ...hb, qLanes, chunkLanes, pt, pTiles, chunks, chunkRows,
    qTiles: Math.ceil(d.tokens / qLanes),
    chunkTiles: Math.ceil(chunks / chunkLanes),
  };
}

/** Generates `body(i)` for i = 0..n-1, joined by newlines (compile-time unrolling). */
export function unroll(n: number, body: (i: number) => string): string {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(body(i));
  return out.join('\n');
}

/** A WGSL f32 literal. */
export function f32(x: number): string {
  return Number.isInteger(x) ? `${x}.0` : `${x}`;
}

/**
 * WGSL: (cos s, sin s) to ~1 ulp-level accuracy (about 1e-7 absolute for |s| up to ~1e3),
 * independent of the implementation's builtins: WGSL only bounds sin/cos to an absolute
 * error of 2^-11 on [-π, π] (SwiftShader is off by ~2e-4), and the angle-addition
 * recurrence multiplies that error by m. Cody-Waite reduction by π/2 (3-part constant),
 * then the Cephes single-precision minimax polynomials on [-π/4, π/4] and the quadrant.
 */
export const SINCOS_WGSL = `
  fn karatCosSin(s : f32) -> vec2<f32> {
    let k = round(s * 0.6366197723675814);
    let y = ((s - k * 1.5703125) - k * 4.837512969970703125e-4) - k * 7.54978995489188216e-8;
    let z = y * y;
    let sy = ((-1.9515295891e-4 * z + 8.3321608736e-3) * z - 1.6666654611e-1) * z * y + y;
    let cy = ((2.443315711809948e-5 * z - 1.388731625493765e-3) * z + 4.166664568298827e-2) * z * z
        - 0.5 * z + 1.0;
    let j = i32(k) & 3;
    if (j == 0) { return vec2<f32>(cy, sy); }
    if (j == 1) { return vec2<f32>(-sy, cy); }
    if (j == 2) { return vec2<f32>(-cy, -sy); }
    return vec2<f32>(sy, -cy);
  }
`;

/**
 * Flash-style Fourier-KArAt attention (fourier_attention_program.ts): every program runs
 * FLASH_WG threads per workgroup and walks the keys (row programs) or the query rows
 * (column programs) in tiles of FLASH_WG, one score per thread per tile. r, G and the staged
 * head-row length are compile-time constants; N, B, h are read from the shape uniforms.
 */
export const FLASH_WG = 64;

export interface FourierAttentionPlan {
  /** threads per workgroup = scores per tile */
  wg: number;
  /** forward accumulation: threads per output p (they split the keys of a tile) */
  split: number;
  /** q (row programs) / k (column programs) row staged in workgroup memory, rounded up to wg */
  dMax: number;
  /** dQ / dK accumulators per thread (columns c = tid + wg·k) */
  dAcc: number;
  /** dCoeffs outputs per thread (2·r·G outputs of one key column) */
  coeffAcc: number;
  /** workgroup floats of each program (the largest must stay within 16 KiB) */
  floats: {forward: number, gradQ: number, gradK: number, gradCoeffs: number};
}

export function fourierAttentionPlan(d: {rank: number, grid: number, headDim: number}): FourierAttentionPlan {
  const wg = FLASH_WG;
  const {rank: r, grid: G} = d;
  const dMax = Math.max(wg, Math.ceil(d.headDim / wg) * wg);
  return {
    wg, dMax,
    split: Math.max(1, Math.floor(wg / r)),
    dAcc: dMax / wg,
    coeffAcc: Math.ceil(2 * r * G / wg),
    floats: {
      forward: dMax + 2 * wg * G + wg + r,   // q row, cos/sin features of a tile, partial sums, ĥ row
      gradQ: dMax + r + wg,                  // q row, dĥ row, dS of a tile
      gradK: dMax + 2 * r * G + wg,          // k row, A/B of its key column, dS of a tile
      gradCoeffs: dMax + 2 * wg * G,         // k row, cos/sin features of a tile
    },
  };
}
