/**
 * Writes the study's report from its run folders alone: each `<arm>-s<seed>/` holds the raw
 * `log.csv` (one row per epoch) and `summary.json` that `karat train` wrote. Everything in the
 * report is computed here from those files, so it can be regenerated from the committed logs.
 *
 *   npx tsx scripts/study/report.ts --runs runs/study --collect docs/results/study-cifar10 \
 *       --out docs/results/study-cifar10/report.md
 *
 * --collect copies each finished run's log.csv and summary.json to <dir>/<run>/ and then reads
 * from there. The model-selection epoch is the one with the best validation top-1 (column
 * valTop1; earliest on ties); test accuracy is reported at that epoch and at the last epoch.
 */
import {copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, realpathSync, writeFileSync} from 'node:fs';
import {basename, dirname, join, relative, resolve, sep} from 'node:path';
import {fileURLToPath} from 'node:url';

import {linePlot, LineSeries, PALETTE} from '../../src/analysis/svg';
import {mean, pairedInterval, PairedInterval, sd} from './stats';

export type Row = Record<string, number | boolean>;

export interface RunResult {
  name: string;
  arm: string;
  seed: number;
  params: number;
  /** Training time summed over the logged epochs (columns epochSeconds and cpuSeconds: the
   * training steps, without evaluation), so a resumed run counts every epoch once. */
  seconds: number;
  cpuSeconds: number;
  rows: Row[];
  /** 1-based epoch chosen on validation top-1. */
  selectedEpoch: number;
  selectedTop1: number;
  lastTop1: number;
  /** A run whose logged test loss or accuracy is non-finite in any epoch. */
  diverged: boolean;
}

/** Columns the report reads; a log without any of them is refused. */
export const REQUIRED_COLUMNS = ['epoch', 'testLoss', 'testTop1', 'epochSeconds', 'cpuSeconds'];
/** Columns holding an accuracy: a finite value outside [0, 1] is refused (NaN marks a divergence). */
const FRACTION_COLUMNS = ['trainAcc', 'valTop1', 'testTop1', 'testTop5'];
const NUMBER = /^-?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/**
 * Parses karat train's log.csv (header row, then numbers and true/false). Refuses, naming the
 * file and the row: a missing column, a cell that is not a number (NaN and ±Infinity, as karat
 * writes a diverged epoch, are numbers), an accuracy outside [0, 1], an epoch that is not a
 * positive integer or that repeats.
 */
export function parseLogCsv(text: string, from: string): Row[] {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  if (lines.length < 1) throw new Error(`${from}: empty log`);
  const cols = lines[0].split(',');
  for (const c of REQUIRED_COLUMNS) if (!cols.includes(c)) throw new Error(`${from}: row 1 (header) has no column '${c}'`);
  const dup = cols.find((c, i) => cols.indexOf(c) !== i);
  if (dup != null) throw new Error(`${from}: row 1 (header) names column '${dup}' twice`);
  const seen = new Map<number, number>();
  return lines.slice(1).map((l, i) => {
    const row = i + 2;
    const cells = l.split(',');
    if (cells.length !== cols.length) throw new Error(`${from}: row ${row} has ${cells.length} cells, header has ${cols.length}`);
    const r: Row = {};
    cols.forEach((c, j) => {
      const v = cells[j].trim();
      if (v === 'true' || v === 'false') {
        r[c] = v === 'true';
        return;
      }
      if (!NUMBER.test(v) && v !== 'NaN' && v !== 'Infinity' && v !== '-Infinity') {
        throw new Error(`${from}: row ${row}, column '${c}': ${JSON.stringify(cells[j])} is not a number`);
      }
      const n = Number(v);
      if (FRACTION_COLUMNS.includes(c) && Number.isFinite(n) && (n < 0 || n > 1)) {
        throw new Error(`${from}: row ${row}, column '${c}': ${v} is not an accuracy in [0, 1]`);
      }
      r[c] = n;
    });
    const e = r.epoch as number;
    if (typeof e !== 'number' || !Number.isInteger(e) || e < 1) throw new Error(`${from}: row ${row}: epoch ${String(r.epoch)} is not a positive integer`);
    if (seen.has(e)) throw new Error(`${from}: row ${row} repeats epoch ${e} (first at row ${seen.get(e)})`);
    seen.set(e, row);
    return r;
  });
}

/** The run folders of `runsDir`; a folder that is a symbolic link leading out of it is refused. */
function runFolders(runsDir: string): string[] {
  const root = realpathSync(runsDir);
  return readdirSync(runsDir).sort().map((d) => join(runsDir, d)).filter((p) => {
    if (lstatSync(p).isSymbolicLink()) {
      const real = realpathSync(p);
      if (real !== root && !real.startsWith(root + sep)) throw new Error(`${p}: a symbolic link leading out of ${runsDir} (to ${real}); refused`);
    }
    return true;
  });
}

const sumOf = (rows: Row[], col: string) => rows.reduce((a, r) => a + Number(r[col]), 0);

/** Reads one run folder `<arm>-s<seed>`. */
export function readRun(dir: string): RunResult {
  const name = basename(dir);
  const m = /^(.+)-s(\d+)$/.exec(name);
  if (!m) throw new Error(`${dir}: run folders are named <arm>-s<seed>`);
  const summary = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8'));
  const byEpoch = new Map<number, Row>();
  for (const r of parseLogCsv(readFileSync(join(dir, 'log.csv'), 'utf8'), join(dir, 'log.csv'))) byEpoch.set(r.epoch as number, r);  // epochs are unique
  const rows = [...byEpoch.values()].sort((a, b) => (a.epoch as number) - (b.epoch as number));
  if (rows.length === 0) throw new Error(`${dir}: log.csv has no epochs`);
  const diverged = rows.some((r) => !Number.isFinite(r.testLoss as number) || !Number.isFinite(r.testTop1 as number));
  const hasVal = rows.every((r) => typeof r.valTop1 === 'number' && Number.isFinite(r.valTop1));
  let sel = rows[rows.length - 1];
  if (hasVal) {
    sel = rows[0];
    for (const r of rows) if ((r.valTop1 as number) > (sel.valTop1 as number)) sel = r;
  }
  return {
    name, arm: m[1], seed: Number(m[2]), params: Number(summary.params),
    seconds: sumOf(rows, 'epochSeconds'), cpuSeconds: sumOf(rows, 'cpuSeconds'), rows,
    selectedEpoch: sel.epoch as number, selectedTop1: sel.testTop1 as number, lastTop1: rows[rows.length - 1].testTop1 as number, diverged,
  };
}

export interface ArmSummary {
  arm: string;
  params: number;
  seeds: number[];
  selected: number[];
  last: number[];
  selectedEpochs: number[];
  seconds: number[];
  cpuSeconds: number[];
  diverged: string[];
}

export function summariseArms(runs: RunResult[], armOrder: string[]): ArmSummary[] {
  const arms = [...new Set(runs.map((r) => r.arm))].sort((a, b) => {
    const ia = armOrder.indexOf(a), ib = armOrder.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
  });
  return arms.map((arm) => {
    const rs = runs.filter((r) => r.arm === arm).sort((a, b) => a.seed - b.seed);
    return {
      arm, params: rs[0].params, seeds: rs.map((r) => r.seed), selected: rs.map((r) => r.selectedTop1),
      last: rs.map((r) => r.lastTop1), selectedEpochs: rs.map((r) => r.selectedEpoch), seconds: rs.map((r) => r.seconds), cpuSeconds: rs.map((r) => r.cpuSeconds),
      diverged: rs.filter((r) => r.diverged).map((r) => r.name),
    };
  });
}

/** KArAt arm minus the baseline over the seeds both have. */
export function pairedEffect(arm: ArmSummary, base: ArmSummary, which: 'selected' | 'last'): PairedInterval & {seeds: number[]} {
  const seeds = arm.seeds.filter((s) => base.seeds.includes(s));
  const a = seeds.map((s) => arm[which][arm.seeds.indexOf(s)]);
  const b = seeds.map((s) => base[which][base.seeds.indexOf(s)]);
  return {...pairedInterval(a, b), seeds};
}

const pct = (v: number, d = 2) => (100 * v).toFixed(d);
/** mean ± sd in percent; a single value has no spread to show. */
const pctMeanSd = (m: number, s: number, n: number) => n >= 2 ? `${pct(m)} ± ${pct(s)}` : pct(m);
const pp = (v: number) => `${v >= 0 ? '+' : ''}${(100 * v).toFixed(2)}`;

export function reportMarkdown(arms: ArmSummary[], baseline = 'softmax'): string {
  const out: string[] = [];
  out.push('| arm | params | test top-1 at selected epoch, mean ± sd | per seed | selected epochs | test top-1 at last epoch, mean ± sd | training time per run (s), mean: wall / CPU |');
  out.push('|---|---:|---:|---|---|---:|---:|');
  for (const a of arms) {
    out.push(`| ${a.arm} | ${a.params.toLocaleString('en-US')} | ${pctMeanSd(mean(a.selected), sd(a.selected), a.seeds.length)} (n = ${a.seeds.length}) | ` +
        `${a.seeds.map((s, i) => `s${s}: ${pct(a.selected[i])}`).join(', ')} | ${a.selectedEpochs.join(', ')} | ` +
        `${pctMeanSd(mean(a.last), sd(a.last), a.seeds.length)} | ${mean(a.seconds).toFixed(0)} / ${mean(a.cpuSeconds).toFixed(0)} |`);
  }
  const base = arms.find((a) => a.arm === baseline);
  if (base) {
    out.push('', `Paired difference against ${baseline} (same seed = same initialisation stream, data order and augmentation), ` +
        'percentage points, 95% t interval over seeds:', '');
    out.push('| arm | at selected epoch: mean [95% interval] | excludes 0? | at last epoch: mean [95% interval] | excludes 0? | per-seed differences (selected) |');
    out.push('|---|---|---|---|---|---|');
    for (const a of arms) {
      if (a === base) continue;
      const s = pairedEffect(a, base, 'selected'), l = pairedEffect(a, base, 'last');
      const iv = (e: PairedInterval) => e.n >= 2 ? `${pp(e.mean)} [${pp(e.lo)}, ${pp(e.hi)}]` : `${pp(e.mean)} (one seed: no interval)`;
      out.push(`| ${a.arm} | ${iv(s)} | ${s.excludesZero ? 'yes' : 'no'} | ${iv(l)} | ${l.excludesZero ? 'yes' : 'no'} | ${s.diffs.map(pp).join(', ')} |`);
    }
  }
  const div = arms.flatMap((a) => a.diverged);
  if (div.length) out.push('', `Diverged runs (a non-finite test loss or accuracy in some epoch): ${div.join(', ')}.`);
  return out.join('\n') + '\n';
}

/** Test top-1 per epoch over an arm's seeds, up to the epoch every run of the arm reached. */
export function perEpoch(runs: RunResult[], arm: string): {epochs: number[], mean: number[], sd: number[], n: number} {
  const rs = runs.filter((r) => r.arm === arm);
  const count = Math.min(...rs.map((r) => r.rows.length));
  const out = {epochs: [] as number[], mean: [] as number[], sd: [] as number[], n: rs.length};
  for (let e = 0; e < count; e++) {
    const v = rs.map((r) => r.rows[e].testTop1 as number);
    out.epochs.push(e + 1);
    out.mean.push(mean(v));
    out.sd.push(sd(v));
  }
  return out;
}

/** The curves as a table: test top-1 (%) per epoch, mean ± sd over each arm's seeds. */
export function epochTableMarkdown(runs: RunResult[], arms: ArmSummary[]): string {
  const cols = arms.map((a) => perEpoch(runs, a.arm));
  const rows = Math.max(...cols.map((c) => c.epochs.length));
  const out = [`| epoch | ${arms.map((a, k) => `${a.arm} (n = ${cols[k].n})`).join(' | ')} |`, `|---:|${arms.map(() => '---:').join('|')}|`];
  for (let e = 0; e < rows; e++) {
    out.push(`| ${e + 1} | ${cols.map((c) => e < c.epochs.length ? pctMeanSd(c.mean[e], c.sd[e], c.n) : '–').join(' | ')} |`);
  }
  return out.join('\n') + '\n';
}

/**
 * The paired difference arm − baseline of test top-1 per epoch (percentage points, mean and 95%
 * t interval over the seeds both arms have, up to the epoch all their runs reached); `*` marks
 * an interval that excludes 0.
 */
export function epochEffectMarkdown(runs: RunResult[], arms: ArmSummary[], baseline = 'softmax'): string {
  const base = arms.find((a) => a.arm === baseline);
  if (!base) return '';
  const others = arms.filter((a) => a !== base);
  const cols = others.map((a) => {
    const seeds = a.seeds.filter((s) => base.seeds.includes(s));
    const of = (arm: string, s: number) => runs.find((r) => r.arm === arm && r.seed === s)!.rows;
    const count = Math.min(...seeds.flatMap((s) => [of(a.arm, s).length, of(baseline, s).length]));
    return Array.from({length: count}, (_, e) => pairedInterval(
        seeds.map((s) => of(a.arm, s)[e].testTop1 as number), seeds.map((s) => of(baseline, s)[e].testTop1 as number)));
  });
  const rows = Math.max(0, ...cols.map((c) => c.length));
  const cell = (p: PairedInterval | undefined) => p == null ? '–' :
      p.n >= 2 ? `${pp(p.mean)} [${pp(p.lo)}, ${pp(p.hi)}]${p.excludesZero ? ' *' : ''}` : `${pp(p.mean)} (one seed)`;
  const out = [`| epoch | ${others.map((a) => `${a.arm} − ${baseline}`).join(' | ')} |`, `|---:|${others.map(() => '---').join('|')}|`];
  for (let e = 0; e < rows; e++) out.push(`| ${e + 1} | ${cols.map((c) => cell(c[e])).join(' | ')} |`);
  return out.join('\n') + '\n';
}

/** Test top-1 per epoch: each arm's mean (solid) and mean ± sd (dashed). */
export function curvesSvg(runs: RunResult[], arms: ArmSummary[], title: string): string {
  const series: LineSeries[] = [];
  arms.forEach((a, k) => {
    const c = perEpoch(runs, a.arm);
    const color = PALETTE[k % PALETTE.length];
    const y = (f: (m: number, s: number) => number) => c.mean.map((m, i) => 100 * f(m, c.sd[i]));
    series.push({name: `${a.arm} (mean of ${c.n})`, x: c.epochs, y: y((m) => m), color});
    series.push({name: `${a.arm} − sd`, x: c.epochs, y: y((m, s) => m - s), color, dash: '4 3'});
    series.push({name: `${a.arm} + sd`, x: c.epochs, y: y((m, s) => m + s), color, dash: '4 3'});
  });
  return linePlot({title, xLabel: 'epoch', yLabel: 'test top-1 (%)', series, width: 640, height: 400});
}

/** Copies each finished run's raw logs to `dest/<run>/`. */
export function collect(runsDir: string, dest: string): string[] {
  const names: string[] = [];
  for (const src of runFolders(runsDir)) {
    const d = basename(src);
    if (!existsSync(join(src, 'summary.json')) || !existsSync(join(src, 'log.csv'))) continue;
    mkdirSync(join(dest, d), {recursive: true});
    copyFileSync(join(src, 'summary.json'), join(dest, d, 'summary.json'));
    copyFileSync(join(src, 'log.csv'), join(dest, d, 'log.csv'));
    names.push(d);
  }
  return names;
}

export function readRuns(dir: string): RunResult[] {
  return runFolders(dir)
      .filter((p) => existsSync(join(p, 'summary.json')) && existsSync(join(p, 'log.csv'))).map(readRun);
}

export const ARM_ORDER = ['softmax', 'G3B', 'G3U', 'G1B'];

if (process.argv[1] != null && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const argv = process.argv.slice(2);
    const get = (k: string) => {
      const i = argv.indexOf(k);
      return i >= 0 ? argv[i + 1] : undefined;
    };
    let runsDir = get('--runs');
    if (!runsDir) throw new Error('--runs DIR is required');
    const dest = get('--collect');
    if (dest) {
      const n = collect(runsDir, dest);
      console.log(`collected ${n.length} runs into ${dest}`);
      runsDir = dest;
    }
    const runs = readRuns(runsDir);
    if (runs.length === 0) throw new Error(`${runsDir}: no finished runs (folders with summary.json and log.csv)`);
    const arms = summariseArms(runs, ARM_ORDER);
    const md = reportMarkdown(arms);
    const out = get('--out');
    if (out) {
      mkdirSync(dirname(out), {recursive: true});
      const svg = join(dirname(out), 'curves.svg');
      writeFileSync(svg, curvesSvg(runs, arms, 'CIFAR-10 test top-1 per epoch (mean ± sd over seeds)'));
      writeFileSync(out, md + '\nTest top-1 (%) per epoch, mean ± sd over seeds:\n\n' + epochTableMarkdown(runs, arms) +
          '\nPaired difference of test top-1 per epoch, percentage points, mean [95% interval] (* excludes 0):\n\n' +
          epochEffectMarkdown(runs, arms) +
          `\n![test top-1 per epoch](${relative(dirname(out), svg)})\n`);
      console.log(`wrote ${out} and ${svg}`);
    }
    console.log(md);
  } catch (e) {
    console.error(`study report: ${(e as Error).message}`);
    process.exit(2);
  }
}
