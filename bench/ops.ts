/**
 * Op-level cases shared by every backend's benchmark: fused kernel vs composite path,
 * forward and forward+backward, for given (B, h, N, r, G).
 */
import * as tf from '@tensorflow/tfjs-core';

import * as karat from '../src/index';
import {BenchRecord, measure, MeasureOptions} from './common';

export interface OpCase {B: number; h: number; N: number; r: number; G: number}

export async function benchOpCase(c: OpCase, opts: MeasureOptions = {}): Promise<BenchRecord[]> {
  const backend = tf.getBackend();
  const scores = tf.randomNormal([c.B, c.h, c.N, c.N]) as tf.Tensor4D;
  const coeffs = tf.mul(tf.randomNormal([c.h, 2, c.r, c.N, c.G]), 1 / Math.sqrt(c.N * c.G)) as tf.Tensor5D;
  const w = tf.randomNormal([c.B, c.h, c.N, c.r]) as tf.Tensor4D;
  const fwd = () => karat.fourierKArAtHidden(scores, coeffs);
  const fwdBwd = () => tf.grads((s: tf.Tensor, k: tf.Tensor) =>
      tf.sum(tf.mul(karat.fourierKArAtHidden(s as tf.Tensor4D, k as tf.Tensor5D), w)))([scores, coeffs]);
  const records: BenchRecord[] = [];
  const caseName = `op B${c.B} h${c.h} N${c.N} r${c.r} G${c.G}`;
  for (const impl of ['fused', 'composite'] as const) {
    if (impl === 'fused' && !karat.hasFusedKernel(karat.FourierKArAt)) continue;
    tf.env().set(karat.KARAT_FUSED_FLAG, impl === 'fused');
    try {
      for (const [pass, fn] of [['fwd', fwd], ['fwd+bwd', fwdBwd]] as const) {
        const m = await measure(fn, opts);
        records.push({backend, case: caseName, impl, ...c, pass, ms_median: m.ms_median, peak_bytes: m.peak_bytes});
      }
    } finally {
      tf.env().set(karat.KARAT_FUSED_FLAG, true);
    }
  }
  tf.dispose([scores, coeffs, w]);
  return records;
}

/** Composite/fused ratios (time and memory) per case and pass. */
export function opRatios(records: BenchRecord[]) {
  const out: Array<{backend: string, case: string, pass: string, speedup: number, memory_ratio: number}> = [];
  for (const f of records.filter((r) => r.impl === 'fused')) {
    const c = records.find((r) => r.impl === 'composite' && r.case === f.case && r.pass === f.pass && r.backend === f.backend);
    if (c == null) continue;
    out.push({backend: f.backend, case: f.case, pass: f.pass, speedup: c.ms_median / f.ms_median,
              memory_ratio: c.peak_bytes / Math.max(1, f.peak_bytes)});
  }
  return out;
}
