/**
 * Where a training step's time goes on a backend (default wasm): per-kernel time and count,
 * kernels and tensor allocations per step, and the phases of the loop (data preparation,
 * forward+backward, clipping, optimizer, download), for the quick preset's model or the
 * study's (--model study).
 *
 *   npx tsx bench/profile_step.ts [--backend wasm] [--attention fourier|softmax] [--model quick|study]
 *       [--steps 10] [--top 25] [--stock]   (--stock: tfjs-backend-wasm's own BatchMatMul, as before the trainer's)
 */
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
import {BatchLoader} from '../src/data/loader';
import {loadDatasetPair, normalisationFor} from '../src/data/registry';
import {augmentFor} from '../src/training/trainer';
import {STUDY_MODEL} from './cpu_models';
import {enableWasmMatMulNN} from '../kernels-wasm/matmul_nn';

const args = parseFlags(process.argv.slice(2), new Set<string>(['stock'])).flags;

async function main(): Promise<void> {
  const backend = String(args.backend ?? 'wasm');
  const steps = Number(args.steps ?? 10), top = Number(args.top ?? 25);
  await activateBackend(backend as never);
  const values: Record<string, unknown> = args.model === 'study' ? {...STUDY_MODEL} : {preset: 'quick'};
  values.attention = String(args.attention ?? 'fourier');
  const cfg = resolveConfig([{from: 'bench', values}]);
  const pair = await loadDatasetPair('cifar10-subset', {dataDir: null, download: false, trainLimit: 0, testLimit: 0, imageSize: 32});
  const norm = normalisationFor('cifar10-subset', pair.train);
  const loader = new BatchLoader(pair.train, {batchSize: cfg.batchSize, train: true, augment: augmentFor(cfg, norm), seed: 1, prefetch: 1});
  const model = buildModel(modelSpecFor(cfg, {height: 32, width: 32, channels: 3, numClasses: 10}), 1);
  const ws = modelWeights(model).filter((w) => w.trainable);
  const params = ws.map((w) => ({name: w.name, variable: w.variable, rule: paramRule(w.name, w.variable.rank, cfg)}));
  const opt = new AdamW(params, {weightDecay: 0.05});
  const vars = params.map((p) => p.variable);

  if (args.stock !== true) enableWasmMatMulNN();
  // per-kernel wall time: wrap every kernelFunc registered for the backend (wasm/cpu run synchronously)
  const perKernel = new Map<string, {n: number, ms: number}>();
  let counting = false;
  for (const k of tf.getKernelsForBackend(backend)) {
    const f = k.kernelFunc;
    (k as {kernelFunc: unknown}).kernelFunc = (a: Parameters<tf.KernelFunc>[0]) => {
      if (!counting) return f(a);
      const t0 = performance.now();
      const r = f(a);
      const key = k.kernelName === 'BatchMatMul' || k.kernelName === '_FusedMatMul' ?
          `${k.kernelName} ${Object.values(a.inputs).slice(0, 2).map((t) => (t as tf.TensorInfo).shape.join('x')).join(',')} ${(a.attrs as {transposeA: boolean}).transposeA ? 'T' : 'N'}${(a.attrs as {transposeB: boolean}).transposeB ? 'T' : 'N'}` : k.kernelName;
      const e = perKernel.get(key) ?? {n: 0, ms: 0};
      e.n++; e.ms += performance.now() - t0;
      perKernel.set(key, e);
      return r;
    };
  }
  const phase = {data: 0, fwdbwd: 0, clip: 0, opt: 0, sync: 0, dispose: 0};
  let tensorsMade = 0;
  const it = loader.epoch(0)[Symbol.asyncIterator]();
  const runStep = async (measure: boolean) => {
    let t = performance.now();
    const lap = (k: keyof typeof phase) => {
      const n = performance.now();
      if (measure) phase[k] += n - t;
      t = n;
    };
    const b = (await it.next()).value;
    const x = tf.tensor4d(b.x, [b.size, 32, 32, 3]), y = tf.tensor2d(b.y, [b.size, 10]);
    lap('data');
    const id0 = (tf.engine() as unknown as {nextTensorId(): number}).nextTensorId();
    const {value, grads} = leanVariableGrads(() => softCrossEntropy(model.apply(x, {training: true}) as tf.Tensor2D, y), vars);
    lap('fwdbwd');
    const {grads: g, norm: nrm} = clipByGlobalNorm(vars.map((v) => grads[v.name]), 1);
    lap('clip');
    opt.apply(g, 1e-3);
    lap('opt');
    await value.data(); await nrm.data();
    lap('sync');
    if (measure) tensorsMade += (tf.engine() as unknown as {nextTensorId(): number}).nextTensorId() - id0;
    tf.dispose([x, y, value, nrm, ...g, ...Object.values(grads)]);
    lap('dispose');
  };
  for (let i = 0; i < 3; i++) await runStep(false);
  counting = true;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) await runStep(true);
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  counting = false;
  const kms = [...perKernel.values()].reduce((a, e) => a + e.ms, 0);
  const kn = [...perKernel.values()].reduce((a, e) => a + e.n, 0);
  console.log(`${backend}${args.stock ? ' (stock BatchMatMul)' : ''} ${cfg.attention} model=${args.model ?? 'quick'} B=${cfg.batchSize} dim=${cfg.dim} depth=${cfg.depth} patch=${cfg.patchSize}`);
  console.log(`step: ${(wall / steps).toFixed(1)} ms wall, ${((cpu.user + cpu.system) / 1e3 / steps).toFixed(1)} ms CPU, ${(cfg.batchSize / (wall / steps) * 1000).toFixed(0)} img/s`);
  console.log(`kernels/step: ${(kn / steps).toFixed(0)} taking ${(kms / steps).toFixed(1)} ms; tensors made/step: ${(tensorsMade / steps).toFixed(0)}; ` +
              `outside kernels (engine, tape, JS): ${((wall - kms) / steps).toFixed(1)} ms/step`);
  console.log('phases ms/step: ' + Object.entries(phase).map(([k, v]) => `${k} ${(v / steps).toFixed(1)}`).join(', '));
  console.log('kernel                      calls/step   ms/step   share');
  for (const [name, e] of [...perKernel.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, top)) {
    console.log(`${name.padEnd(44)}${(e.n / steps).toFixed(0).padStart(10)}${(e.ms / steps).toFixed(2).padStart(10)}${(100 * e.ms / wall).toFixed(1).padStart(7)}%`);
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
