/**
 * Compares the CUDA outputs written by the harness (`karat_harness --dump FILE`) with the
 * TypeScript CPU kernel (kernels-cpu/fourier_karat_impl.ts) on the same inputs.
 *
 *   npx tsx kernels-cuda/harness/compare.ts FILE [--tol 1e-4] [--json OUT.json]
 *
 * Error measure, per output: max |cuda - cpu| / max |cpu| (the same normalised error the
 * harness prints against its float64 reference). Exit code 1 when any exceeds --tol.
 *
 * File format (little endian), records concatenated: char[8] "KARATCAS"; int32 version (1);
 * int32 nameLen; name (UTF-8) padded to a multiple of 4; int32 B, h, N, r, G; float32 arrays
 * scores [B,h,N,N], coeffs [h,2,r,N,G], dy [B,h,N,r], hidden [B,h,N,r], dscores [B,h,N,N],
 * dcoeffs [h,2,r,N,G].
 */
import {readFileSync, writeFileSync} from 'node:fs';
import {pathToFileURL} from 'node:url';

import {fourierKArAtGradImpl, fourierKArAtImpl} from '../../kernels-cpu/fourier_karat_impl';
import type {FourierKArAtDims} from '../../core/kernel_names';

const MAGIC = 'KARATCAS';

export interface KaratCase {
  name: string;
  dims: FourierKArAtDims;
  scores: Float32Array;
  coeffs: Float32Array;
  dy: Float32Array;
  hidden: Float32Array;
  dscores: Float32Array;
  dcoeffs: Float32Array;
}

function sizes(d: FourierKArAtDims) {
  const {batch: B, heads: h, tokens: N, rank: r, grid: G} = d;
  return {S: B * h * N * N, C: h * 2 * r * N * G, H: B * h * N * r};
}

/** Parses a case file; throws with the byte offset on any inconsistency. */
export function readCases(buf: Uint8Array): KaratCase[] {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: KaratCase[] = [];
  let off = 0;
  const need = (n: number, what: string) => {
    if (off + n > buf.byteLength) {
      throw new Error(`case file truncated at byte ${off}: need ${n} more bytes for ${what}`);
    }
  };
  while (off < buf.byteLength) {
    need(16, 'record header');
    const magic = new TextDecoder().decode(buf.subarray(off, off + 8));
    if (magic !== MAGIC) throw new Error(`bad magic '${magic}' at byte ${off}, expected '${MAGIC}'`);
    const version = view.getInt32(off + 8, true);
    if (version !== 1) throw new Error(`unsupported case file version ${version} at byte ${off}`);
    const nameLen = view.getInt32(off + 12, true);
    off += 16;
    need(nameLen, 'name');
    const name = new TextDecoder().decode(buf.subarray(off, off + nameLen));
    off += nameLen + ((4 - (nameLen % 4)) % 4);
    need(20, 'dims');
    const [batch, heads, tokens, rank, grid] = [0, 1, 2, 3, 4].map((i) => view.getInt32(off + 4 * i, true));
    off += 20;
    const dims: FourierKArAtDims = {batch, heads, tokens, rank, grid};
    if ([batch, heads, tokens, rank, grid].some((x) => !(x >= 1))) {
      throw new Error(`case '${name}': invalid dims ${JSON.stringify(dims)}`);
    }
    const n = sizes(dims);
    const take = (count: number, what: string): Float32Array => {
      need(count * 4, `${name}.${what}`);
      const a = new Float32Array(count);
      for (let i = 0; i < count; i++) a[i] = view.getFloat32(off + 4 * i, true);
      off += count * 4;
      return a;
    };
    out.push({
      name, dims,
      scores: take(n.S, 'scores'), coeffs: take(n.C, 'coeffs'), dy: take(n.H, 'dy'),
      hidden: take(n.H, 'hidden'), dscores: take(n.S, 'dscores'), dcoeffs: take(n.C, 'dcoeffs'),
    });
  }
  return out;
}

/** Serialises cases in the harness format (used by tests and to hand inputs to the GPU machine). */
export function writeCases(cases: KaratCase[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const c of cases) {
    const name = new TextEncoder().encode(c.name);
    const pad = (4 - (name.length % 4)) % 4;
    const head = new Uint8Array(16 + name.length + pad + 20);
    const hv = new DataView(head.buffer);
    head.set(new TextEncoder().encode(MAGIC), 0);
    hv.setInt32(8, 1, true);
    hv.setInt32(12, name.length, true);
    head.set(name, 16);
    const d = c.dims;
    [d.batch, d.heads, d.tokens, d.rank, d.grid].forEach((x, i) => hv.setInt32(16 + name.length + pad + 4 * i, x, true));
    parts.push(head);
    for (const a of [c.scores, c.coeffs, c.dy, c.hidden, c.dscores, c.dcoeffs]) {
      const b = new Uint8Array(a.length * 4);
      const v = new DataView(b.buffer);
      for (let i = 0; i < a.length; i++) v.setFloat32(4 * i, a[i], true);
      parts.push(b);
    }
  }
  const total = parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

export interface OutputError {
  maxAbsErr: number;
  maxAbsRef: number;
  /** max |got - ref| / max |ref| (Infinity when got has a non-finite value). */
  normErr: number;
  /** Flat index of the largest absolute error. */
  worstIndex: number;
}

export function normalisedError(got: ArrayLike<number>, ref: ArrayLike<number>): OutputError {
  if (got.length !== ref.length) throw new Error(`length mismatch: ${got.length} vs ${ref.length}`);
  let maxAbsErr = 0, maxAbsRef = 0, worstIndex = -1, finite = true;
  for (let i = 0; i < ref.length; i++) {
    if (!Number.isFinite(got[i])) finite = false;
    const e = Math.abs(got[i] - ref[i]);
    if (!(e <= maxAbsErr)) {
      maxAbsErr = e;
      worstIndex = i;
    }
    maxAbsRef = Math.max(maxAbsRef, Math.abs(ref[i]));
  }
  const normErr = !finite ? Infinity : maxAbsRef > 0 ? maxAbsErr / maxAbsRef : maxAbsErr;
  return {maxAbsErr, maxAbsRef, normErr, worstIndex};
}

export interface CaseReport {
  name: string;
  dims: FourierKArAtDims;
  hidden: OutputError;
  dscores: OutputError;
  dcoeffs: OutputError;
  maxNormErr: number;
  pass: boolean;
}

/** Runs the TypeScript CPU kernel on each case's inputs and measures the CUDA outputs against it. */
export function compareCases(cases: KaratCase[], tol = 1e-4): CaseReport[] {
  return cases.map((c) => {
    const hidden = fourierKArAtImpl(c.scores, c.coeffs, c.dims);
    const [dS, dC] = fourierKArAtGradImpl(c.dy, c.scores, c.coeffs, c.dims);
    const eh = normalisedError(c.hidden, hidden);
    const es = normalisedError(c.dscores, dS);
    const ec = normalisedError(c.dcoeffs, dC);
    const maxNormErr = Math.max(eh.normErr, es.normErr, ec.normErr);
    return {name: c.name, dims: c.dims, hidden: eh, dscores: es, dcoeffs: ec, maxNormErr, pass: maxNormErr <= tol};
  });
}

function main(argv: string[]): number {
  const file = argv.find((a) => !a.startsWith('--'));
  const opt = (k: string) => {
    const i = argv.indexOf(k);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  if (!file) {
    console.error('usage: tsx kernels-cuda/harness/compare.ts CASES.bin [--tol 1e-4] [--json OUT.json]');
    return 2;
  }
  const tol = Number(opt('--tol') ?? '1e-4');
  const reports = compareCases(readCases(readFileSync(file)), tol);
  console.table(reports.map((r) => ({
    case: r.name,
    shape: `B${r.dims.batch} h${r.dims.heads} N${r.dims.tokens} r${r.dims.rank} G${r.dims.grid}`,
    hidden: r.hidden.normErr.toExponential(2),
    dscores: r.dscores.normErr.toExponential(2),
    dcoeffs: r.dcoeffs.normErr.toExponential(2),
    result: r.pass ? 'pass' : 'FAIL',
  })));
  const worst = Math.max(...reports.map((r) => r.maxNormErr));
  console.log(`${reports.length} case(s); max normalised error vs the TypeScript CPU kernel: ` +
              `${worst.toExponential(3)} (tolerance ${tol})`);
  const json = opt('--json');
  if (json) writeFileSync(json, JSON.stringify({file, tol, reports}, null, 2));
  return reports.every((r) => r.pass) ? 0 : 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2));
}
