/**
 * Model-level cost of Fourier-KArAt: the training step of `karat train --dim 64 --depth 4
 * --heads 4 --patch-size 4 --batch-size 64` (CIFAR-10 size, 32x32) with G3B attention vs the
 * same model with softmax attention, per backend, as ratios G3B / softmax:
 *   cpu, wasm: wall and process CPU time per step (medians; CPU time because the machine is
 *              shared) and the peak bytes tfjs holds during a step (tf.profile peakBytes:
 *              parameters, optimizer state and activations) and above what is live before;
 *   webgpu:    (Dawn; SwiftShader where there is no GPU, so no times) GPU programs dispatched
 *              per step and the peak bytes of GPU buffers in use during a step.
 * The step is the trainer's (src/training/trainer.ts): leanVariableGrads of the soft
 * cross-entropy, clipByGlobalNorm(1), AdamW. Inputs are random (a step's cost does not depend
 * on pixel values); data loading, augmentation and evaluation, the same for both models, are
 * left out. Each backend runs in its own process; inside it both models are built and their
 * steps interleaved (A B B A ...), so a busy machine slows both alike.
 *
 *   npx tsx bench/karat_vs_softmax.ts [--backends wasm,cpu,webgpu] [--steps wasm=15,cpu=3]
 *       [--batch wasm=64,cpu=64,webgpu=64] [--json FILE]
 * (--steps and --batch take one number for every backend or backend=number pairs. --steps:
 * timed steps per model after one warm-up step; webgpu measures one step, untimed.)
 */
import {spawnSync} from 'node:child_process';
import {writeFileSync} from 'node:fs';
import {loadavg} from 'node:os';

import * as tf from '@tensorflow/tfjs-core';

import '../src/index';
import {leanVariableGrads} from '../core/lean_grads';
import {AdamW, clipByGlobalNorm} from '../src/training/adamw';
import {activateBackend} from '../src/training/backend';
import {modelWeights} from '../src/training/checkpoint';
import {resolveConfig} from '../src/training/config';
import {softCrossEntropy} from '../src/training/metrics';
import {buildModel, modelSpecFor, paramRule} from '../src/training/model';
import {parseFlags} from '../src/cli/flags';
import {median} from './common';
import {enableWasmMatMulNN} from '../kernels-wasm/matmul_nn';
import {gpuPeakBytes} from './webgpu';
import {programsOf} from './webgpu_profile';

const args = parseFlags(process.argv.slice(2), new Set<string>()).flags;
const ATTENTIONS = {softmax: {attention: 'softmax'}, G3B: {attention: 'fourier', grid: 3, rank: 12, mode: 'blockwise'}};
type AttName = keyof typeof ATTENTIONS;
const DEFAULTS: Record<string, Record<string, number>> = {
  steps: {wasm: 15, cpu: 3},
  batch: {wasm: 64, cpu: 64, webgpu: 64},
};

/** --name N (every backend) or --name backend=N,...; else the default. */
function perBackend(name: 'steps' | 'batch', backend: string): number {
  const v = args[name];
  let n = DEFAULTS[name][backend];
  if (typeof v === 'string') {
    if (/^\d+$/.test(v)) n = Number(v);
    for (const [k, x] of v.split(',').map((kv) => kv.split('='))) if (k === backend && x != null) n = Number(x);
  }
  if (!(Number.isInteger(n) && n >= 1)) throw new Error(`--${name}: no valid value for ${backend}`);
  return n;
}

/** One model with the trainer's step, on the active backend. */
function makeStep(att: AttName, B: number) {
  const cfg = resolveConfig([{from: 'bench', values: {
    dim: 64, depth: 4, heads: 4, patchSize: 4, batchSize: B, ...ATTENTIONS[att]}}]);
  const model = buildModel(modelSpecFor(cfg, {height: 32, width: 32, channels: 3, numClasses: 10}), 1);
  const ws = modelWeights(model).filter((w) => w.trainable);
  const params = ws.map((w) => ({name: w.name, variable: w.variable, rule: paramRule(w.name, w.variable.rank, cfg)}));
  const opt = new AdamW(params, {weightDecay: cfg.weightDecay});
  const vars = params.map((p) => p.variable);
  const x = tf.randomNormal([B, 32, 32, 3]) as tf.Tensor4D;
  const y = tf.tidy(() => tf.cast(tf.oneHot(tf.randomUniform([B], 0, 10, 'int32') as tf.Tensor1D, 10), 'float32')) as tf.Tensor2D;
  /** fwd + bwd + clip + AdamW; returns the loss (the caller downloads it). */
  const step = (): tf.Scalar => {
    const {value, grads} = leanVariableGrads(() => softCrossEntropy(model.apply(x, {training: true}) as tf.Tensor2D, y), vars);
    const {grads: g, norm} = clipByGlobalNorm(vars.map((v) => grads[v.name]), 1);
    opt.apply(g, 1e-3);
    tf.dispose([norm, ...g, ...Object.values(grads)]);
    return value as tf.Scalar;
  };
  return {step, params: model.countParams(), attention: cfg.attention};
}

async function timed(step: () => tf.Scalar) {
  const c0 = process.cpuUsage(), t0 = performance.now();
  const loss = step();
  await loss.data();
  const wall = performance.now() - t0, c = process.cpuUsage(c0);
  loss.dispose();
  return {wall, cpu: (c.user + c.system) / 1000};
}

async function child(backend: string): Promise<Record<string, unknown>> {
  const info = await activateBackend(backend as never);
  enableWasmMatMulNN();  // as the trainer's steps run on wasm (no-op elsewhere)
  const webgpu = backend === 'webgpu';
  if (webgpu && typeof args.steps === 'string' && /(^|,)webgpu=/.test(args.steps)) {
    throw new Error('--steps: webgpu measures one untimed step (dispatches, buffer bytes); give steps for cpu/wasm');
  }
  const B = perBackend('batch', backend), steps = webgpu ? 1 : perBackend('steps', backend);
  const models = {softmax: makeStep('softmax', B), G3B: makeStep('G3B', B)};
  const names: AttName[] = ['softmax', 'G3B'];
  const out: Record<string, unknown> = {backend, detail: info.detail, batch: B, steps};
  // warm-up (first allocations); on webgpu none: counts and buffer bytes do not need one, and
  // SwiftShader's steps take minutes
  if (!webgpu) for (const n of names) await timed(models[n].step);
  for (const n of names) {
    const m: Record<string, unknown> = {params: models[n].params};
    const before = tf.memory().numBytes;
    let gpuBytes: number | null = null;
    const prof = await tf.profile(async () => {
      if (webgpu) {
        gpuBytes = await gpuPeakBytes(() => models[n].step());
      } else {
        const l = models[n].step();
        await l.data();
        l.dispose();
      }
    });
    m.peak_bytes = prof.peakBytes;
    m.step_peak_bytes = prof.peakBytes - before;
    m.kernel_calls = prof.kernels.length;
    m.fused_kernels = [...new Set(prof.kernelNames.filter((k) => /KArAt/.test(k)))].sort();
    if (webgpu) {
      m.dispatches = prof.kernels.reduce((s, k) => s + programsOf(k.name), 0);
      m.gpu_step_peak_bytes = gpuBytes;
    }
    out[n] = m;
  }
  if (!webgpu) {
    const t: Record<AttName, {wall: number[], cpu: number[]}> = {softmax: {wall: [], cpu: []}, G3B: {wall: [], cpu: []}};
    for (let s = 0; s < steps; s++) {
      for (const n of (s % 2 === 0 ? names : [...names].reverse())) {
        const r = await timed(models[n].step);
        t[n].wall.push(r.wall);
        t[n].cpu.push(r.cpu);
      }
    }
    for (const n of names) {
      Object.assign(out[n] as object, {wall_ms: median(t[n].wall), cpu_ms: median(t[n].cpu)});
    }
  }
  return out;
}

const ratio = (a: unknown, b: unknown) => (typeof a === 'number' && typeof b === 'number' ? (a / b).toFixed(2) + 'x' : '-');

async function main() {
  if (typeof args.child === 'string') {
    process.stdout.write('RESULT ' + JSON.stringify(await child(args.child)) + '\n');
    process.exit(0);
  }
  const backends = String(args.backends ?? 'wasm,cpu,webgpu').split(',');
  const pass = process.argv.slice(2).filter((a, i, all) => a !== '--backends' && all[i - 1] !== '--backends');
  const results: Array<Record<string, unknown>> = [];
  for (const b of backends) {
    const c0 = Date.now();
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/karat_vs_softmax.ts', '--child', b, ...pass],
                        {encoding: 'utf8', timeout: 1800_000});
    const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('RESULT '));
    const rec = line ? JSON.parse(line.slice(7)) :
        {backend: b, error: (r.stderr ?? '').split('\n').find((l) => /Error|unavailable/.test(l)) ?? `exit ${r.status}`};
    results.push({...rec, seconds: (Date.now() - c0) / 1000, load_avg_1m: loadavg()[0]});
    console.log(JSON.stringify(results[results.length - 1]));
  }
  const rows = results.map((r) => {
    const s = (r.softmax ?? {}) as Record<string, number>, g = (r.G3B ?? {}) as Record<string, number>;
    return {
      backend: r.backend, batch: r.batch ?? '-', steps: r.steps ?? '-',
      'time (wall)': ratio(g.wall_ms, s.wall_ms), 'time (CPU)': ratio(g.cpu_ms, s.cpu_ms),
      'peak bytes': ratio(g.peak_bytes, s.peak_bytes), 'step peak bytes': ratio(g.step_peak_bytes, s.step_peak_bytes),
      'dispatches': ratio(g.dispatches, s.dispatches), 'GPU buffer bytes (step peak)': ratio(g.gpu_step_peak_bytes, s.gpu_step_peak_bytes),
      error: r.error ?? '',
    };
  });
  console.log('G3B / softmax per training step (dim 64, depth 4, heads 4, patch 4, 32x32):');
  console.table(rows);
  if (typeof args.json === 'string') writeFileSync(args.json, JSON.stringify(results, null, 2) + '\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
