/**
 * One training run of `karat train` or of the PyTorch twin (python/train.py) with the same
 * flags, and its throughput: images/s of the last epoch (the first one pays start-up costs) and
 * images per CPU-second of that epoch. Shared by bench/cpu_vs_pytorch.ts and
 * bench/train_backends.ts.
 */
import {spawnSync} from 'node:child_process';
import {readFileSync} from 'node:fs';
import {join} from 'node:path';

import {STUDY_MODEL} from './cpu_models';

const root = join(__dirname, '..');

/** Overrides of the run's length (the benchmark's smoke runs shorten it). */
export interface RunLength {stepsPerEpoch?: number, testLimit?: number}

/** Flags of one run, the same for both sides: the quick preset or the study's model, `arm` attention. */
export function runFlags(model: string, arm: string, length: RunLength = {}): string[] {
  const f: Record<string, unknown> = model === 'study' ?
    {...STUDY_MODEL, epochs: 2, stepsPerEpoch: 30, testLimit: 500, evalBatchSize: 250} : {preset: 'quick'};
  if (length.stepsPerEpoch != null) f.stepsPerEpoch = length.stepsPerEpoch;
  if (length.testLimit != null) f.testLimit = length.testLimit;
  f.attention = arm;
  f.progress = 'none';
  const kebab = (k: string) => k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
  return Object.entries(f).flatMap(([k, v]) => typeof v === 'boolean' ? [v ? `--${kebab(k)}` : `--no-${kebab(k)}`] : [`--${kebab(k)}`, String(v)]);
}

export interface Side {imagesPerSec: number, imagesPerCpuSec: number, testTop1: number}

export interface RunOptions extends RunLength {
  /** karat's --backend (default auto). */
  backend?: string;
  /** Extra environment of the child (e.g. KARAT_TF_KERNELS=0). */
  env?: Record<string, string>;
  /** The interpreter of the twin (default /usr/bin/python3). */
  python?: string;
}

/**
 * Trains once, in `out`: side 'karat' (bin/karat.cjs) or 'torchN' (the twin with N threads).
 * Throws with the end of the child's output when it fails.
 */
export function runOne(side: string, model: string, arm: string, out: string, o: RunOptions = {}): Side {
  const common = [...runFlags(model, arm, o), '--out-dir', out, '--run-name', side];
  const threads = side.startsWith('torch') ? side.slice(5) : '';
  const cmd = side === 'karat' ?
    [process.execPath, [join(root, 'bin', 'karat.cjs'), 'train', ...common, '--backend', o.backend ?? 'auto']] as const :
    [o.python ?? '/usr/bin/python3', [join(root, 'python', 'train.py'), ...common, '--threads', threads]] as const;
  const r = spawnSync(cmd[0], cmd[1], {cwd: root, encoding: 'utf8', maxBuffer: 1 << 26, env: {...process.env, ...o.env}});
  if (r.status !== 0) throw new Error(`${side} ${model} ${arm} failed (${r.status}): ${(r.stderr || r.stdout).slice(-2000)}`);
  const s = JSON.parse(readFileSync(join(out, side, 'summary.json'), 'utf8'));
  const last = s.history[s.history.length - 1];
  const images = last.imagesPerSec * last.epochSeconds;
  return {imagesPerSec: last.imagesPerSec, imagesPerCpuSec: images / last.cpuSeconds, testTop1: last.testTop1};
}
