/**
 * Op-level benchmark of Fourier-KArAt on tfjs-backend-wasm: the fused wasm kernel
 * (kernels-wasm: its SIMD module, and its TypeScript path, KARAT_WASM_SIMD=false) vs the
 * composite of tfjs ops on wasm, with the cpu backend's fused kernel alongside, forward and forward+backward (tf.grads of Σ ĥ·w w.r.t. scores and coeffs).
 * Interleaved: each round runs every implementation once, so a busy machine slows all
 * alike; reports medians of wall and process CPU time, peak bytes (tf.profile) and ratios.
 *
 *   npx tsx bench/wasm_ops.ts [--rounds 5] [--cases 65,197] [--B 8] [--json FILE]
 */
import {writeFileSync} from 'node:fs';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';

import * as karat from '../src/index';
import {parseFlags} from '../src/cli/flags';
import {median, sync} from './common';

interface Impl {name: string, backend: 'wasm' | 'cpu', fused: boolean, simd: boolean}

const IMPLS: Impl[] = [
  {name: 'fused (kernels-wasm, SIMD module)', backend: 'wasm', fused: true, simd: true},
  {name: 'fused (kernels-wasm, TypeScript path)', backend: 'wasm', fused: true, simd: false},
  {name: 'composite (tfjs ops)', backend: 'wasm', fused: false, simd: true},
  {name: 'fused (kernels-cpu, cpu backend)', backend: 'cpu', fused: true, simd: true},
];

interface Row {N: number, impl: string, pass: string, wall_ms: number, cpu_ms: number, peak_bytes: number}

type Pass = 'fwd' | 'fwd+bwd';
type Inputs = Map<string, tf.Tensor[]>;

/** Runs one implementation on its backend with its flags, restoring the flags afterwards. */
async function withImpl<T>(impl: Impl, fn: () => Promise<T>): Promise<T> {
  await tf.setBackend(impl.backend);
  tf.env().set(karat.KARAT_FUSED_FLAG, impl.fused);
  tf.env().set(karat.KARAT_WASM_SIMD_FLAG, impl.simd);
  try {
    return await fn();
  } finally {
    tf.env().set(karat.KARAT_FUSED_FLAG, true);
    tf.env().set(karat.KARAT_WASM_SIMD_FLAG, true);
  }
}

/** The same random scores, coeffs and upstream weights, as tensors on each backend. */
async function makeInputs(B: number, h: number, N: number, r: number, G: number): Promise<Inputs> {
  const data = {
    s: tf.randomNormal([B, h, N, N]).dataSync(),
    c: tf.mul(tf.randomNormal([h, 2, r, N, G]), 1 / Math.sqrt(N * G)).dataSync(),
    w: tf.randomNormal([B, h, N, r]).dataSync(),
  };
  const inputs: Inputs = new Map();
  for (const b of ['cpu', 'wasm']) {
    await tf.setBackend(b);
    inputs.set(b, [tf.tensor4d(data.s, [B, h, N, N]), tf.tensor5d(data.c, [h, 2, r, N, G]),
                   tf.tensor4d(data.w, [B, h, N, r])]);
  }
  return inputs;
}

function passFn(inputs: Inputs, impl: Impl, pass: Pass): () => tf.TensorContainer {
  const [s, c, w] = inputs.get(impl.backend)!;
  if (pass === 'fwd') return () => karat.fourierKArAtHidden(s as tf.Tensor4D, c as tf.Tensor5D);
  return () => tf.grads((x: tf.Tensor, y: tf.Tensor) =>
      tf.sum(tf.mul(karat.fourierKArAtHidden(x as tf.Tensor4D, y as tf.Tensor5D), w)))([s, c]);
}

async function timeOnce(impl: Impl, fn: () => tf.TensorContainer) {
  return withImpl(impl, async () => {
    const c0 = process.cpuUsage(), t0 = performance.now();
    const out = tf.tidy(() => fn());
    await sync(out);
    const wall = performance.now() - t0, cu = process.cpuUsage(c0);
    tf.dispose(out);
    return {wall, cpu: (cu.user + cu.system) / 1000};
  });
}

async function peakBytes(impl: Impl, fn: () => tf.TensorContainer): Promise<number> {
  return withImpl(impl, async () => {
    const before = tf.memory().numBytes;
    const info = await tf.profile(async () => {
      const out = tf.tidy(() => fn());
      await sync(out);
      tf.dispose(out);
    });
    if (impl.fused && !karat.hasFusedKernel(karat.FourierKArAt, impl.backend)) {
      throw new Error(`${impl.name}: no fused kernel registered for ${impl.backend}`);
    }
    return Math.max(0, info.peakBytes - before);
  });
}

/** Interleaved rounds of every implementation for one pass, then each one's peak bytes. */
async function measurePass(inputs: Inputs, N: number, pass: Pass, rounds: number): Promise<Row[]> {
  const walls = IMPLS.map(() => [] as number[]), cpus = IMPLS.map(() => [] as number[]);
  for (const impl of IMPLS) await timeOnce(impl, passFn(inputs, impl, pass));  // warm-up
  for (let k = 0; k < rounds; k++) {
    for (const [i, impl] of IMPLS.entries()) {
      const t = await timeOnce(impl, passFn(inputs, impl, pass));
      walls[i].push(t.wall);
      cpus[i].push(t.cpu);
    }
  }
  const rows: Row[] = [];
  for (const [i, impl] of IMPLS.entries()) {
    const peak = await peakBytes(impl, passFn(inputs, impl, pass));
    rows.push({N, impl: impl.name, pass, wall_ms: median(walls[i]), cpu_ms: median(cpus[i]), peak_bytes: peak});
  }
  return rows;
}

function ratiosOf(rows: Row[], Ns: number[]) {
  const ratios = [];
  for (const N of Ns) {
    for (const pass of ['fwd', 'fwd+bwd']) {
      const get = (impl: string) => rows.find((x) => x.N === N && x.pass === pass && x.impl === impl)!;
      const [f, t, c, cpu] = IMPLS.map((impl) => get(impl.name));
      const x = (v: number) => v.toFixed(2) + 'x';
      ratios.push({N, pass,
        'composite/simd wall': x(c.wall_ms / f.wall_ms),
        'composite/simd cpu': x(c.cpu_ms / f.cpu_ms),
        'composite/simd peak': x(c.peak_bytes / Math.max(1, f.peak_bytes)),
        'composite/ts cpu': x(c.cpu_ms / t.cpu_ms),
        'cpu-kernel/simd cpu': x(cpu.cpu_ms / f.cpu_ms)});
    }
  }
  return ratios;
}

async function main() {
  const args = parseFlags(process.argv.slice(2), new Set<string>()).flags;
  const rounds = Number(args.rounds ?? 5);
  const B = Number(args.B ?? 8), h = 3, r = 12, G = 3;
  const Ns = String(args.cases ?? '65,197').split(',').map(Number);
  for (const b of ['cpu', 'wasm']) {
    if (!(await tf.setBackend(b))) throw new Error(`backend '${b}' failed to initialise`);
  }
  const rows: Row[] = [];
  for (const N of Ns) {
    console.log(`B=${B} h=${h} N=${N} r=${r} G=${G}: ${rounds} interleaved rounds`);
    const inputs = await makeInputs(B, h, N, r, G);
    for (const pass of ['fwd', 'fwd+bwd'] as const) rows.push(...await measurePass(inputs, N, pass, rounds));
    for (const ts of inputs.values()) tf.dispose(ts);
  }
  console.table(rows.map((x) => ({...x, wall_ms: x.wall_ms.toFixed(1), cpu_ms: x.cpu_ms.toFixed(1),
                                  peak_MiB: (x.peak_bytes / 2 ** 20).toFixed(2), peak_bytes: undefined})));
  const ratios = ratiosOf(rows, Ns);
  console.log(`ratios (B=${B} h=${h} r=${r} G=${G}; simd/ts: the wasm kernel's SIMD module / TypeScript path;` +
              ' cpu-kernel: the cpu backend\'s fused kernel; higher = simd better):');
  console.table(ratios);
  if (typeof args.json === 'string') writeFileSync(args.json, JSON.stringify({rows, ratios}, null, 2));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
