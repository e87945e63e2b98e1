/** Loss and classification metrics: soft-target cross-entropy, top-k, confusion matrix. */
import * as tf from '@tensorflow/tfjs-core';

/** Mean over the batch of -Σ_k y_k log softmax(logits)_k (works with soft targets). */
export function softCrossEntropy(logits: tf.Tensor2D, targets: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => tf.neg(tf.mean(tf.sum(tf.mul(targets, tf.logSoftmax(logits)), -1))) as tf.Scalar);
}

/** True when row `i` of `logits` ([n, K]) holds a NaN or an infinity. */
export function rowNonFinite(logits: Float32Array, i: number, K: number): boolean {
  for (let j = 0; j < K; j++) if (!Number.isFinite(logits[i * K + j])) return true;
  return false;
}

/**
 * Number of rows of `logits` whose true label is among the k largest scores. A row with a
 * non-finite logit (NaN, ±Infinity) is a wrong answer, whatever its comparisons say.
 */
export function topKCorrect(logits: Float32Array, labels: Int32Array, K: number, k: number): number {
  let correct = 0;
  const n = labels.length;
  for (let i = 0; i < n; i++) {
    if (rowNonFinite(logits, i, K)) continue;
    const target = logits[i * K + labels[i]];
    let higher = 0;
    for (let j = 0; j < K; j++) {
      const v = logits[i * K + j];
      // ties are broken by index, as an argsort would
      if (v > target || (v === target && j < labels[i])) higher++;
    }
    if (higher < k) correct++;
  }
  return correct;
}

/**
 * Row = true class, column = predicted class. A row of `logits` with a non-finite value has
 * no predicted class: it is counted in `nonFinite[trueClass]` (when given) instead of a cell.
 */
export function confusionMatrix(logits: Float32Array, labels: Int32Array, K: number, into?: number[][],
                                nonFinite?: number[]): number[][] {
  const m = into ?? Array.from({length: K}, () => new Array<number>(K).fill(0));
  for (let i = 0; i < labels.length; i++) {
    if (rowNonFinite(logits, i, K)) {
      if (nonFinite) nonFinite[labels[i]]++;
      continue;
    }
    let best = 0;
    for (let j = 1; j < K; j++) if (logits[i * K + j] > logits[i * K + best]) best = j;
    m[labels[i]][best]++;
  }
  return m;
}

/**
 * The matrix as text, with per-class accuracy. `nonFinite` (per true class) adds a column of
 * examples without a prediction (non-finite logits), which count as wrong.
 */
export function formatConfusion(m: number[][], classNames: string[], nonFinite?: number[]): string {
  const K = m.length;
  const bad = nonFinite != null && nonFinite.some((v) => v > 0) ? nonFinite : null;
  const short = classNames.map((c) => c.slice(0, 6));
  const w = Math.max(5, ...short.map((c) => c.length + 1), ...m.flat().map((v) => String(v).length + 1));
  const lw = Math.max(...short.map((s) => s.length)) + 1;
  const lines = [' '.repeat(lw) + short.map((s) => s.padStart(w)).join('') + (bad ? 'NaN/Inf'.padStart(w + 3) : '') +
      '   (rows: true, columns: predicted)'];
  for (let i = 0; i < K; i++) {
    const total = m[i].reduce((a, b) => a + b, 0) + (bad ? bad[i] : 0);
    const acc = total ? (100 * m[i][i] / total).toFixed(1) : '-';
    lines.push(short[i].padEnd(lw) + m[i].map((v) => String(v).padStart(w)).join('') +
        (bad ? String(bad[i]).padStart(w + 3) : '') + `   ${acc}%`);
  }
  return lines.join('\n');
}
