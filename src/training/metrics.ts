/** Loss and classification metrics: soft-target cross-entropy, top-k, confusion matrix. */
import * as tf from '@tensorflow/tfjs-core';

/** Mean over the batch of -Σ_k y_k log softmax(logits)_k (works with soft targets). */
export function softCrossEntropy(logits: tf.Tensor2D, targets: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => tf.neg(tf.mean(tf.sum(tf.mul(targets, tf.logSoftmax(logits)), -1))) as tf.Scalar);
}

/** Number of rows of `logits` whose true label is among the k largest scores. */
export function topKCorrect(logits: Float32Array, labels: Int32Array, K: number, k: number): number {
  let correct = 0;
  const n = labels.length;
  for (let i = 0; i < n; i++) {
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

/** Row = true class, column = predicted class. */
export function confusionMatrix(logits: Float32Array, labels: Int32Array, K: number, into?: number[][]): number[][] {
  const m = into ?? Array.from({length: K}, () => new Array<number>(K).fill(0));
  for (let i = 0; i < labels.length; i++) {
    let best = 0;
    for (let j = 1; j < K; j++) if (logits[i * K + j] > logits[i * K + best]) best = j;
    m[labels[i]][best]++;
  }
  return m;
}

export function formatConfusion(m: number[][], classNames: string[]): string {
  const K = m.length;
  const short = classNames.map((c) => c.slice(0, 6));
  const w = Math.max(5, ...short.map((c) => c.length + 1), ...m.flat().map((v) => String(v).length + 1));
  const lw = Math.max(...short.map((s) => s.length)) + 1;
  const lines = [' '.repeat(lw) + short.map((s) => s.padStart(w)).join('') + '   (rows: true, columns: predicted)'];
  for (let i = 0; i < K; i++) {
    const total = m[i].reduce((a, b) => a + b, 0);
    const acc = total ? (100 * m[i][i] / total).toFixed(1) : '-';
    lines.push(short[i].padEnd(lw) + m[i].map((v) => String(v).padStart(w)).join('') + `   ${acc}%`);
  }
  return lines.join('\n');
}
