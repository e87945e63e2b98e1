/**
 * Memory of one ViT training step (fwd + bwd + AdamW) on WebGPU, per variant, at
 * several batch sizes, so the per-image cost and the fixed cost can be fitted and the full-size
 * figure (ViT-Tiny, batch 32) extrapolated where the full step is too slow to run (SwiftShader):
 *
 *   npx tsx bench/webgpu_memory.ts [--attention softmax,G3B] [--batches 1,2] [--depth 12]
 *       [--image 224 --patch 16] [--variants stock,fused,fused+lean] [--target-batch 32] [--json FILE]
 *
 * Per case (after one warm-up step): GPU bytes resident before the step (parameters, optimizer
 * state, inputs), the peak of GPU buffers in use during the step above that (tfjs-backend-
 * webgpu's buffer manager: distinct buffers, what the device holds), and tf.profile's
 * peakBytes for comparison (tfjs counts every tensor object, so aliases such as reshapes and
 * the clones saved for backward are counted again). Byte counts do not depend on the adapter:
 * SwiftShader and a GPU allocate the same buffers.
 */
import {writeFileSync} from 'node:fs';

import * as tf from '@tensorflow/tfjs-core';

import '../src/index';
import {KARAT_FUSED_LAYERS_FLAG} from '../core/flags';
import {parseFlags} from '../src/cli/flags';
import {makeTrainStep} from './vit_fused';
import {gpuBytesInUse, gpuPeakBytes} from './webgpu';
import {startWebGPUBench} from './webgpu_start';

const VARIANTS: Record<string, {fused: boolean, gradients: 'tfjs' | 'lean'}> = {
  'stock': {fused: false, gradients: 'tfjs'},
  'fused': {fused: true, gradients: 'tfjs'},
  'fused+lean': {fused: true, gradients: 'lean'},
};

interface MemoryRecord {
  attention: string; variant: string; batch: number; depth: number; image: number; patch: number;
  resident_bytes: number; step_peak_bytes: number; total_peak_bytes: number; profile_peak_bytes: number; step_ms: number;
}

const MiB = (b: number) => (b / 2 ** 20).toFixed(1);

async function main() {
  const args = parseFlags(process.argv.slice(2), new Set<string>()).flags;
  const meta = await startWebGPUBench();
  if (meta == null) return;
  const attentions = String(args.attention ?? 'softmax,G3B').split(',');
  const batches = String(args.batches ?? '1,2').split(',').map(Number);
  const variants = String(args.variants ?? 'stock,fused,fused+lean').split(',');
  const depth = Number(args.depth ?? 12), image = Number(args.image ?? 224), patch = Number(args.patch ?? 16);
  const target = Number(args.targetBatch ?? 32);
  for (const v of variants) if (VARIANTS[v] == null) throw new Error(`--variants: unknown variant '${v}'`);
  const records: MemoryRecord[] = [];
  const fits: Array<Record<string, unknown>> = [];
  const write = () => {
    if (typeof args.json === 'string') writeFileSync(args.json, JSON.stringify({meta: {...meta, args}, records, fits}, null, 2));
  };
  for (const attention of attentions) {
    for (const variant of variants) {
      const {fused, gradients} = VARIANTS[variant];
      for (const batch of batches) {
        tf.env().set(KARAT_FUSED_LAYERS_FLAG, fused);
        const s = makeTrainStep({preset: 'tiny', depth, imageSize: image, patchSize: patch, batch, numClasses: 1000,
                                 attentionName: attention, gradients});
        try {
          tf.dispose(s.step());  // warm-up: optimizer state, shader compilation
          const resident = gpuBytesInUse() ?? NaN;
          const t0 = performance.now();
          const peak = await gpuPeakBytes(() => s.step()) ?? NaN;
          const ms = performance.now() - t0;
          const before = tf.memory().numBytes;
          const prof = await tf.profile(() => tf.dispose(s.step()));
          const r: MemoryRecord = {attention, variant, batch, depth, image, patch, resident_bytes: resident,
                                   step_peak_bytes: peak, total_peak_bytes: resident + peak, profile_peak_bytes: prof.peakBytes - before, step_ms: ms};
          records.push(r);
          console.log(`${attention} ${variant} b${batch}: total ${MiB(resident + peak)} MiB = resident ${MiB(resident)} + step peak ${MiB(peak)} ` +
                      `(tf.profile +${MiB(r.profile_peak_bytes)} MiB), ${(ms / 1000).toFixed(1)} s`);
        } finally {
          s.dispose();
          tf.env().set(KARAT_FUSED_LAYERS_FLAG, true);
        }
        write();
      }
      const rs = records.filter((r) => r.attention === attention && r.variant === variant);
      if (rs.length >= 2) {
        const [a, b] = [rs[0], rs[rs.length - 1]];
        const perImage = (b.step_peak_bytes - a.step_peak_bytes) / (b.batch - a.batch);
        const fixed = a.step_peak_bytes - perImage * a.batch;
        // Resident at the target batch: the largest measured case plus the extra input images and
        // one-hot labels (exact), as parameters and optimizer state do not grow with the batch.
        const inputPerImage = (image * image * 3 + 1000) * 4;
        const resident = b.resident_bytes + (target - b.batch) * inputPerImage;
        const total = resident + fixed + perImage * target;
        fits.push({attention, variant, per_image_bytes: perImage, fixed_bytes: fixed, resident_bytes: resident,
                   [`extrapolated_total_b${target}_GiB`]: total / 2 ** 30});
        console.log(`  fit: step peak ${MiB(perImage)} MiB per image + ${MiB(fixed)} MiB; resident at batch ${target} ` +
                    `${MiB(resident)} MiB => batch ${target}: ${(total / 2 ** 30).toFixed(2)} GiB (extrapolated)`);
        write();
      }
    }
  }
  console.table(fits);
}

main().then(() => process.exit(process.exitCode ?? 0), (e) => {
  console.error(e);
  process.exit(1);
});
