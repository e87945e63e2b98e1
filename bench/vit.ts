/**
 * Model-level cases: one ViT training step (forward + backward + Adam update) and one
 * inference pass, softmax vs Fourier-KArAt G3B vs G3U, on whatever backend is active.
 * Used by bench/webgpu.ts (and runnable on cpu with small sizes).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

import * as karat from '../src/index';
import {BenchRecord, measure, MeasureOptions} from './common';

export interface ViTCase {
  preset: 'tiny' | 'small' | 'base';
  batch: number;
  imageSize: number;
  patchSize: number;
  numClasses: number;
  depth?: number;
}

export const ATTENTIONS: Array<{impl: string, attention: unknown}> = [
  {impl: 'softmax', attention: 'softmax'},
  {impl: 'G3B', attention: {type: 'fourier', grid: 3, rank: 12, mode: 'blockwise'}},
  {impl: 'G3U', attention: {type: 'fourier', grid: 3, rank: 12, mode: 'universal'}},
];

export async function benchViT(c: ViTCase, opts: MeasureOptions = {},
                               attentions = ATTENTIONS): Promise<BenchRecord[]> {
  const backend = tf.getBackend();
  const records: BenchRecord[] = [];
  const N = (c.imageSize / c.patchSize) ** 2 + 1;
  for (const {impl, attention} of attentions) {
    const model = karat.models.vit({
      preset: c.preset, ...(c.depth != null ? {depth: c.depth} : {}), imageSize: c.imageSize,
      patchSize: c.patchSize, channels: 3, numClasses: c.numClasses, attention: attention as never,
    });
    const heads = karat.models.VIT_PRESETS[c.preset].heads;
    const x = tf.randomNormal([c.batch, c.imageSize, c.imageSize, 3]);
    const labels = tf.oneHot(tf.randomUniform([c.batch], 0, c.numClasses, 'int32') as tf.Tensor1D, c.numClasses);
    const opt = tf.train.adam(1e-4);
    const vars = model.trainableWeights.map((w) => (w as unknown as {val: tf.Variable}).val);
    const step = () => {
      const {value, grads} = tf.variableGrads(() => tf.mean(tfl.metrics.categoricalCrossentropy(
          labels, model.apply(x, {training: true}) as tf.Tensor)) as tf.Scalar, vars);
      opt.applyGradients(Object.entries(grads).map(([name, tensor]) => ({name, tensor})));
      return value;
    };
    const infer = () => model.predict(x) as tf.Tensor;
    const common = {backend, case: `vit-${c.preset}${c.depth != null ? `-d${c.depth}` : ''} ${c.imageSize}/${c.patchSize} b${c.batch}`,
                    impl, B: c.batch, h: heads, N, r: impl === 'softmax' ? 0 : 12, G: impl === 'softmax' ? 0 : 3,
                    params: model.countParams()};
    const t = await measure(step, opts);
    records.push({...common, pass: 'train-step', ms_median: t.ms_median, peak_bytes: t.peak_bytes});
    const i = await measure(infer, opts);
    records.push({...common, pass: 'inference', ms_median: i.ms_median, peak_bytes: i.peak_bytes});
    tf.dispose([x, labels]);
    opt.dispose();
    model.dispose();
  }
  return records;
}

/** KArAt / softmax ratios per pass (lower = KArAt cheaper). */
export function vitRatios(records: BenchRecord[]) {
  const out: Array<Record<string, string | number>> = [];
  for (const r of records.filter((x) => x.impl !== 'softmax')) {
    const s = records.find((x) => x.impl === 'softmax' && x.case === r.case && x.pass === r.pass);
    if (s == null) continue;
    out.push({case: r.case, impl: r.impl, pass: r.pass, time_ratio: r.ms_median / s.ms_median,
              memory_ratio: r.peak_bytes / Math.max(1, s.peak_bytes)});
  }
  return out;
}
