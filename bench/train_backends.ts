/**
 * Training throughput per backend (images/s) for the `quick` preset's model, as `karat
 * train` runs it: forward + backward + global-norm clipping + AdamW on a batch. Also
 * inference images/s. Each backend runs in its own child process (clean engine state).
 *
 *   npx tsx bench/train_backends.ts [--backends cpu,wasm,webgpu] [--batch 32] [--iters 3]
 *       [--patch 8] [--attention fourier|softmax] [--json runs/bench/train_backends.json]
 */
import * as tf from '@tensorflow/tfjs-core';
import {spawnSync} from 'node:child_process';
import {mkdirSync, writeFileSync} from 'node:fs';
import {dirname} from 'node:path';

import '../src/index';
import {leanVariableGrads} from '../src/ops/lean_grads';
import {AdamW, clipByGlobalNorm} from '../src/training/adamw';
import {activateBackend} from '../src/training/backend';
import {modelWeights} from '../src/training/checkpoint';
import {resolveConfig} from '../src/training/config';
import {softCrossEntropy} from '../src/training/metrics';
import {buildModel, modelSpecFor, paramRule} from '../src/training/model';
import {parseFlags} from '../src/cli/flags';
import {median} from './common';

const args = parseFlags(process.argv.slice(2), new Set<string>()).flags;

async function one(backend: string): Promise<Record<string, unknown>> {
  const B = Number(args.batch ?? 32), iters = Number(args.iters ?? 3);
  const info = await activateBackend(backend as never);
  const cfg = resolveConfig([{from: 'bench', values: {preset: 'quick', patchSize: Number(args.patch ?? 8), attention: String(args.attention ?? 'fourier')}}]);
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
  const out: Record<string, unknown> = {backend, detail: info.detail, batch: B, patch: cfg.patchSize, attention: cfg.attention};
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

async function main() {
  if (args.child) {
    process.stdout.write('RESULT ' + JSON.stringify(await one(String(args.child))) + '\n');
    process.exit(0);
  }
  const backends = String(args.backends ?? 'cpu,wasm,webgpu').split(',');
  const results: Array<Record<string, unknown>> = [];
  for (const b of backends) {
    const pass = process.argv.slice(2).filter((a, i, all) => a !== '--backends' && all[i - 1] !== '--backends');
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/train_backends.ts', '--child', b, ...pass], {encoding: 'utf8', timeout: 1800_000});
    const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('RESULT '));
    const rec = line ? JSON.parse(line.slice(7)) : {backend: b, error: (r.stderr ?? '').split('\n').filter((l) => /Error/.test(l))[0] ?? `exit ${r.status}`};
    results.push({...rec, load_avg_1m: (await import('node:os')).loadavg()[0]});
    console.log(JSON.stringify(results[results.length - 1]));
  }
  console.table(results.map((r) => ({backend: r.backend, 'train img/s': (r.train_images_per_s as number)?.toFixed(2) ?? '-',
    'train img per CPU-s': (r.train_images_per_cpu_s as number)?.toFixed(2) ?? '-',
    'infer img/s': (r.infer_images_per_s as number)?.toFixed(1) ?? '-', error: r.error ?? ''})));
  if (args.json) {
    mkdirSync(dirname(String(args.json)), {recursive: true});
    writeFileSync(String(args.json), JSON.stringify(results, null, 2) + '\n');
  }
}

main();
