/**
 * Training throughput per backend, side by side in one run, for the `quick` preset's model and
 * the CIFAR-10 study's model (bench/cpu_models.ts: dim 48, depth 3, patch 4, batch 64),
 * Fourier-KArAt G3B and softmax. Two measures:
 *   - step: forward + backward + global-norm clipping + AdamW on one random batch, as `karat
 *     train` runs it, each backend in its own child process (clean engine state): images/s
 *     (median step), images per CPU-second, and inference images/s;
 *   - train: a short real training run with the same flags on every side (bench/train_runs.ts):
 *     `karat train --backend X`, and the PyTorch twin (python/train.py, best of
 *     --torch-threads): images/s and images per CPU-second of its last epoch. The twin has only
 *     this measure.
 * Backends: cpu, wasm, webgpu, tensorflow (with our op library when it is built),
 * tensorflow-composite (the same with KARAT_TF_KERNELS=0), torch (the twin). Rounds interleave
 * (the order reverses every other round); each number is the best of the rounds.
 *
 *   npx tsx bench/train_backends.ts [--backends tensorflow,tensorflow-composite,wasm,torch]
 *       [--models quick,study] [--attention fourier,softmax] [--measures step,train] [--rounds 2]
 *       [--batch B] [--patch 8 (quick)] [--iters 3] [--train-steps N] [--test-limit N]
 *       [--torch-threads 1,2] [--python /usr/bin/python3] [--json runs/bench/train_backends.json]
 */
import * as tf from '@tensorflow/tfjs-core';
import {spawnSync} from 'node:child_process';
import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs';
import {loadavg, tmpdir} from 'node:os';
import {dirname, join} from 'node:path';

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
import {STUDY_MODEL} from './cpu_models';
import {runOne, Side} from './train_runs';

const args = parseFlags(process.argv.slice(2), new Set<string>()).flags;

/** A backend column: the tfjs backend karat runs on and the environment it runs with. */
function karatBackend(name: string): {backend: string, env: Record<string, string>} {
  if (name === 'tensorflow-composite') return {backend: 'tensorflow', env: {KARAT_TF_KERNELS: '0'}};
  return {backend: name, env: {}};
}

/** The step measure of `model` with `attention` on `backend`, in this (child) process. */
async function one(backend: string, modelName: string, attention: string): Promise<Record<string, unknown>> {
  const study = modelName === 'study';
  const B = Number(args.batch ?? (study ? STUDY_MODEL.batchSize : 32)), iters = Number(args.iters ?? 3);
  const info = await activateBackend(backend as never);
  const values: Record<string, unknown> = study ? {...STUDY_MODEL, attention} :
    {preset: 'quick', patchSize: Number(args.patch ?? 8), attention};
  const cfg = resolveConfig([{from: 'bench', values}]);
  const model = buildModel(modelSpecFor(cfg, {height: 32, width: 32, channels: 3, numClasses: 10}), 1);
  const ws = modelWeights(model).filter((w) => w.trainable);
  const params = ws.map((w) => ({name: w.name, variable: w.variable, rule: paramRule(w.name, w.variable.rank, cfg)}));
  const opt = new AdamW(params, {weightDecay: 0.05});
  const vars = params.map((p) => p.variable);
  const x = tf.randomNormal([B, 32, 32, 3]) as tf.Tensor4D;
  const y = tf.oneHot(tf.randomUniform([B], 0, 10, 'int32') as tf.Tensor1D, 10);
  const yf = tf.cast(y, 'float32') as tf.Tensor2D;
  const step = async () => {
    const {value, grads} = leanVariableGrads(() => softCrossEntropy(model.apply(x, {training: true}) as tf.Tensor2D, yf), vars);
    const {grads: g, norm} = clipByGlobalNorm(vars.map((v) => grads[v.name]), 1);
    opt.apply(g, 1e-3);
    await value.data();
    tf.dispose([value, norm, ...g, ...Object.values(grads)]);
  };
  const infer = async () => {
    const o = model.apply(x, {training: false}) as tf.Tensor;
    await o.data();
    o.dispose();
  };
  const out: Record<string, unknown> = {backend, model: modelName, detail: info.detail, batch: B, patch: cfg.patchSize, attention: cfg.attention};
  try {
    await infer();
    const ti: number[] = [];
    for (let i = 0; i < iters; i++) {
      const t0 = performance.now();
      await infer();
      ti.push(performance.now() - t0);
    }
    out.infer_ms = median(ti);
    out.infer_images_per_s = B / (median(ti) / 1000);
    await step();
    const ts: number[] = [];
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < iters; i++) {
      const t0 = performance.now();
      await step();
      ts.push(performance.now() - t0);
    }
    const cpu = process.cpuUsage(cpu0);
    // CPU seconds per step (all threads of the process, e.g. SwiftShader's workers too)
    out.train_cpu_s_per_step = (cpu.user + cpu.system) / 1e6 / iters;
    out.train_images_per_cpu_s = B / (out.train_cpu_s_per_step as number);
    out.train_step_ms = median(ts);
    out.train_images_per_s = B / (median(ts) / 1000);
  } catch (e) {
    out.error = (e as Error).message.split('\n')[0];
  }
  return out;
}

/** The step measure in a child process of its own. */
function stepMeasure(column: string, model: string, attention: string): Record<string, unknown> {
  const {backend, env} = karatBackend(column);
  const pass = ['--model', model, '--attention', attention, ...['batch', 'iters', 'patch'].flatMap((k) => args[k] != null ? [`--${k}`, String(args[k])] : [])];
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/train_backends.ts', '--child', backend, ...pass],
                      {encoding: 'utf8', timeout: 1800_000, env: {...process.env, ...env}});
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('RESULT '));
  return line ? JSON.parse(line.slice(7)) :
    {backend, error: (r.stderr ?? '').split('\n').filter((l) => /Error/.test(l))[0] ?? `exit ${r.status}`};
}

/** The train measure: karat train on the column's backend, or the twin (best of its thread counts). */
function trainMeasure(column: string, model: string, attention: string, dir: string): Side | {error: string} {
  const length = {
    ...(args['train-steps'] != null ? {stepsPerEpoch: Number(args['train-steps'])} : {}),
    ...(args['test-limit'] != null ? {testLimit: Number(args['test-limit'])} : {}),
  };
  try {
    if (column !== 'torch') return runOne('karat', model, attention, join(dir, column), {...karatBackend(column), ...length});
    const python = String(args.python ?? '/usr/bin/python3');
    const runs = String(args['torch-threads'] ?? '1,2').split(',').map((n) => runOne(`torch${n}`, model, attention, join(dir, 'torch'), {python, ...length}));
    return runs.reduce((a, b) => b.imagesPerSec > a.imagesPerSec ? b : a);
  } catch (e) {
    return {error: (e as Error).message.split('\n').slice(0, 3).join(' ')};
  }
}

type Cell = Record<string, unknown>;

const better = (a: number | undefined, b: number | undefined) => a == null ? b : b == null ? a : Math.max(a, b);

/** Keeps, per number, the best of the rounds. */
function keepBest(best: Cell | undefined, r: Cell): Cell {
  if (best == null) return r;
  const out: Cell = {...best, ...r};
  for (const k of ['infer_images_per_s', 'train_images_per_cpu_s', 'train_images_per_s', 'run_images_per_s', 'run_images_per_cpu_s']) {
    out[k] = better(best[k] as number | undefined, r[k] as number | undefined);
  }
  if (best.error == null || r.error == null) delete out.error;
  return out;
}

async function main() {
  if (args.child) {
    process.stdout.write('RESULT ' + JSON.stringify(await one(String(args.child), String(args.model ?? 'quick'), String(args.attention ?? 'fourier'))) + '\n');
    process.exit(0);
  }
  const columns = String(args.backends ?? 'cpu,wasm,webgpu').split(',');
  const models = String(args.models ?? 'quick').split(',');
  const attentions = String(args.attention ?? 'fourier').split(',');
  const measures = new Set(String(args.measures ?? 'step,train').split(','));
  const rounds = Number(args.rounds ?? 1);
  const tmp = mkdtempSync(join(tmpdir(), 'karat-train-backends-'));
  const best = new Map<string, Cell>();
  try {
    for (let round = 0; round < rounds; round++) {
      for (const model of models) {
        for (const attention of attentions) {
          for (const column of round % 2 === 0 ? columns : [...columns].reverse()) {
            const cell: Cell = {column, model, attention, round: round + 1};
            if (measures.has('step') && column !== 'torch') Object.assign(cell, stepMeasure(column, model, attention));
            if (measures.has('train')) {
              const t = trainMeasure(column, model, attention, join(tmp, `${model}-${attention}-${round}`));
              if ('error' in t) cell.error = [cell.error, t.error].filter((e) => e != null).join('; ');
              else Object.assign(cell, {run_images_per_s: t.imagesPerSec, run_images_per_cpu_s: t.imagesPerCpuSec, run_test_top1: t.testTop1});
            }
            cell.load_avg_1m = loadavg()[0];
            console.log(JSON.stringify(cell));
            const key = `${model}|${attention}|${column}`;
            best.set(key, keepBest(best.get(key), cell));
          }
        }
      }
    }
  } finally {
    rmSync(tmp, {recursive: true, force: true});
  }
  const results = [...best.values()];
  const fix = (v: unknown, d = 1) => typeof v === 'number' ? v.toFixed(d) : '-';
  for (const model of models) {
    for (const attention of attentions) {
      const rows = results.filter((r) => r.model === model && r.attention === attention);
      const torch = rows.find((r) => r.column === 'torch')?.run_images_per_cpu_s as number | undefined;
      console.log(`\n${model} model, ${attention} attention: best of ${rounds} round(s)`);
      console.table(rows.map((r) => ({
        backend: r.column,
        'step img/s': fix(r.train_images_per_s), 'step img per CPU-s': fix(r.train_images_per_cpu_s),
        'infer img/s': fix(r.infer_images_per_s),
        'train run img/s': fix(r.run_images_per_s), 'train run img per CPU-s': fix(r.run_images_per_cpu_s),
        'vs torch (per CPU-s)': torch != null && typeof r.run_images_per_cpu_s === 'number' ? (r.run_images_per_cpu_s / torch).toFixed(2) + 'x' : '-',
        error: r.error ?? '',
      })));
    }
  }
  if (args.json) {
    mkdirSync(dirname(String(args.json)), {recursive: true});
    writeFileSync(String(args.json), JSON.stringify({rounds, results}, null, 2) + '\n');
  }
}

main();
