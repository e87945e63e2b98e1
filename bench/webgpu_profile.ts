/**
 * Per-kernel profile of one ViT training step on the active backend:
 *   npx tsx bench/webgpu_profile.ts [--json FILE] [--md FILE] [--preset tiny] [--depth 2]
 *       [--image 32] [--patch 8] [--batch 2] [--attention softmax|G3B] [--fused on|off|both]
 *
 * For each phase of the step (forward = inference pass, fwd+bwd = tf.variableGrads, optimizer
 * = Adam update) it lists every kernel tfjs dispatched (tf.profile's kernel list), grouped by
 * kernel name: dispatch count and, when the adapter reports GPU timestamps (`timestamp-query`,
 * tf.time's kernelMs), GPU milliseconds. The dispatch count is what SwiftShader can measure;
 * on a real GPU the same script gives kernel times. `--fused both` profiles with the fused
 * layer kernels off and on (flag KARAT_FUSED_LAYERS) for a before/after table.
 */
import {writeFileSync} from 'node:fs';

import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';

import * as karat from '../src/index';
import {KARAT_FUSED_LAYERS_FLAG} from '../core/flags';
import {releaseWebGPUNode} from '../test/support/webgpu_node';
import {startWebGPUBench} from './webgpu_start';
import {parseFlags} from '../src/cli/flags';
import {downloadAll} from './common';
import {makeTrainStep, TrainStepOptions} from './vit_fused';

export interface KernelRow {name: string, count: number, ms: number | null}
/**
 * kernelCalls: every kernel tfjs ran (tf.profile); dispatches: GPU programs those kernels
 * launched (programsOf: 0 for views/copies, several for multi-program kernels).
 */
export interface PhaseProfile {phase: string, kernelCalls: number, dispatches: number, kernelMs: number | null, wallMs: number, kernels: KernelRow[]}

/** Kernels that never dispatch a GPU program on webgpu (views, reference copies, op scopes). */
export function isNonDispatch(name: string): boolean {
  return name === 'Reshape' || name === 'Identity' || name.endsWith('__op');
}

/**
 * GPU programs one kernel call dispatches: 0 for non-dispatching kernels, the known count for
 * the plugin's multi-program kernels (FourierKArAtGrad: 3, or 2 when dCoeffs needs one chunk),
 * 1 for every other (stock) kernel. KArAtAdamWInPlace counts 1 (its in-place dispatch; it falls
 * back to 3 only when a buffer is shared).
 */
export const PROGRAMS_PER_KERNEL: Record<string, number> = {
  KArAtLayerNormGrad: 4, KArAtBiasGeluGrad: 2, KArAtAdamW: 3, KArAtAdamWInPlace: 1, FourierKArAtGrad: 3,
};
export function programsOf(name: string): number {
  return isNonDispatch(name) ? 0 : PROGRAMS_PER_KERNEL[name] ?? 1;
}

/** Profiles `fn` once: kernels grouped by name (count, summed kernelTimeMs when reported). */
export async function profilePhase(phase: string, fn: () => tf.TensorContainer): Promise<PhaseProfile> {
  const t0 = performance.now();
  const info = await tf.profile(async () => {
    const out = tf.tidy(fn);
    await downloadAll(out);
    tf.dispose(out);
  });
  const wallMs = performance.now() - t0;
  const rows = new Map<string, KernelRow>();
  let total: number | null = null;
  for (const k of info.kernels) {
    const row = rows.get(k.name) ?? {name: k.name, count: 0, ms: null};
    row.count++;
    const t = await Promise.resolve(k.kernelTimeMs as number | {error: string} | Promise<number>);
    if (typeof t === 'number' && Number.isFinite(t)) {
      row.ms = (row.ms ?? 0) + t;
      total = (total ?? 0) + t;
    }
    rows.set(k.name, row);
  }
  const kernels = [...rows.values()].sort((a, b) => b.count - a.count || a.name.localeCompare(b.name));
  const dispatches = info.kernels.reduce((n, k) => n + programsOf(k.name), 0);
  return {phase, kernelCalls: info.kernels.length, dispatches, kernelMs: total, wallMs, kernels};
}

export interface StepProfile {fused: boolean, attention: string, phases: PhaseProfile[]}

/** Profiles inference, fwd+bwd and the optimizer update of one training step. */
export async function profileTrainStep(o: TrainStepOptions, fused: boolean): Promise<StepProfile> {
  const saved = tf.env().get(KARAT_FUSED_LAYERS_FLAG);
  tf.env().set(KARAT_FUSED_LAYERS_FLAG, fused);
  const s = makeTrainStep(o);
  try {
    // Warm-up (shader compilation, variable creation of the optimizer).
    for (let i = 0; i < 2; i++) {
      const v = tf.tidy(() => s.step());
      await v.data();
      v.dispose();
    }
    const phases: PhaseProfile[] = [];
    phases.push(await profilePhase('inference', () => s.infer()));
    let grads: tf.NamedTensorMap = {};
    phases.push(await profilePhase('fwd+bwd', () => {
      const r = s.grads();
      grads = r.grads;
      return r;
    }));
    // keep the gradients of the profiled call alive for the optimizer phase
    const keep = tf.tidy(() => s.grads());
    phases.push(await profilePhase('optimizer', () => {
      s.update(keep.grads);
      return [];
    }));
    tf.dispose([keep.value, ...Object.values(keep.grads)]);
    void grads;
    return {fused, attention: o.attentionName, phases};
  } finally {
    s.dispose();
    tf.env().set(KARAT_FUSED_LAYERS_FLAG, saved as boolean);
  }
}

/** Markdown: per phase, kernels by name with counts (before / after when two profiles). */
export function profileMarkdown(profiles: StepProfile[], title: string): string {
  const lines: string[] = [`### ${title}`, ''];
  const phases = profiles[0].phases.map((p) => p.phase);
  const head = profiles.map((p) => `${p.attention} ${p.fused ? 'fused' : 'stock'}`);
  lines.push(`| phase | ${head.map((h) => `${h}: dispatches (kernel calls) | GPU ms`).join(' | ')} |`);
  lines.push(`|---|${head.map(() => '---|---').join('|')}|`);
  for (const ph of phases) {
    const cells = profiles.map((p) => {
      const x = p.phases.find((y) => y.phase === ph)!;
      return `${x.dispatches} (${x.kernelCalls}) | ${x.kernelMs == null ? '-' : x.kernelMs.toFixed(2)}`;
    });
    lines.push(`| ${ph} | ${cells.join(' | ')} |`);
  }
  lines.push('');
  for (const ph of phases) {
    const names = new Set<string>();
    for (const p of profiles) p.phases.find((y) => y.phase === ph)!.kernels.forEach((k) => names.add(k.name));
    const count = (p: StepProfile, n: string) => p.phases.find((y) => y.phase === ph)!.kernels.find((k) => k.name === n);
    const sorted = [...names].sort((a, b) => (count(profiles[0], b)?.count ?? 0) - (count(profiles[0], a)?.count ?? 0) || a.localeCompare(b));
    lines.push(`<details><summary>${ph}: dispatches per kernel</summary>`, '');
    lines.push(`| kernel | ${head.join(' | ')} |`, `|---|${head.map(() => '---').join('|')}|`);
    for (const n of sorted) {
      lines.push(`| ${n} | ${profiles.map((p) => {
        const k = count(p, n);
        return k == null ? '0' : `${k.count}${k.ms != null ? ` (${k.ms.toFixed(2)} ms)` : ''}`;
      }).join(' | ')} |`);
    }
    lines.push('', '</details>', '');
  }
  return lines.join('\n');
}

async function main() {
  const args = parseFlags(process.argv.slice(2), new Set<string>()).flags;
  const started = await startWebGPUBench();
  if (started == null) return;
  const attentions = String(args.attention ?? 'softmax,G3B').split(',');
  const fusedModes = args.fused === 'on' ? [true] : args.fused === 'off' ? [false] : [false, true];
  const profiles: StepProfile[] = [];
  for (const a of attentions) {
    for (const f of fusedModes) {
      const o: TrainStepOptions = {
        preset: (args.preset as 'tiny') ?? 'tiny', depth: Number(args.depth ?? 2),
        imageSize: Number(args.image ?? 32), patchSize: Number(args.patch ?? 8),
        batch: Number(args.batch ?? 2), numClasses: 10, attentionName: a,
        ...(typeof args.optimizer === 'string' ? {optimizer: args.optimizer as 'adam' | 'adamw-fused'} : {}),
      };
      console.log(`profiling ${JSON.stringify(o)} fused=${f} ...`);
      const p = await profileTrainStep(o, f);
      for (const ph of p.phases) {
        console.log(`  ${ph.phase}: ${ph.dispatches} dispatches (${ph.kernelCalls} kernel calls), GPU ${ph.kernelMs?.toFixed(2) ?? '-'} ms, wall ${ph.wallMs.toFixed(0)} ms`);
      }
      profiles.push(p);
    }
  }
  const meta = {date: new Date().toISOString(), adapter: started.adapter, args};
  const md = profileMarkdown(profiles, `ViT ${JSON.stringify(args)} on ${started.adapter}`);
  console.log(md);
  if (typeof args.json === 'string') writeFileSync(args.json, JSON.stringify({meta, profiles}, null, 2));
  if (typeof args.md === 'string') writeFileSync(args.md, md);
  void tfl;
  void karat;
  releaseWebGPUNode();
}

if (/(bench[\\/]webgpu_profile\.ts|webgpu-profile\.mjs)$/.test(process.argv[1] ?? '')) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
