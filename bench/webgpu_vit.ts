/**
 * Benchmark: ViT training step and inference on WebGPU, stock tfjs layers + tf.train.adam
 * vs the plugin's fused layer kernels + fused AdamW, side by side in one process:
 *   npx tsx bench/webgpu_vit.ts [--quick] [--json FILE] [--profile] [--attention softmax,G3B]
 *       [--variants stock,fused,fused+submit400] [--iters 3] [--warmup 1]
 *
 * Per case: median wall ms of a full step (synchronised), tf.profile peak bytes, GPU-buffer
 * peak bytes (tfjs-backend-webgpu's buffer manager), GPU kernel ms (tf.time, when the adapter
 * has timestamp-query), and the dispatch count of one step. --profile adds the per-kernel
 * profile (bench/webgpu_profile.ts) of one step for stock and fused. --quick: depth-2 ViT-Tiny,
 * 32x32/8, batch 2 (SwiftShader). The bundle for the GPU machine: bench/device/build-vit.sh.
 */
import {writeFileSync} from 'node:fs';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

import '../src/index';
import {releaseWebGPUNode} from '../test/support/webgpu_node';
import {startWebGPUBench} from './webgpu_start';
import {parseFlags} from '../src/cli/flags';
import {BenchRecord, downloadAll, measure, printTable} from './common';
import {gpuBytesInUse, gpuPeakBytes, kernelMs} from './webgpu';
import {programsOf, profileMarkdown, profileTrainStep, StepProfile} from './webgpu_profile';
import {makeTrainStep, vitFusedCases, ViTFusedCase} from './vit_fused';

async function dispatchCount(fn: () => tf.TensorContainer): Promise<number> {
  const info = await tf.profile(async () => {
    const out = tf.tidy(fn);
    await downloadAll(out);
    tf.dispose(out);
  });
  return info.kernels.reduce((n, k) => n + programsOf(k.name), 0);
}

export async function runViTCase(c: ViTFusedCase, iters: number, warmup: number): Promise<BenchRecord> {
  const saved: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(c.flags)) {
    saved[k] = tf.env().get(k);
    tf.env().set(k, v);
  }
  const s = makeTrainStep(c.options);
  try {
    const fn = c.pass === 'train-step' ? () => s.step() : () => s.infer();
    const m = await measure(fn, {warmup, iters});
    // GPU buffers held before the call (parameters, optimizer state, inputs) + the peak above them.
    const resident = gpuBytesInUse();
    const gpuPeak = await gpuPeakBytes(fn);
    const kms = await kernelMs(fn);
    const dispatches = await dispatchCount(fn);
    const o = c.options;
    const N = (o.imageSize / o.patchSize) ** 2 + 1;
    const karatAtt = c.case.endsWith('softmax') ? null : {r: 12, G: 3};
    return {
      backend: tf.getBackend(), case: c.case, impl: c.impl, B: o.batch, h: 3, N,
      r: karatAtt?.r ?? 0, G: karatAtt?.G ?? 0, pass: c.pass, ms_median: m.ms_median,
      peak_bytes: m.peak_bytes, peak_gpu_bytes: gpuPeak, gpu_resident_bytes: resident,
      gpu_total_peak_bytes: resident != null && gpuPeak != null ? resident + gpuPeak : null, kernel_ms: kms, dispatches,
      times_ms: m.times, params: s.params, flags: c.flags,
    };
  } finally {
    s.dispose();
    for (const [k, v] of Object.entries(saved)) tf.env().set(k, v as boolean);
  }
}

/** Targets, against PyTorch on the H100 (docs/benchmarks.md, reference measurements). */
export function targets(records: BenchRecord[]) {
  const PT = {trainMs: 26.2, inferMs: 6.1};
  const get = (att: string, impl: string, pass: string) =>
      records.find((r) => r.case.endsWith(att) && r.impl === impl && r.pass === pass);
  // Device memory: all GPU buffers in use at the step's peak; tf.profile's count where there is none.
  const mem = (r: BenchRecord) => (r.gpu_total_peak_bytes as number | null) ?? r.peak_bytes;
  const out: Array<Record<string, unknown>> = [];
  for (const impl of [...new Set(records.map((r) => r.impl))]) {
    const g = get('G3B', impl, 'train-step'), s = get('softmax', impl, 'train-step');
    const gi = get('G3B', impl, 'inference'), si = get('softmax', impl, 'inference');
    out.push({
      impl,
      g3b_train_vs_pytorch_softmax: g ? g.ms_median / PT.trainMs : null,
      g3b_peak_GiB: g ? mem(g) / 2 ** 30 : null,
      g3b_infer_vs_pytorch_softmax: gi ? gi.ms_median / PT.inferMs : null,
      karat_softmax_time_ratio: g && s ? g.ms_median / s.ms_median : null,
      karat_softmax_memory_ratio: g && s ? mem(g) / Math.max(1, mem(s)) : null,
      karat_softmax_infer_ratio: gi && si ? gi.ms_median / si.ms_median : null,
    });
  }
  return out;
}

async function main() {
  const args = parseFlags(process.argv.slice(2), new Set(['quick', 'profile'])).flags;
  const quick = Boolean(args.quick);
  const started = await startWebGPUBench();
  if (started == null) return;
  const meta = {...started, args};
  console.log(`WebGPU adapter: ${meta.adapter}, timestamp-query: ${meta.timestampQuery}`);
  const attentions = String(args.attention ?? 'softmax,G3B').split(',');
  const variants = typeof args.variants === 'string' ? args.variants.split(',') : null;
  const iters = Number(args.iters ?? 3), warmup = Number(args.warmup ?? 1);
  const records: BenchRecord[] = [];
  const write = (extra: Record<string, unknown> = {}) => {
    if (typeof args.json === 'string') {
      writeFileSync(args.json, JSON.stringify({meta, records, targets: targets(records), ...extra}, null, 2));
    }
  };
  for (const c of vitFusedCases(quick, attentions).filter((x) => variants == null || variants.includes(x.impl))) {
    console.log(`running ${c.case} ${c.impl} ${c.pass} ...`);
    try {
      const r = await runViTCase(c, iters, warmup);
      console.log(`  ${r.ms_median.toFixed(1)} ms, peak ${(r.peak_bytes / 2 ** 30).toFixed(3)} GiB, ` +
                  `GPU peak ${r.peak_gpu_bytes == null ? '-' : ((r.peak_gpu_bytes as number) / 2 ** 30).toFixed(3)} GiB, ` +
                  `kernel ${r.kernel_ms == null ? '-' : (r.kernel_ms as number).toFixed(1)} ms, ${r.dispatches} dispatches`);
      records.push(r);
    } catch (e) {
      console.error(`  failed: ${(e as Error).message}`);
      records.push({backend: 'webgpu', case: c.case, impl: c.impl, B: c.options.batch, h: 3, N: 0, r: 0, G: 0,
                    pass: c.pass, ms_median: NaN, peak_bytes: NaN, error: String((e as Error).message)});
    }
    write();
  }
  printTable(records);
  console.table(targets(records));
  let profiles: StepProfile[] | null = null;
  if (args.profile) {
    profiles = [];
    const o = vitFusedCases(quick, attentions)[0].options;
    for (const a of attentions) {
      for (const fused of [false, true]) {
        console.log(`profiling ${a} fused=${fused} ...`);
        profiles.push(await profileTrainStep({...o, attentionName: a}, fused));
      }
    }
    console.log(profileMarkdown(profiles, `one training step, ${meta.adapter}`));
  }
  write(profiles ? {profiles} : {});
  if (typeof args.json === 'string') console.log(`wrote ${args.json}`);
  releaseWebGPUNode();
}

if (/(bench[\\/]webgpu_vit\.ts|webgpu-vit\.mjs)$/.test(process.argv[1] ?? '')) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
