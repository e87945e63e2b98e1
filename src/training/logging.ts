/**
 * Run output: JSONL and CSV logs (appended per epoch, so they survive interruption),
 * a progress bar with ETA, loss, accuracy and images/s on a TTY (plain lines otherwise),
 * and the final summary table.
 */

import type {EpochRecord, StepInfo} from './trainer';
import * as nodeFs from 'node:fs';
import * as nodePath from 'node:path';

export const CSV_COLUMNS: Array<keyof EpochRecord> = [
  'epoch', 'step', 'lr', 'trainLoss', 'trainAcc', 'testLoss', 'testTop1', 'testTop5', 'epochSeconds', 'imagesPerSec', 'cpuSeconds', 'best',
];
/** The columns of a run with a validation split (--val-split): valLoss and valTop1 after trainAcc. */
export const CSV_COLUMNS_WITH_VAL: Array<keyof EpochRecord> = [
  'epoch', 'step', 'lr', 'trainLoss', 'trainAcc', 'valLoss', 'valTop1', 'testLoss', 'testTop1', 'testTop5', 'epochSeconds',
  'imagesPerSec', 'cpuSeconds', 'best',
];

/** Appends one record to `<runDir>/log.jsonl` and `<runDir>/log.csv` (header on creation). */
export function appendEpochLogs(runDir: string, rec: EpochRecord, extra: Record<string, unknown> = {}): void {
  nodeFs.appendFileSync(nodePath.join(runDir, 'log.jsonl'), JSON.stringify({type: 'epoch', time: new Date().toISOString(), ...rec, ...extra}) + '\n');
  const csv = nodePath.join(runDir, 'log.csv');
  const cols = rec.valTop1 !== undefined ? CSV_COLUMNS_WITH_VAL : CSV_COLUMNS;
  if (!nodeFs.existsSync(csv)) nodeFs.writeFileSync(csv, cols.join(',') + '\n');
  nodeFs.appendFileSync(csv, cols.map((k) => {
    const v = rec[k];
    return typeof v === 'number' && !Number.isInteger(v) ? v.toPrecision(6) : String(v);
  }).join(',') + '\n');
}

/** Appends a non-epoch event (start, resume, end) to the JSONL log. */
export function appendEvent(runDir: string, type: string, data: Record<string, unknown>): void {
  nodeFs.appendFileSync(nodePath.join(runDir, 'log.jsonl'), JSON.stringify({type, time: new Date().toISOString(), ...data}) + '\n');
}

export function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return '--:--';
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`;
}

export type ProgressMode = 'bar' | 'lines' | 'none';

/** Renders step progress: an in-place bar on a TTY, a plain line every few seconds otherwise. */
export class Progress {
  private lastLine = 0;
  private barShown = false;

  constructor(readonly mode: ProgressMode, private readonly out: NodeJS.WriteStream = process.stderr,
              private readonly lineEverySec = 10) {}

  static resolve(mode: 'auto' | ProgressMode, out: NodeJS.WriteStream = process.stderr): Progress {
    return new Progress(mode === 'auto' ? (out.isTTY ? 'bar' : 'lines') : mode, out);
  }

  step(s: StepInfo): void {
    if (this.mode === 'none') return;
    const stats = `loss ${s.meanLoss.toFixed(4)} acc ${(100 * s.trainAcc).toFixed(1)}% ` +
        `lr ${s.lr.toExponential(2)} ${s.imagesPerSec.toFixed(1)} img/s`;
    if (this.mode === 'bar') {
      const width = 24;
      const filled = Math.round(width * s.batch / s.batches);
      const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
      const line = `epoch ${s.epoch}/${s.epochs} ${bar} ${s.batch}/${s.batches} ` +
          `${formatDuration(s.epochElapsed)}<${formatDuration(s.epochEta)} ${stats}`;
      const cols = this.out.columns ?? 120;
      this.out.write(`\r${line.slice(0, cols - 1)}\x1b[K`);
      this.barShown = true;
    } else {
      const now = Date.now();
      if (now - this.lastLine >= this.lineEverySec * 1000 || s.batch === s.batches || s.batch === 1) {
        this.lastLine = now;
        this.out.write(`epoch ${s.epoch}/${s.epochs} step ${s.batch}/${s.batches} ` +
            `[${formatDuration(s.epochElapsed)} elapsed, ETA ${formatDuration(s.epochEta)}] ${stats}\n`);
      }
    }
  }

  /** Ends the bar line (before other output). */
  clear(): void {
    if (this.barShown) {
      this.out.write('\n');
      this.barShown = false;
    }
  }
}

/** A fixed-width text table. */
export function table(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = rows.map((r) => r.map((c) => String(c)));
  const w = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]?.length ?? 0)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ');
  return [line(headers), w.map((n) => '-'.repeat(n)).join('  '), ...cells.map(line)].join('\n');
}

export function epochTable(history: EpochRecord[]): string {
  return table(
      ['epoch', 'train loss', 'train acc', 'test loss', 'top-1', 'top-5', 'img/s', 'time', 'best'],
      history.map((r) => [r.epoch, r.trainLoss.toFixed(4), `${(100 * r.trainAcc).toFixed(2)}%`, r.testLoss.toFixed(4),
        `${(100 * r.testTop1).toFixed(2)}%`, `${(100 * r.testTop5).toFixed(2)}%`, r.imagesPerSec.toFixed(1),
        formatDuration(r.epochSeconds), r.best ? '*' : '']));
}
