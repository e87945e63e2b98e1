/**
 * WebGPU benchmark (Dawn in Node): `npx tsx bench/webgpu.ts [--json FILE] [--quick] [--check]`
 *
 * Op level, fused kernels (kernels-webgpu/) vs the composite path (KARAT_FUSED=false), fwd
 * and fwd+bwd, at B=32, h=3, N=197, r=12, G=3 (and N=65): median ms, peak bytes (tf.profile,
 * engine tensors, as in docs/benchmarks.md) and peak GPU bytes (tfjs-backend-webgpu's buffer
 * manager: also counts kernel-internal scratch such as the dCoeffs partial sums), one GPU
 * kernel time via tf.time when the adapter has timestamp queries, and the ratios.
 *
 * --check first compares the fused webgpu kernels with the CPU kernel on small random
 * inputs (max relative error per output), so a run on a new GPU also verifies correctness.
 * --quick uses small shapes (SwiftShader); the bundle for the GPU machine is built by
 * bench/device/build.sh.
 *
 * --models adds the model level (bench/vit.ts): ViT-Tiny 224/16 batch 32 (--quick: a
 * one-block tiny ViT at 32/8, batch 2) train step and inference, softmax vs G3B vs G3U
 * with the fused kernels, plus G3B on the composite path (KARAT_FUSED=false).
 *
 * Op cases are data: add entries to the array returned by `benchCases()` (a BenchCase
 * builds its tensors in `prepare` and returns the function to time).
 */
import {writeFileSync} from 'node:fs';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

import * as karat from '../src/index';
import {releaseWebGPUNode} from '../test/support/webgpu_node';
import {startWebGPUBench} from './webgpu_start';
import {parseFlags} from '../src/cli/flags';
import {BenchRecord, measure, MeasureOptions, printTable, sync} from './common';
import {ATTENTIONS, benchViT, ViTCase, vitRatios} from './vit';

export interface Dims {B: number, h: number, N: number, r: number, G: number}

/** One timed configuration. `prepare` runs outside timing; `run` is timed (inside tf.tidy). */
export interface BenchCase {
  case: string;
  impl: string;
  pass: string;
  dims: Dims;
  /** tf.env() flags set while this case runs (restored afterwards). */
  flags?: Record<string, boolean | number | string>;
  prepare: () => {run: () => tf.TensorContainer, dispose: () => void};
}

function opTensors(c: Dims) {
  const scores = tf.randomNormal([c.B, c.h, c.N, c.N]) as tf.Tensor4D;
  const coeffs = tf.mul(tf.randomNormal([c.h, 2, c.r, c.N, c.G]), 1 / Math.sqrt(c.N * c.G)) as tf.Tensor5D;
  const w = tf.randomNormal([c.B, c.h, c.N, c.r]) as tf.Tensor4D;
  return {scores, coeffs, w};
}

/** fused and composite, fwd and fwd+bwd, for one op size. */
export function opCases(c: Dims): BenchCase[] {
  const name = `op B${c.B} h${c.h} N${c.N} r${c.r} G${c.G}`;
  const out: BenchCase[] = [];
  for (const impl of ['fused', 'composite']) {
    for (const pass of ['fwd', 'fwd+bwd']) {
      out.push({
        case: name, impl, pass, dims: c, flags: {[karat.KARAT_FUSED_FLAG]: impl === 'fused'},
        prepare: () => {
          const t = opTensors(c);
          const run = pass === 'fwd' ?
              () => karat.fourierKArAtHidden(t.scores, t.coeffs) :
              () => tf.grads((s: tf.Tensor, k: tf.Tensor) =>
                  tf.sum(tf.mul(karat.fourierKArAtHidden(s as tf.Tensor4D, k as tf.Tensor5D), t.w)))(
                  [t.scores, t.coeffs]);
          return {run, dispose: () => tf.dispose([t.scores, t.coeffs, t.w])};
        },
      });
    }
  }
  return out;
}

export function benchCases(quick: boolean): BenchCase[] {
  const sizes: Dims[] = quick ? [{B: 2, h: 3, N: 17, r: 12, G: 3}] :
      [{B: 32, h: 3, N: 197, r: 12, G: 3}, {B: 32, h: 3, N: 65, r: 12, G: 3}];
  return sizes.flatMap(opCases);
}

interface BufferManagerLike {numBytesUsed: number, acquireBuffer: (...a: unknown[]) => unknown}

function bufferManager(): BufferManagerLike | undefined {
  return (tf.backend() as unknown as {bufferManager?: BufferManagerLike}).bufferManager;
}

/** Bytes of GPU buffers in use now (tfjs-backend-webgpu's buffer manager), or null off webgpu. */
export function gpuBytesInUse(): number | null {
  return bufferManager()?.numBytesUsed ?? null;
}

/** Peak bytes of GPU buffers in use during one call, above those in use before it. */
export async function gpuPeakBytes(fn: () => tf.TensorContainer): Promise<number | null> {
  const bm = bufferManager();
  if (bm == null) return null;
  const base = bm.numBytesUsed;
  let peak = base;
  const orig = bm.acquireBuffer;
  bm.acquireBuffer = function(this: BufferManagerLike, ...a: unknown[]) {
    const r = orig.apply(this, a);
    peak = Math.max(peak, this.numBytesUsed);
    return r;
  };
  try {
    const out = tf.tidy(fn);
    await sync(out);
    tf.dispose(out);
  } finally {
    bm.acquireBuffer = orig;
  }
  return peak - base;
}

/** GPU kernel time of one call (ms), when the backend reports it. */
export async function kernelMs(fn: () => tf.TensorContainer): Promise<number | null> {
  try {
    const info = await tf.time(() => {
      const out = tf.tidy(fn);
      tf.dispose(out);
    });
    return typeof info.kernelMs === 'number' ? info.kernelMs : null;
  } catch {
    return null;
  }
}

export async function runCase(c: BenchCase, opts: MeasureOptions): Promise<BenchRecord> {
  const saved: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(c.flags ?? {})) {
    saved[k] = tf.env().get(k);
    tf.env().set(k, v);
  }
  const {run, dispose} = c.prepare();
  try {
    const m = await measure(run, opts);
    const gpuPeak = await gpuPeakBytes(run);
    const kms = await kernelMs(run);
    return {
      backend: tf.getBackend(), case: c.case, impl: c.impl, ...c.dims, pass: c.pass,
      ms_median: m.ms_median, peak_bytes: m.peak_bytes, peak_gpu_bytes: gpuPeak, kernel_ms: kms,
      times_ms: m.times,
    };
  } finally {
    dispose();
    for (const [k, v] of Object.entries(saved)) tf.env().set(k, v as boolean);
  }
}

/** composite / fused per case and pass: time, tf.profile peak, GPU peak. */
export function ratios(records: BenchRecord[]) {
  return records.filter((r) => r.impl === 'fused').flatMap((f) => {
    const c = records.find((r) => r.impl === 'composite' && r.case === f.case && r.pass === f.pass);
    if (c == null) return [];
    const gf = f.peak_gpu_bytes as number | null, gc = c.peak_gpu_bytes as number | null;
    return [{
      case: f.case, pass: f.pass,
      speedup: c.ms_median / f.ms_median,
      memory_ratio: c.peak_bytes / Math.max(1, f.peak_bytes),
      gpu_memory_ratio: gf != null && gc != null ? gc / Math.max(1, gf) : null,
    }];
  });
}

// --- correctness check against the CPU kernel -------------------------------------------

function randArray(n: number, scale: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = scale * (Math.random() * 2 - 1) * Math.sqrt(3);
  return a;
}

async function opOutputs(c: Dims, s: Float32Array, k: Float32Array, g: Float32Array): Promise<Float32Array[]> {
  const outs = tf.tidy(() => {
    const st = tf.tensor4d(s, [c.B, c.h, c.N, c.N]);
    const kt = tf.tensor5d(k, [c.h, 2, c.r, c.N, c.G]);
    const gt = tf.tensor4d(g, [c.B, c.h, c.N, c.r]);
    return [karat.fourierKArAtHidden(st, kt), ...karat.fourierKArAtGrad(gt, st, kt)];
  });
  const v = await Promise.all(outs.map((t) => t.data() as Promise<Float32Array>));
  tf.dispose(outs);
  return v;
}

export async function checkAgainstCpu(): Promise<Array<Record<string, unknown>>> {
  const cases: Dims[] = [
    {B: 2, h: 3, N: 197, r: 12, G: 3}, {B: 3, h: 2, N: 65, r: 12, G: 1}, {B: 2, h: 2, N: 7, r: 1, G: 5},
    {B: 1, h: 2, N: 33, r: 20, G: 8}, {B: 2, h: 1, N: 9, r: 3, G: 10},
  ];
  const out: Array<Record<string, unknown>> = [];
  for (const c of cases) {
    const s = randArray(c.B * c.h * c.N * c.N, 2);
    const k = randArray(c.h * 2 * c.r * c.N * c.G, 1 / Math.sqrt(c.N * c.G));
    const g = randArray(c.B * c.h * c.N * c.r, 1);
    await tf.setBackend('cpu');
    const ref = await opOutputs(c, s, k, g);
    await tf.setBackend('webgpu');
    const got = await opOutputs(c, s, k, g);
    const errs = ref.map((r, i) => {
      let e = 0, m = 0;
      for (let j = 0; j < r.length; j++) {
        const d = Math.abs(got[i][j] - r[j]);
        e = Number.isNaN(d) ? Infinity : Math.max(e, d);
        m = Math.max(m, Math.abs(r[j]));
      }
      return e / Math.max(1, m);
    });
    const rec = {...c, hidden_rel_err: errs[0], dscores_rel_err: errs[1], dcoeffs_rel_err: errs[2],
                 ok: errs.every((e) => e < 1e-5)};
    console.log(`check ${JSON.stringify(c)}: ${errs.map((e) => e.toExponential(2)).join(' ')} ${rec.ok ? 'OK' : 'FAIL'}`);
    out.push(rec);
  }
  return out;
}

async function main() {
  const args = parseFlags(process.argv.slice(2), new Set(['quick', 'check', 'models'])).flags;
  const quick = Boolean(args.quick);
  const meta = await startWebGPUBench();
  if (meta == null) return;
  console.log(`WebGPU adapter: ${meta.adapter}`);
  const check = args.check ? await checkAgainstCpu() : null;
  await tf.setBackend('webgpu');

  const opts: MeasureOptions = quick ? {warmup: 1, iters: 3} : {warmup: 3, iters: 10};
  const records: BenchRecord[] = [];
  // Each record is logged and the JSON rewritten as soon as it exists, so that a run cut
  // short by a time limit still leaves its results behind.
  const flush = () => {
    if (typeof args.json === 'string') writeFileSync(args.json, JSON.stringify({meta, check, records}, null, 2));
  };
  const push = (...rs: BenchRecord[]) => {
    for (const r of rs) console.log(`RECORD ${JSON.stringify(r)}`);
    records.push(...rs);
    flush();
  };
  for (const c of benchCases(quick)) {
    console.log(`running ${c.case} ${c.impl} ${c.pass} ...`);
    try {
      push(await runCase(c, opts));
    } catch (e) {
      console.error(`  failed: ${(e as Error).message}`);
      push({backend: 'webgpu', case: c.case, impl: c.impl, ...c.dims, pass: c.pass,
                    ms_median: NaN, peak_bytes: NaN, error: String((e as Error).message)});
    }
  }
  let modelRatios: Array<Record<string, string | number>> = [];
  if (args.models) {
    const vc: ViTCase = quick ?
        {preset: 'tiny', depth: 1, batch: 2, imageSize: 32, patchSize: 8, numClasses: 10} :
        {preset: 'tiny', batch: 32, imageSize: 224, patchSize: 16, numClasses: 1000};
    const mopts: MeasureOptions = quick ? {warmup: 1, iters: 2} : {warmup: 1, iters: 3};
    const runModels = async (label: string, fn: () => Promise<BenchRecord[]>) => {
      console.log(`running ${label} ...`);
      try {
        push(...await fn());
      } catch (e) {
        console.error(`  failed: ${(e as Error).message}`);
      }
    };
    await runModels('ViT softmax / G3B / G3U (fused)', () => benchViT(vc, mopts));
    tf.env().set(karat.KARAT_FUSED_FLAG, false);
    try {
      await runModels('ViT G3B (composite)', () => benchViT(vc, mopts, [{impl: 'G3B-composite', attention: ATTENTIONS[1].attention}]));
    } finally {
      tf.env().set(karat.KARAT_FUSED_FLAG, true);
    }
    modelRatios = vitRatios(records);
  }
  printTable(records);
  console.table(records.filter((r) => r.case.startsWith('op ')).map((r) => ({
    case: r.case, impl: r.impl, pass: r.pass,
    'peak GPU MiB': r.peak_gpu_bytes == null ? '-' : ((r.peak_gpu_bytes as number) / 2 ** 20).toFixed(2),
    'kernel ms': r.kernel_ms == null ? '-' : (r.kernel_ms as number).toFixed(3),
  })));
  const rs = ratios(records);
  console.log('composite / fused (higher = fused better):');
  console.table(rs.map((r) => ({
    case: r.case, pass: r.pass, speedup: r.speedup.toFixed(2) + 'x',
    memory: r.memory_ratio.toFixed(2) + 'x',
    'GPU memory': r.gpu_memory_ratio == null ? '-' : r.gpu_memory_ratio.toFixed(2) + 'x',
  })));
  if (modelRatios.length) {
    console.log('model level, KArAt / softmax (lower = KArAt cheaper):');
    console.table(modelRatios.map((r) => ({...r, time_ratio: (r.time_ratio as number).toFixed(2),
                                           memory_ratio: (r.memory_ratio as number).toFixed(2)})));
  }
  if (typeof args.json === 'string') {
    writeFileSync(args.json, JSON.stringify({meta, check, records, ratios: rs, modelRatios}, null, 2));
    console.log(`wrote ${args.json}`);
  }
  if (check != null && check.some((c) => !c.ok)) process.exitCode = 1;
  releaseWebGPUNode();
}

// Run only as a script (npx tsx bench/webgpu.ts, or the bundle), not when imported.
if (/(bench[\\/]webgpu\.ts|webgpu-bench\.mjs)$/.test(process.argv[1] ?? '')) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
