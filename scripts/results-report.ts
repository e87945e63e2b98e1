/**
 * Collects the runs of scripts/results-cifar10.sh into docs/results/cifar10-table.md and an
 * overlaid SVG of their curves (docs/results/cifar10-curves.svg).
 *   npx tsx scripts/results-report.ts [runs/results]
 */
import {existsSync, readFileSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';

import {plotRuns} from '../src/training/plot';
import type {EpochRecord} from '../src/training/trainer';

const dir = process.argv[2] ?? 'runs/results';
const names = ['softmax', 'G3B', 'G3U'];
const runs: Array<{label: string, history: EpochRecord[], summary: Record<string, unknown>}> = [];
for (const n of names) {
  const p = join(dir, n, 'summary.json');
  if (!existsSync(p)) {
    console.error(`missing ${p}`);
    continue;
  }
  const s = JSON.parse(readFileSync(p, 'utf8'));
  runs.push({label: n, history: s.history, summary: s});
}
const rows = runs.map((r) => {
  const last = r.history[r.history.length - 1];
  const best = Math.max(...r.history.map((h) => h.testTop1));
  const ips = r.history.reduce((a, h) => a + h.imagesPerSec, 0) / r.history.length;
  return `| ${r.label} | ${(r.summary.params as number).toLocaleString('en-US')} | ${(100 * last.testTop1).toFixed(1)}% | ${(100 * best).toFixed(1)}% | ` +
      `${(100 * last.testTop5).toFixed(1)}% | ${last.testLoss.toFixed(3)} | ${last.trainLoss.toFixed(3)} | ${ips.toFixed(2)} | ${((r.summary.seconds as number) / 60).toFixed(1)} |`;
});
const table = ['| attention | params | test top-1 (last) | test top-1 (best) | test top-5 | test loss | train loss | train img/s | wall min |',
  '|---|---|---|---|---|---|---|---|---|', ...rows].join('\n');
writeFileSync('docs/results/cifar10-table.md', table + '\n');
writeFileSync('docs/results/cifar10-curves.svg', plotRuns(runs, 'CIFAR-10, ViT dim 48 depth 3, patch 4: softmax vs Fourier-KArAt'));
for (const r of runs) {
  console.log(r.label, r.history.map((h) => `e${h.epoch}: top1 ${(100 * h.testTop1).toFixed(1)} loss ${h.testLoss.toFixed(3)}`).join(', '));
}
console.log(table);
