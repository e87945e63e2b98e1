/**
 * Run folders: a run never destroys another. A named run folder that already holds files
 * is refused unless the run resumes it (--resume) or replaces it (--overwrite); generated
 * names are reserved with an exclusive mkdir, so two runs started in the same second get two
 * folders. A run that fails before writing anything leaves no empty folder, and temporary
 * checkpoint files of killed writers (`.<name>.tmp-<pid>`) are removed when the run starts
 * again.
 */
import * as nodeFs from 'node:fs';
import * as nodePath from 'node:path';
import {ConfigError, TrainConfig} from './config';

/** Files and folders a training run writes (what --overwrite removes; nothing else is touched). */
export const RUN_OUTPUTS = ['last.ckpt', 'best.ckpt', 'log.jsonl', 'log.csv', 'curves.svg', 'summary.json', 'config.json', 'epochs', 'model'];

const TMP_FILE = /^\..+\.tmp-(\d+)$/;

/** Checks a --run-name: one folder name, no path separators, not '.' or '..'. */
export function checkRunName(name: string): void {
  if (name === '' || name === '.' || name === '..' || /[/\\]/.test(name) || name.includes('\0')) {
    throw new ConfigError(`'run-name' must be a folder name without path separators, got ${JSON.stringify(name)} (use --out-dir for the parent folder)`);
  }
}

function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes temporary checkpoint files left in `dir` (and its epochs/ folder) by writers that
 * no longer run; returns the removed paths.
 */
export function removeStaleTempFiles(dir: string): string[] {
  const fs = nodeFs, path = nodePath;
  const removed: string[] = [];
  for (const d of [dir, path.join(dir, 'epochs')]) {
    let names: string[];
    try {
      names = fs.readdirSync(d);
    } catch {
      continue;
    }
    for (const n of names) {
      const m = TMP_FILE.exec(n);
      if (m == null || pidAlive(Number(m[1]))) continue;
      const p = path.join(d, n);
      try {
        if (fs.lstatSync(p).isFile()) {
          fs.unlinkSync(p);
          removed.push(p);
        }
      } catch {
        // removed meanwhile
      }
    }
  }
  return removed;
}

/** The run folder prepared for a run, and whether this run created it. */
export interface RunDir {
  dir: string;
  created: boolean;
}

/**
 * Prepares the folder of a run: `name` given (explicit --run-name): refused when it holds
 * files, unless `resume` (continue it) or `overwrite` (its run outputs are removed first);
 * `name` null: `generated` with -2, -3, ... appended until an exclusive mkdir succeeds.
 */
export function prepareRunDir(outDir: string, name: string | null, generated: string,
                              opts: {resume: boolean, overwrite: boolean}): RunDir {
  const fs = nodeFs, path = nodePath;
  fs.mkdirSync(outDir, {recursive: true});
  if (name == null) {
    for (let i = 1; ; i++) {
      const dir = path.join(outDir, i === 1 ? generated : `${generated}-${i}`);
      try {
        fs.mkdirSync(dir);
        return {dir, created: true};
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || i >= 1000) throw e;
      }
    }
  }
  checkRunName(name);
  const dir = path.join(outDir, name);
  try {
    fs.mkdirSync(dir);
    return {dir, created: true};
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  if (!fs.statSync(dir).isDirectory()) throw new ConfigError(`run folder '${dir}' exists and is not a folder`);
  removeStaleTempFiles(dir);
  if (opts.resume || fs.readdirSync(dir).length === 0) return {dir, created: false};
  if (!opts.overwrite) {
    throw new ConfigError(
        `run folder '${dir}' already holds a run; pass --resume ${dir} to continue it, --overwrite to replace it, ` +
        `or another --run-name`);
  }
  for (const f of RUN_OUTPUTS) fs.rmSync(path.join(dir, f), {recursive: true, force: true});
  return {dir, created: false};
}

/** Removes a run folder this run created when it is still empty (a run that failed early). */
export function removeIfEmpty(r: RunDir): void {
  if (!r.created) return;
  try {
    if (nodeFs.readdirSync(r.dir).length === 0) nodeFs.rmdirSync(r.dir);
  } catch {
    // gone or not empty: leave it
  }
}

/** The time as a run name's suffix: UTC, `YYYYMMDD-HHMMSS`. */
export function runStamp(date = new Date()): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
}

/** `<preset or dataset>-<model>-<attention>-<stamp>`: the folder name of a run without --run-name. */
export function defaultRunName(cfg: TrainConfig): string {
  const stamp = runStamp();
  const att = cfg.attention === 'softmax' ? 'softmax' : `G${cfg.grid}${cfg.mode === 'blockwise' ? 'B' : 'U'}`;
  return `${cfg.preset ?? cfg.dataset}-${cfg.model}-${att}-${stamp}`;
}
