/**
 * The multi-seed CIFAR-10 study: every arm (softmax, Fourier-KArAt G3B, G3U, optionally G1B)
 * x every seed, with one shared model and recipe (a `karat train` config file), so that only
 * the attention differs. Resumable: a finished run (summary.json present) is skipped, an
 * interrupted one resumes from its last.ckpt, and a run folder without a checkpoint starts
 * over. Runs go in parallel, `--jobs` at a time (one per core).
 *
 *   npx tsx scripts/study/run.ts --config docs/results/study-cifar10/config.json \
 *       --data-dir /path/to/cifar-10-binary.tar.gz [--arms softmax,G3B,G3U] [--seeds 1,2,3] [--jobs 2]
 *   npx tsx scripts/study/run.ts --smoke --out /tmp/study     # a few steps, tiny model, 2 seeds
 *
 * Then: npx tsx scripts/study/report.ts --runs <out> ...
 */
import {spawn} from 'node:child_process';
import {existsSync, mkdirSync, openSync, readdirSync, rmSync} from 'node:fs';
import {dirname, join, resolve} from 'node:path';
import {fileURLToPath} from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Attention flags of each arm; everything else comes from the shared config file. */
export const ARMS: Record<string, string[]> = {
  softmax: ['--attention', 'softmax'],
  G3B: ['--attention', 'fourier', '--grid', '3', '--rank', '12', '--mode', 'blockwise'],
  G3U: ['--attention', 'fourier', '--grid', '3', '--rank', '12', '--mode', 'universal'],
  G1B: ['--attention', 'fourier', '--grid', '1', '--rank', '12', '--mode', 'blockwise'],
};

/** The smoke study (npm test): embedded subset, tiny model, a few steps, 2 arms x 2 seeds. */
export const SMOKE_FLAGS = [
  '--dataset', 'cifar10-subset', '--train-limit', '240', '--test-limit', '100', '--val-split', '40',
  '--dim', '16', '--depth', '1', '--heads', '2', '--mlp-ratio', '1', '--patch-size', '8', '--rank', '4',
  '--epochs', '2', '--steps-per-epoch', '3', '--batch-size', '20', '--eval-batch-size', '100',
  '--mixup', '0', '--cutmix', '0', '--backend', 'cpu', '--progress', 'none',
];

export interface StudyOptions {
  config: string | null;
  out: string;
  arms: string[];
  seeds: number[];
  jobs: number;
  dataDir: string | null;
  extra: string[];
}

export type RunState = 'done' | 'resume' | 'start';

export function runName(arm: string, seed: number): string {
  return `${arm}-s${seed}`;
}

/** What the runner will do with one run folder. */
export function runState(dir: string): RunState {
  if (existsSync(join(dir, 'summary.json'))) return 'done';
  if (existsSync(join(dir, 'last.ckpt'))) return 'resume';
  return 'start';
}

function trainArgs(o: StudyOptions, arm: string, seed: number, state: RunState): string[] {
  const args = [join(ROOT, 'bin', 'karat.cjs'), 'train'];
  if (o.config) args.push('--config', o.config);
  if (o.dataDir) args.push('--data-dir', o.dataDir);
  args.push(...o.extra, ...ARMS[arm], '--seed', String(seed), '--out-dir', o.out, '--run-name', runName(arm, seed));
  if (state === 'resume') args.push('--resume', 'auto');
  return args;
}

function runOne(o: StudyOptions, arm: string, seed: number): Promise<{name: string, state: RunState, code: number}> {
  const name = runName(arm, seed);
  const dir = join(o.out, name);
  const state = runState(dir);
  if (state === 'done') return Promise.resolve({name, state, code: 0});
  // a folder without a checkpoint holds no finished epoch: start it over
  if (state === 'start' && existsSync(dir)) rmSync(dir, {recursive: true, force: true});
  mkdirSync(o.out, {recursive: true});
  const log = openSync(join(o.out, `${name}.log`), 'a');
  return new Promise((res) => {
    const child = spawn(process.execPath, trainArgs(o, arm, seed, state), {stdio: ['ignore', log, log], cwd: ROOT});
    child.on('exit', (code, signal) => res({name, state, code: code ?? (signal ? 128 : 1)}));
  });
}

/** Runs every (arm, seed) not yet finished, `jobs` at a time; resolves to the per-run outcomes. */
export async function runStudy(o: StudyOptions, log: (s: string) => void = console.log):
    Promise<Array<{name: string, state: RunState, code: number}>> {
  for (const a of o.arms) if (ARMS[a] == null) throw new Error(`unknown arm '${a}'; expected ${Object.keys(ARMS).join(', ')}`);
  const queue: Array<[string, number]> = [];
  // seed-major order, so that an interrupted study has whole seeds of every arm first
  for (const s of o.seeds) for (const a of o.arms) queue.push([a, s]);
  const results: Array<{name: string, state: RunState, code: number}> = [];
  const worker = async () => {
    for (let item = queue.shift(); item; item = queue.shift()) {
      const r = await runOne(o, item[0], item[1]);
      log(`${r.name}: ${r.state === 'done' ? 'finished earlier, skipped' : `${r.state === 'resume' ? 'resumed' : 'ran'}, exit ${r.code}`}`);
      results.push(r);
    }
  };
  await Promise.all(Array.from({length: Math.max(1, o.jobs)}, worker));
  return results;
}

export function parseStudyArgs(argv: string[]): StudyOptions {
  const o: StudyOptions = {config: null, out: 'runs/study', arms: ['softmax', 'G3B', 'G3U'], seeds: [1, 2, 3], jobs: 2, dataDir: null, extra: []};
  let smoke = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v == null) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--smoke') smoke = true;
    else if (a === '--config') o.config = val();
    else if (a === '--out') o.out = val();
    else if (a === '--arms') o.arms = val().split(',');
    else if (a === '--seeds') o.seeds = val().split(',').map(Number);
    else if (a === '--jobs') o.jobs = Number(val());
    else if (a === '--data-dir') o.dataDir = val();
    else throw new Error(`unknown argument '${a}'`);
  }
  if (o.seeds.some((s) => !Number.isInteger(s) || s < 0)) throw new Error(`--seeds must be non-negative integers`);
  if (!Number.isInteger(o.jobs) || o.jobs < 1) throw new Error(`--jobs must be an integer >= 1`);
  if (smoke) {
    o.extra = SMOKE_FLAGS;
    if (!argv.includes('--arms')) o.arms = ['softmax', 'G3B'];
    if (!argv.includes('--seeds')) o.seeds = [1, 2];
  }
  return o;
}

if (process.argv[1] != null && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  (async () => {
    const o = parseStudyArgs(process.argv.slice(2));
    const r = await runStudy(o);
    const failed = r.filter((x) => x.code !== 0);
    const present = existsSync(o.out) ? readdirSync(o.out).filter((d) => runState(join(o.out, d)) === 'done').length : 0;
    console.log(`${present} finished runs in ${o.out}; ${failed.length} failed this time${failed.length ? ` (${failed.map((f) => f.name).join(', ')}; see their .log)` : ''}`);
    process.exit(failed.length ? 1 : 0);
  })().catch((e) => {
    console.error(`study: ${(e as Error).message}`);
    process.exit(2);
  });
}
