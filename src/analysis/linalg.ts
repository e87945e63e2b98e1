/**
 * Small dense linear algebra for the analyses, in float64 and plain JavaScript (no tfjs, no
 * dependency): the singular value decomposition by one-sided Jacobi rotations (Hestenes 1958;
 * see Demmel & Veselić, "Jacobi's method is more accurate than QR", SIAM J. Matrix Anal.
 * Appl. 13 (1992)), and helpers built on it (singular values, principal components).
 *
 * Algorithm (for an m x n matrix A with m >= n; otherwise Aᵀ is decomposed and U, V swap):
 *   U := A, V := I. Repeat sweeps over all column pairs (p, q), p < q:
 *     α = ‖U_p‖², β = ‖U_q‖², γ = U_p·U_q; if |γ| > ε·√(αβ), rotate columns p and q of U and V
 *     by the Jacobi rotation that makes U_p ⟂ U_q:
 *       ζ = (β − α) / (2γ), t = sign(ζ) / (|ζ| + √(1 + ζ²)), c = 1/√(1 + t²), s = c·t,
 *       U_p ← c·U_p − s·U_q,  U_q ← s·U_p + c·U_q   (same for V).
 *   until a sweep performs no rotation. Then σ_j = ‖U_j‖, U_j ← U_j / σ_j, A = U diag(σ) Vᵀ.
 * Every rotation is orthogonal, so A·V = U·diag(σ) holds throughout; convergence is quadratic.
 * Cost per sweep: about 3·m·n² flops (N = 197 tokens: ~23 Mflop per sweep, ~10 sweeps).
 */

/** A dense row-major matrix of float64 values. */
export interface Matrix {
  rows: number;
  cols: number;
  /** rows·cols values, row-major: element (i, j) is data[i·cols + j]. */
  data: Float64Array;
}

export interface SVDResult {
  /** Singular values, descending, length k = min(m, n). */
  s: Float64Array;
  /** Left singular vectors, m x k (columns), when requested. */
  u?: Matrix;
  /** Right singular vectors, n x k (columns), when requested. */
  v?: Matrix;
  /** Jacobi sweeps performed. */
  sweeps: number;
}

export interface SVDOptions {
  computeU?: boolean;
  computeV?: boolean;
  /** Relative orthogonality tolerance ε (default 1e-13). */
  tolerance?: number;
  /** Maximal number of sweeps (default 60; convergence usually takes 6–12). */
  maxSweeps?: number;
}

export class LinalgError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LinalgError';
  }
}

/** Builds a Matrix from nested arrays (checks that rows have equal length). */
export function matrix(rows: ArrayLike<ArrayLike<number>>): Matrix {
  const m = rows.length;
  const n = m === 0 ? 0 : rows[0].length;
  const data = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    if (rows[i].length !== n) {
      throw new LinalgError(`matrix: row ${i} has ${rows[i].length} entries, expected ${n}`);
    }
    for (let j = 0; j < n; j++) data[i * n + j] = rows[i][j];
  }
  return {rows: m, cols: n, data};
}

/** Wraps row-major values (copied into float64). */
export function fromArray(values: ArrayLike<number>, rows: number, cols: number): Matrix {
  if (values.length !== rows * cols) {
    throw new LinalgError(`fromArray: expected ${rows}·${cols} = ${rows * cols} values, got ${values.length}`);
  }
  return {rows, cols, data: Float64Array.from(values)};
}

export function transpose(a: Matrix): Matrix {
  const out = new Float64Array(a.rows * a.cols);
  for (let i = 0; i < a.rows; i++) {
    for (let j = 0; j < a.cols; j++) out[j * a.rows + i] = a.data[i * a.cols + j];
  }
  return {rows: a.cols, cols: a.rows, data: out};
}

export function matMul(a: Matrix, b: Matrix): Matrix {
  if (a.cols !== b.rows) {
    throw new LinalgError(`matMul: inner sizes differ: ${a.rows}x${a.cols} times ${b.rows}x${b.cols}`);
  }
  const out = new Float64Array(a.rows * b.cols);
  for (let i = 0; i < a.rows; i++) {
    for (let k = 0; k < a.cols; k++) {
      const x = a.data[i * a.cols + k];
      if (x === 0) continue;
      for (let j = 0; j < b.cols; j++) out[i * b.cols + j] += x * b.data[k * b.cols + j];
    }
  }
  return {rows: a.rows, cols: b.cols, data: out};
}

function checkMatrix(op: string, a: Matrix) {
  if (a == null || !Number.isInteger(a.rows) || !Number.isInteger(a.cols) || a.rows < 1 || a.cols < 1 ||
      a.data == null || a.data.length !== a.rows * a.cols) {
    throw new LinalgError(`${op}: argument 'a' must be a non-empty Matrix {rows, cols, data[rows·cols]}`);
  }
  for (let i = 0; i < a.data.length; i++) {
    if (!Number.isFinite(a.data[i])) {
      throw new LinalgError(`${op}: argument 'a' has a non-finite entry ${a.data[i]} at index ${i}`);
    }
  }
}

/**
 * Singular value decomposition A = U diag(s) Vᵀ by one-sided Jacobi (see the file comment).
 * Accurate to a few ulps relative to ‖A‖ (and better for small singular values of well-
 * scaled matrices).
 */
export function svd(a: Matrix, options: SVDOptions = {}): SVDResult {
  checkMatrix('svd', a);
  const wantU = options.computeU ?? true;
  const wantV = options.computeV ?? true;
  if (a.rows < a.cols) {
    const r = svd(transpose(a), {...options, computeU: wantV, computeV: wantU});
    return {s: r.s, u: r.v, v: r.u, sweeps: r.sweeps};
  }
  const m = a.rows, n = a.cols;
  const eps = options.tolerance ?? 1e-13;
  const maxSweeps = options.maxSweeps ?? 60;
  // Columns stored contiguously.
  const U: Float64Array[] = [];
  for (let j = 0; j < n; j++) {
    const c = new Float64Array(m);
    for (let i = 0; i < m; i++) c[i] = a.data[i * n + j];
    U.push(c);
  }
  const V: Float64Array[] = [];
  // U is the rotated A itself (A·V = U·Σ); V is accumulated only when requested.
  if (wantV) {
    for (let j = 0; j < n; j++) {
      const c = new Float64Array(n);
      c[j] = 1;
      V.push(c);
    }
  }
  const norms = new Float64Array(n);
  for (let j = 0; j < n; j++) norms[j] = dot(U[j], U[j]);
  let sweeps = 0;
  for (; sweeps < maxSweeps; sweeps++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const alpha = norms[p], beta = norms[q];
        if (alpha === 0 || beta === 0) continue;
        const gamma = dot(U[p], U[q]);
        if (Math.abs(gamma) <= eps * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        rotate(U[p], U[q], c, s);
        if (wantV) rotate(V[p], V[q], c, s);
        norms[p] = dot(U[p], U[p]);
        norms[q] = dot(U[q], U[q]);
      }
    }
    if (!rotated) break;
  }
  if (sweeps >= maxSweeps) {
    throw new LinalgError(`svd: one-sided Jacobi did not converge in ${maxSweeps} sweeps (${m}x${n} matrix)`);
  }
  const sigma = Array.from({length: n}, (_, j) => Math.sqrt(dot(U[j], U[j])));
  const order = sigma.map((_, j) => j).sort((x, y) => sigma[y] - sigma[x]);
  const s = Float64Array.from(order, j => sigma[j]);
  const result: SVDResult = {s, sweeps};
  if (wantU) {
    const u = new Float64Array(m * n);
    order.forEach((j, k) => {
      const col = U[j];
      const sj = sigma[j];
      if (sj > 0) {
        for (let i = 0; i < m; i++) u[i * n + k] = col[i] / sj;
      }
    });
    result.u = {rows: m, cols: n, data: u};
    completeOrthonormalColumns(result.u, order.map(j => sigma[j] > 0));
  }
  if (wantV) {
    const v = new Float64Array(n * n);
    order.forEach((j, k) => {
      for (let i = 0; i < n; i++) v[i * n + k] = V[j][i];
    });
    result.v = {rows: n, cols: n, data: v};
  }
  return result;
}

/** Singular values of `a`, descending (no vectors). */
export function singularValues(a: Matrix): Float64Array {
  return svd(a, {computeU: false, computeV: false}).s;
}

function dot(x: Float64Array, y: Float64Array): number {
  let acc = 0;
  for (let i = 0; i < x.length; i++) acc += x[i] * y[i];
  return acc;
}

function rotate(x: Float64Array, y: Float64Array, c: number, s: number) {
  for (let i = 0; i < x.length; i++) {
    const xi = x[i], yi = y[i];
    x[i] = c * xi - s * yi;
    y[i] = s * xi + c * yi;
  }
}

/**
 * Columns of U that belong to zero singular values are zero after normalisation; replaces them
 * by unit vectors orthogonal to all others (Gram–Schmidt over the canonical basis), so that U
 * always has orthonormal columns.
 */
function completeOrthonormalColumns(u: Matrix, valid: boolean[]) {
  const m = u.rows, k = u.cols;
  const col = (j: number) => Float64Array.from({length: m}, (_, i) => u.data[i * k + j]);
  const cols: Float64Array[] = [];
  for (let j = 0; j < k; j++) cols.push(col(j));
  let e = 0;
  for (let j = 0; j < k; j++) {
    if (valid[j]) continue;
    for (; e < m; e++) {
      const x = new Float64Array(m);
      x[e] = 1;
      for (let t = 0; t < k; t++) {
        if (t === j || (!valid[t] && t > j)) continue;
        const d = dot(x, cols[t]);
        for (let i = 0; i < m; i++) x[i] -= d * cols[t][i];
      }
      const nrm = Math.sqrt(dot(x, x));
      if (nrm > 1e-8) {
        for (let i = 0; i < m; i++) x[i] /= nrm;
        cols[j] = x;
        for (let i = 0; i < m; i++) u.data[i * k + j] = x[i];
        e++;
        break;
      }
    }
  }
}

export interface PrincipalComponents {
  /** Unit principal directions (length = vector length), most variance first. */
  directions: Float64Array[];
  /** Coordinates of every input vector along each direction: coords[i][c]. */
  coords: number[][];
  /** Fraction of the total squared deviation explained by each direction. */
  explained: number[];
  /** The centre that was subtracted (a copy). */
  center: Float64Array;
}

/**
 * Principal components of a set of T vectors of length P (T small, P possibly large): the
 * top-`count` left singular vectors of the P x T matrix of deviations [x_i − center]
 * (one-sided Jacobi on that matrix, T² P flops per sweep). `center` defaults to the mean; the
 * loss-landscape analysis centres on the final point instead (Li et al., 2018).
 */
export function principalComponents(
    vectors: ArrayLike<number>[], count: number, center?: ArrayLike<number>): PrincipalComponents {
  const T = vectors.length;
  if (T < 2) throw new LinalgError(`principalComponents: need at least 2 vectors, got ${T}`);
  const P = vectors[0].length;
  vectors.forEach((v, i) => {
    if (v.length !== P) {
      throw new LinalgError(`principalComponents: vector ${i} has length ${v.length}, expected ${P}`);
    }
  });
  if (!Number.isInteger(count) || count < 1 || count > Math.min(T, P)) {
    throw new LinalgError(`principalComponents: 'count' must be an integer in [1, ${Math.min(T, P)}], got ${count}`);
  }
  const c = new Float64Array(P);
  if (center != null) {
    if (center.length !== P) {
      throw new LinalgError(`principalComponents: 'center' has length ${center.length}, expected ${P}`);
    }
    for (let j = 0; j < P; j++) c[j] = center[j];
  } else {
    for (const v of vectors) for (let j = 0; j < P; j++) c[j] += v[j] / T;
  }
  // P x T matrix of deviations, row-major.
  const data = new Float64Array(P * T);
  for (let i = 0; i < T; i++) {
    const v = vectors[i];
    for (let j = 0; j < P; j++) data[j * T + i] = v[j] - c[j];
  }
  const r = svd({rows: P, cols: T, data}, {computeU: true, computeV: true});
  const total = r.s.reduce((a, s) => a + s * s, 0);
  const directions: Float64Array[] = [];
  const explained: number[] = [];
  const u = r.u!, v = r.v!;
  const k = u.cols;
  for (let d = 0; d < count; d++) {
    directions.push(Float64Array.from({length: P}, (_, j) => u.data[j * k + d]));
    explained.push(total > 0 ? r.s[d] * r.s[d] / total : 0);
  }
  // coords of vector i along direction d: σ_d · V[i, d].
  const coords = Array.from({length: T}, (_, i) =>
      Array.from({length: count}, (_, d) => r.s[d] * v.data[i * v.cols + d]));
  return {directions, coords, explained, center: c};
}
