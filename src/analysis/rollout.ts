/**
 * Attention maps of the class token, per head and block, and attention rollout across blocks
 * (Abnar & Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020), on plain arrays.
 *
 * Rollout with residual connections: per block, Ã = ½·Â + ½·I with Â the head-averaged
 * attention, and R = Ã_L ··· Ã_1; the class-token row of R, without its own column, is the
 * map over patches. Softmax rows sum to 1, so Â is already row-stochastic. KArAt rows σ̂(S)
 * do not: their sum can be anything, even negative. This implementation therefore divides
 * each row of Â by the sum of its ABSOLUTE values (its L1 norm), which leaves softmax rows
 * unchanged, keeps the signs of KArAt attention, and keeps every Ã row's L1 norm <= 1, so
 * the product neither explodes nor flips sign through a normalising sum near zero.
 */

/** One attention tensor of a block for one image: h heads x N x N, row-major (head, row, col). */
export interface BlockAttention {
  heads: number;
  tokens: number;
  data: Float32Array | Float64Array;
}

function checkBlock(a: BlockAttention, where: string) {
  if (a.data.length !== a.heads * a.tokens * a.tokens) {
    throw new Error(`${where}: expected heads·N·N = ${a.heads}·${a.tokens}·${a.tokens} values, got ${a.data.length}`);
  }
}

/** Row `row` of head `head` without column 0 (the class token): N − 1 values. */
export function classTokenRow(a: BlockAttention, head: number, row = 0): Float64Array {
  checkBlock(a, 'classTokenRow');
  const N = a.tokens;
  const off = (head * N + row) * N;
  return Float64Array.from(a.data.subarray(off + 1, off + N));
}

/** Head-averaged attention, N x N (row-major). */
export function headMean(a: BlockAttention): Float64Array {
  checkBlock(a, 'headMean');
  const N = a.tokens;
  const out = new Float64Array(N * N);
  for (let h = 0; h < a.heads; h++) {
    for (let k = 0; k < N * N; k++) out[k] += a.data[h * N * N + k] / a.heads;
  }
  return out;
}

export interface RolloutOptions {
  /** Weight of the residual identity, default 0.5. */
  residual?: number;
  /** How to combine heads: 'mean' (default), 'max' or 'min' (Abnar & Zuidema's variants). */
  headFusion?: 'mean' | 'max' | 'min';
}

/** Combined per-block matrices Ã (see the file comment). */
export function rolloutMatrix(blocks: BlockAttention[], options: RolloutOptions = {}): Float64Array {
  if (blocks.length === 0) throw new Error('attentionRollout: need at least one block');
  const N = blocks[0].tokens;
  const res = options.residual ?? 0.5;
  let R: Float64Array | null = null;
  for (const [b, blk] of blocks.entries()) {
    checkBlock(blk, `attentionRollout (block ${b})`);
    if (blk.tokens !== N) throw new Error(`attentionRollout: block ${b} has N = ${blk.tokens}, block 0 has ${N}`);
    let A: Float64Array;
    const fusion = options.headFusion ?? 'mean';
    if (fusion === 'mean') {
      A = headMean(blk);
    } else {
      A = Float64Array.from(blk.data.subarray(0, N * N));
      for (let h = 1; h < blk.heads; h++) {
        for (let k = 0; k < N * N; k++) {
          const v = blk.data[h * N * N + k];
          A[k] = fusion === 'max' ? Math.max(A[k], v) : Math.min(A[k], v);
        }
      }
    }
    const At = new Float64Array(N * N);
    for (let i = 0; i < N; i++) {
      let l1 = 0;
      for (let j = 0; j < N; j++) l1 += Math.abs(A[i * N + j]);
      for (let j = 0; j < N; j++) {
        At[i * N + j] = (1 - res) * (l1 > 0 ? A[i * N + j] / l1 : 0) + (i === j ? res : 0);
      }
    }
    if (R == null) {
      R = At;
    } else {
      // R ← Ã_b · R
      const next = new Float64Array(N * N);
      for (let i = 0; i < N; i++) {
        for (let k = 0; k < N; k++) {
          const x = At[i * N + k];
          if (x === 0) continue;
          for (let j = 0; j < N; j++) next[i * N + j] += x * R[k * N + j];
        }
      }
      R = next;
    }
  }
  return R!;
}

/** Class-token rollout over patches: row 0 of the rollout matrix without column 0, N − 1 values. */
export function attentionRollout(blocks: BlockAttention[], options: RolloutOptions = {}): Float64Array {
  const N = blocks[0]?.tokens ?? 0;
  const R = rolloutMatrix(blocks, options);
  return Float64Array.from(R.subarray(1, N));
}
