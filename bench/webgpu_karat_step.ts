/**
 * KArAt vs softmax on webgpu, per training step of a ViT-Tiny-width model (dim 192, heads 3,
 * MLP 768): GPU dispatches and GPU buffer bytes, at depth 1 and 2 so that the per-block cost is
 * the difference:
 *
 *   npx tsx bench/webgpu_karat_step.ts [--attention softmax,G3B] [--depths 1,2] [--image 32]
 *       [--patch 4] [--batch 1] [--gradients tfjs|lean] [--op BxHxN,...] [--json FILE] [--md FILE]
 *
 * Per (attention, depth), after one warm-up step (optimizer state, shader compilation) whose
 * loss is read back (so the command queue is submitted and pending disposals are released):
 * - dispatches of one training step (fwd + bwd through tf.variableGrads, then the fused AdamW
 *   update), counted from tf.profile's kernel list (webgpu_profile.ts: programsOf);
 * - resident bytes: GPU buffers in use before the step (parameters, AdamW moments, inputs);
 * - step peak bytes: the peak of GPU buffers in use during the step above the resident bytes
 *   (tfjs-backend-webgpu's buffer manager: what the device holds).
 * Neither count depends on the adapter, so SwiftShader measures them exactly; times are not
 * reported (meaningless on SwiftShader). Flag KARAT_WEBGPU_FUSED_LAYERS on (the default).
 * `--op 8x3x197,...` adds the attention op alone at those sizes (measureOp); `--depths none`
 * skips the model cases.
 */
import {writeFileSync} from 'node:fs';

import * as tf from '@tensorflow/tfjs-core';

import * as karat from '../src/index';
import {KARAT_FUSED_LAYERS_FLAG} from '../core/flags';
import {releaseWebGPUNode} from '../test/support/webgpu_node';
import {parseFlags} from '../src/cli/flags';
import {makeTrainStep} from './vit_fused';
import {gpuBytesInUse, gpuPeakBytes} from './webgpu';
import {profilePhase} from './webgpu_profile';
import {startWebGPUBench} from './webgpu_start';

interface StepRecord {attention: string, depth: number, dispatches: number, kernelCalls: number,
  resident_bytes: number, step_peak_bytes: number, total_bytes: number}

const MiB = (b: number) => (b / 2 ** 20).toFixed(2);

async function main() {
  const args = parseFlags(process.argv.slice(2), new Set<string>()).flags;
  const meta = await startWebGPUBench();
  if (meta == null) return;
  tf.env().set(KARAT_FUSED_LAYERS_FLAG, true);
  const attentions = String(args.attention ?? 'softmax,G3B').split(',');
  const depths = args.depths === 'none' ? [] : String(args.depths ?? '1,2').split(',').map(Number);
  const image = Number(args.image ?? 32), patch = Number(args.patch ?? 4), batch = Number(args.batch ?? 1);
  const gradients = String(args.gradients ?? 'tfjs');
  if (gradients !== 'tfjs' && gradients !== 'lean') throw new Error(`--gradients: 'tfjs' or 'lean', got '${gradients}'`);
  const records: StepRecord[] = [];
  for (const attention of attentions) {
    for (const depth of depths) {
      const s = makeTrainStep({preset: 'tiny', depth, imageSize: image, patchSize: patch, batch, numClasses: 10,
                               attentionName: attention, gradients});
      try {
        // Warm-up; reading the loss submits the queue, so buffers pending disposal are released
        // before the resident bytes are read.
        const warm = s.step();
        await warm.data();
        warm.dispose();
        const resident = gpuBytesInUse() ?? NaN;
        const peak = await gpuPeakBytes(() => s.step()) ?? NaN;
        const prof = await profilePhase('step', () => s.step());
        const r: StepRecord = {attention, depth, dispatches: prof.dispatches, kernelCalls: prof.kernelCalls,
                               resident_bytes: resident, step_peak_bytes: peak, total_bytes: resident + peak};
        records.push(r);
        console.log(`${attention} depth ${depth}: ${r.dispatches} dispatches (${r.kernelCalls} kernel calls), ` +
                    `resident ${MiB(resident)} MiB + step peak ${MiB(peak)} MiB = ${MiB(r.total_bytes)} MiB`);
      } finally {
        s.dispose();
      }
    }
  }
  let md = depths.length > 0 ? markdown(records, attentions, depths) : '';
  const ops: OpRecord[] = [];
  if (typeof args.op === 'string') {
    for (const spec of args.op.split(',')) {
      const [B, h, N] = spec.split('x').map(Number);
      for (const impl of ['softmax', 'flash', 'materialised'] as const) {
        const r = await measureOp(impl, B, h, N);
        ops.push(r);
        console.log(`op ${impl} B${B} h${h} N${N}: ${r.dispatches} dispatches, peak ${MiB(r.peak_bytes)} MiB`);
      }
    }
    md += '\n\n' + opMarkdown(ops);
  }
  console.log(md);
  if (typeof args.json === 'string') writeFileSync(args.json, JSON.stringify({meta: {...meta, args}, records, ops}, null, 2));
  if (typeof args.md === 'string') writeFileSync(args.md, md);
  releaseWebGPUNode();
}

interface OpRecord {impl: string, B: number, h: number, N: number, dispatches: number, peak_bytes: number}

/**
 * Attention alone, fwd + bwd (tf.grads of Σ w ∘ attention w.r.t. every input), head dim 64, r = 12,
 * G = 3: softmaxAttention; fourierAttention (flash path); the materialising fused op (scores by
 * matmul, FourierKArAt / FourierKArAtGrad, then ĥ (projᵀ v)). Peak GPU bytes above the inputs.
 */
async function measureOp(impl: 'softmax' | 'flash' | 'materialised', B: number, h: number, N: number): Promise<OpRecord> {
  const d = 64, r = 12, G = 3;
  const q = tf.randomNormal([B, h, N, d], 0, 0.35) as tf.Tensor4D;
  const k = tf.randomNormal([B, h, N, d], 0, 0.35) as tf.Tensor4D;
  const v = tf.randomNormal([B, h, N, d]) as tf.Tensor4D;
  const w = tf.randomNormal([B, h, N, d]);
  const coeffs = tf.randomNormal([h, 2, r, N, G], 0, 1 / Math.sqrt(N * G)) as tf.Tensor5D;
  const proj = tf.randomNormal([h, N, r], 0, 1 / Math.sqrt(r)) as tf.Tensor3D;
  const attention = (xs: tf.Tensor[]): tf.Tensor => {
    const [qq, kk, vv] = xs as tf.Tensor4D[];
    if (impl === 'softmax') return karat.softmaxAttention(qq, kk, vv);
    const [cc, pp] = [xs[3] as tf.Tensor5D, xs[4] as tf.Tensor3D];
    if (impl === 'flash') {
      if (karat.fourierAttentionPath({B, h, N, d, r, G}) !== 'flash') throw new Error('flash path unavailable');
      return karat.fourierAttention(qq, kk, vv, cc, pp);
    }
    const hid = karat.fourierKArAtHidden(tf.matMul(qq, kk, false, true), cc);
    // tile, not broadcast: tfjs' BatchMatMul gradient does not reduce a broadcast batch axis
    return tf.matMul(hid, tf.matMul(tf.tile(tf.reshape(pp, [1, h, N, r]), [B, 1, 1, 1]) as tf.Tensor4D, vv, true, false));
  };
  const inputs = impl === 'softmax' ? [q, k, v] : [q, k, v, coeffs, proj];
  const fn = () => tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(attention(xs), w)))(inputs);
  try {
    const warm = tf.tidy(fn);
    await Promise.all(warm.map((t) => t.data()));
    tf.dispose(warm);
    const peak = await gpuPeakBytes(fn) ?? NaN;
    const prof = await profilePhase('op', fn);
    return {impl, B, h, N, dispatches: prof.dispatches, peak_bytes: peak};
  } finally {
    tf.dispose([q, k, v, w, coeffs, proj]);
  }
}

function opMarkdown(ops: OpRecord[]): string {
  const lines = ['| B, h, N | attention (fwd + bwd, d = 64, r = 12, G = 3) | dispatches | peak MiB | peak / softmax |', '|---|---|---|---|---|'];
  for (const r of ops) {
    const base = ops.find((x) => x.impl === 'softmax' && x.B === r.B && x.h === r.h && x.N === r.N)!;
    lines.push(`| ${r.B}, ${r.h}, ${r.N} | ${r.impl} | ${r.dispatches} | ${MiB(r.peak_bytes)} | ${(r.peak_bytes / base.peak_bytes).toFixed(2)} |`);
  }
  return lines.join('\n');
}

/** Per depth (and per block = last depth − first depth, when two depths): each attention, ratio to the first. */
function markdown(records: StepRecord[], attentions: string[], depths: number[]): string {
  const get = (a: string, d: number) => records.find((r) => r.attention === a && r.depth === d)!;
  const rows: Array<{what: string, rec: (a: string) => StepRecord}> = depths.map((d) => ({what: `depth ${d}`, rec: (a: string) => get(a, d)}));
  if (depths.length >= 2) {
    const [d0, d1] = [depths[0], depths[depths.length - 1]];
    const per = (a: string): StepRecord => {
      const x = get(a, d0), y = get(a, d1), n = d1 - d0;
      const f = (k: keyof StepRecord) => ((y[k] as number) - (x[k] as number)) / n;
      return {attention: a, depth: 1, dispatches: f('dispatches'), kernelCalls: f('kernelCalls'),
              resident_bytes: f('resident_bytes'), step_peak_bytes: f('step_peak_bytes'), total_bytes: f('total_bytes')};
    };
    rows.push({what: 'per block', rec: per});
  }
  const base = attentions[0];
  const ratio = (x: number, y: number) => (y === 0 ? '-' : (x / y).toFixed(3));
  const lines = [
    `| model | attention | dispatches / step | resident MiB | step peak MiB | resident + peak MiB | dispatches / ${base} | bytes / ${base} |`,
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const row of rows) {
    for (const a of attentions) {
      const r = row.rec(a), b = row.rec(base);
      lines.push(`| ${row.what} | ${a} | ${r.dispatches} | ${MiB(r.resident_bytes)} | ${MiB(r.step_peak_bytes)} | ` +
                 `${MiB(r.total_bytes)} | ${ratio(r.dispatches, b.dispatches)} | ${ratio(r.total_bytes, b.total_bytes)} |`);
    }
  }
  return lines.join('\n');
}

main().then(() => process.exit(process.exitCode ?? 0), (e) => {
  console.error(e);
  process.exit(1);
});
