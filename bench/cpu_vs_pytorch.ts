/**
 * `karat train` (Node, default backend) against the PyTorch twin (python/train.py) on the
 * same CPU, the same model and recipe: softmax and Fourier-KArAt G3B, on the quick preset and
 * on the CIFAR-10 study's model (docs/results/study-cifar10/config.json, trained here on the
 * embedded cifar10-subset for a few steps). The runs alternate (karat, torch, karat, torch, ...)
 * so that load from elsewhere hits both sides alike; each side's images/s is that of its last
 * epoch (the first one pays start-up costs), best of the rounds, and also images per CPU-second
 * (user + system of the whole process, what an idle machine would turn into wall time). PyTorch
 * runs once per thread count (--threads) in each round; its number is the best of them.
 *
 *   npx tsx bench/cpu_vs_pytorch.ts [--rounds 2] [--models quick,study] [--arms softmax,fourier]
 *       [--threads 1,2] [--python /usr/bin/python3] [--backend auto] [--json runs/bench/cpu_vs_pytorch.json]
 */
import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {dirname, join} from 'node:path';

import {parseFlags} from '../src/cli/flags';
import {runOne, Side} from './train_runs';

const args = parseFlags(process.argv.slice(2), new Set<string>()).flags;
const rounds = Number(args.rounds ?? 2);
const models = String(args.models ?? 'quick,study').split(',');
const arms = String(args.arms ?? 'softmax,fourier').split(',');
/** PyTorch's thread counts; the ratio is against the faster of them (what a user would pick). */
const threadCounts = String(args.threads ?? '1,2').split(',');
const python = String(args.python ?? '/usr/bin/python3');

const results: Array<Record<string, unknown>> = [];
const tmp = mkdtempSync(join(tmpdir(), 'karat-vs-torch-'));
try {
  console.log(`rounds ${rounds}, torch threads ${threadCounts.join('/')} (best); images/s of the last epoch, best of the rounds; img/CPU-s = images per CPU-second`);
  console.log('model  arm      karat img/s  torch img/s  ratio   karat img/CPU-s  torch img/CPU-s  ratio   top-1 karat/torch');
  for (const model of models) {
    for (const arm of arms) {
      const best: Record<string, Side> = {};
      for (let i = 0; i < rounds; i++) {
        const torch = threadCounts.map((n) => `torch${n}`);
        for (const side of i % 2 === 0 ? ['karat', ...torch] : [...torch, 'karat']) {
          const out = join(tmp, `${model}-${arm}-${i}`);
          const r = runOne(side, model, arm, out, {backend: String(args.backend ?? 'auto'), python});
          const key = side === 'karat' ? 'karat' : 'torch';
          const b = best[key];
          best[key] = b == null ? r : {imagesPerSec: Math.max(b.imagesPerSec, r.imagesPerSec), imagesPerCpuSec: Math.max(b.imagesPerCpuSec, r.imagesPerCpuSec), testTop1: r.testTop1};
          console.error(`  ${model} ${arm} round ${i + 1} ${side}: ${r.imagesPerSec.toFixed(0)} img/s, ${r.imagesPerCpuSec.toFixed(0)} img/CPU-s, top-1 ${(100 * r.testTop1).toFixed(1)}%`);
        }
      }
      const k = best.karat, t = best.torch;
      const rec = {model, arm, karat: k, torch: t, ratio: k.imagesPerSec / t.imagesPerSec, cpuRatio: k.imagesPerCpuSec / t.imagesPerCpuSec};
      results.push(rec);
      console.log(`${model.padEnd(7)}${arm.padEnd(9)}${k.imagesPerSec.toFixed(0).padStart(11)}${t.imagesPerSec.toFixed(0).padStart(13)}` +
          `${rec.ratio.toFixed(2).padStart(7)}x${k.imagesPerCpuSec.toFixed(0).padStart(17)}${t.imagesPerCpuSec.toFixed(0).padStart(17)}` +
          `${rec.cpuRatio.toFixed(2).padStart(7)}x   ${(100 * k.testTop1).toFixed(1)}% / ${(100 * t.testTop1).toFixed(1)}%`);
    }
  }
  for (const model of models) {
    const s = results.find((r) => r.model === model && r.arm === 'softmax'), f = results.find((r) => r.model === model && r.arm === 'fourier');
    if (s && f) {
      const ks = (s.karat as Side).imagesPerSec, kf = (f.karat as Side).imagesPerSec;
      console.log(`${model}: karat's Fourier-KArAt G3B / softmax step cost ${(ks / kf).toFixed(2)}x`);
    }
  }
  if (args.json) {
    mkdirSync(dirname(String(args.json)), {recursive: true});
    writeFileSync(String(args.json), JSON.stringify({rounds, threads: threadCounts, results}, null, 2) + '\n');
  }
} finally {
  rmSync(tmp, {recursive: true, force: true});
}
