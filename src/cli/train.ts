/**
 * `karat train`: the command, its help, the config-file reader, and runTraining, which runs the
 * trainer with the CLI's console output, logs, plots, summary and model export. `karat finetune`
 * reuses runTraining with its own model factory.
 */
import {existsSync, readFileSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';

import {DownloadProgress} from '../data/download';
import {AUTO_ORDER} from '../training/backend';
import {exportModel, readCheckpoint} from '../training/checkpoint';
import {parseStrictJson} from '../io/strict_json';
import {ConfigError, DEFAULTS, FIELD_HELP, FIELD_KINDS, hasOwn, kebab, PRESETS, resolveConfig, TrainConfig} from '../training/config';
import {appendEpochLogs, appendEvent, epochTable, formatDuration, Progress} from '../training/logging';
import {plotRuns} from '../training/plot';
import {ModelFactory, StartInfo, train} from '../training/trainer';
import {camel, commandFlags} from './flags';


const TRAIN_BOOLEANS = new Set([...Object.entries(FIELD_KINDS).filter(([, v]) => v === 'bool').map(([k]) => k), 'help']);

function trainHelp(): string {
  const rows = (Object.keys(FIELD_KINDS) as Array<keyof TrainConfig>).map((k) => {
    const d = DEFAULTS[k];
    return `  --${kebab(k).padEnd(17)} ${FIELD_HELP[k]}${d === null ? '' : ` (default ${JSON.stringify(d)})`}`;
  });
  return [
    'usage: karat train [--preset NAME] [--config FILE.json] [flags]',
    '',
    'Flags override the --config file, which overrides the preset, which overrides the defaults.',
    'Boolean flags: --flag, --flag true|false, --no-flag.',
    '',
    '  --config            JSON file with any of the options below (camelCase or kebab-case keys)',
    ...rows,
    '',
    'presets:',
    ...Object.entries(PRESETS).map(([k, p]) => `  ${k.padEnd(16)} ${p.description}`),
  ].join('\n');
}
export function readConfigFile(path: string): Record<string, unknown> {
  if (!existsSync(path)) throw new ConfigError(`--config: file '${path}' does not exist`);
  let raw: unknown;
  try {
    raw = parseStrictJson(readFileSync(path, 'utf8'), `--config: '${path}'`);
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  if (raw == null || typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`--config: '${path}' must hold a JSON object`);
  const out: Record<string, unknown> = Object.create(null);
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (hasOwn(out, camel(k))) throw new ConfigError(`--config: '${path}' sets '${camel(k)}' more than once (as '${k}' and another spelling)`);
    out[camel(k)] = v;
  }
  return out;
}

function downloadPrinter(): (p: DownloadProgress) => void {
  let last = 0;
  return (p) => {
    const now = Date.now();
    if (now - last < 1000 && (p.total == null || p.received < p.total)) return;
    last = now;
    const pct = p.total ? ` ${(100 * p.received / p.total).toFixed(1)}%` : '';
    process.stderr.write(`download ${p.file}: ${(p.received / 1e6).toFixed(1)} MB${p.total ? ` of ${(p.total / 1e6).toFixed(1)} MB` : ''}${pct}${p.resumed ? ' (resumed)' : ''}\n`);
  };
}

export async function cmdTrain(argv: string[]): Promise<number> {
  const flags = commandFlags('train', argv, TRAIN_BOOLEANS);
  if (flags.help) {
    console.log(trainHelp());
    return 0;
  }
  const layers: Array<{from: string, values: Record<string, unknown>}> = [];
  const configPath = flags.config as string | undefined;
  delete flags.config;
  // on resume, the checkpoint's own config is the base (explicit flags still win)
  if (flags.resume && flags.resume !== 'auto') {
    const p = existsSync(String(flags.resume)) && !String(flags.resume).endsWith('.ckpt') ? join(String(flags.resume), 'last.ckpt') : String(flags.resume);
    const ck = readCheckpoint(p);
    const saved = {...(ck.header.trainer.config as Record<string, unknown>)};
    delete saved.resume;
    delete saved.overwrite;
    layers.push({from: `checkpoint ${p}`, values: saved});
  }
  if (configPath) layers.push({from: `--config ${configPath}`, values: readConfigFile(configPath)});
  layers.push({from: 'command line', values: flags});
  return runTraining(resolveConfig(layers));
}

/**
 * Runs the trainer with the CLI's console output, logs, plots, summary and model export
 * (karat train; karat finetune passes the model factory and its model description).
 */
export async function runTraining(cfg: TrainConfig, opts: {factory?: ModelFactory, describeModel?: (i: StartInfo) => string} = {}): Promise<number> {
  const progress = Progress.resolve(cfg.progress);
  let runDir = '';
  let lastCk = '';
  let interrupted = false;
  // SIGINT (Ctrl-C) and SIGTERM stop the run at once: checkpoints are written atomically at the
  // end of each epoch, so the last complete one is intact and resumable (exit 130 / 143).
  const onSigint = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    progress.clear();
    process.stderr.write(`\n${signal === 'SIGTERM' ? 'terminated' : 'interrupted'}. ${lastCk ? `Last complete checkpoint: ${lastCk} (resume with --resume ${runDir})` : 'No checkpoint was written yet.'}\n`);
    process.exit(signal === 'SIGTERM' ? 143 : 130);
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);
  const result = await train({...cfg}, {
    onStart: (i) => {
      runDir = i.runDir;
      const auto = i.backend.auto ? ` (auto: fastest available here; order ${AUTO_ORDER.join(' > ')})` : '';
      console.log(`backend: ${i.backend.name} — ${i.backend.detail}${auto}`);
      const att = cfg.attention === 'softmax' ? 'softmax attention' : `Fourier-KArAt G${cfg.grid}${cfg.mode === 'blockwise' ? 'B' : 'U'} (rank ${cfg.rank})`;
      console.log(opts.describeModel ? opts.describeModel(i) :
          `model: ViT dim ${cfg.dim}, depth ${cfg.depth}, heads ${cfg.heads}, patch ${cfg.patchSize}, ${att}; ${i.params.toLocaleString('en-US')} parameters`);
      console.log(`data: ${i.train.name} ${i.train.size} train / ${i.test.name} ${i.test.size} test, ${i.train.height}x${i.train.width}x${i.train.channels}, ${i.train.numClasses} classes`);
      console.log(`run: ${i.runDir}${i.resumedFrom ? ` — resumed from ${i.resumedFrom} at epoch ${i.startEpoch}` : ''}; ${cfg.epochs} epochs x ${i.batchesPerEpoch} steps of ${cfg.batchSize}`);
      writeFileSync(join(i.runDir, 'config.json'), JSON.stringify(cfg, null, 2) + '\n');
      appendEvent(i.runDir, i.resumedFrom ? 'resume' : 'start', {config: cfg, backend: i.backend.name, params: i.params, resumedFrom: i.resumedFrom, startEpoch: i.startEpoch});
    },
    onStep: (s) => progress.step(s),
    onDownload: downloadPrinter(),
    onEpoch: (r, ev) => {
      progress.clear();
      lastCk = join(runDir, 'last.ckpt');
      appendEpochLogs(runDir, r);
      const history = readHistory(runDir);
      writeFileSync(join(runDir, 'curves.svg'), plotRuns([{label: runDir, history}], `${runDir}`));
      console.log(`epoch ${r.epoch}/${cfg.epochs}: train loss ${r.trainLoss.toFixed(4)} acc ${(100 * r.trainAcc).toFixed(2)}% | ` +
          (r.valTop1 !== undefined ? `val loss ${r.valLoss!.toFixed(4)} top-1 ${(100 * r.valTop1).toFixed(2)}% | ` : '') +
          `test loss ${r.testLoss.toFixed(4)} top-1 ${(100 * r.testTop1).toFixed(2)}% top-5 ${(100 * r.testTop5).toFixed(2)}% | ` +
          `${r.imagesPerSec.toFixed(1)} img/s, ${formatDuration(r.epochSeconds)} (+${ev.seconds.toFixed(1)} s eval)${r.best ? ' *best' : ''}` +
          (ev.diverged ? ` — evaluation diverged (non-finite test loss; ${ev.nonFinite} of ${ev.examples} examples with non-finite logits), not a best epoch` : ''));
    },
  }, undefined, opts.factory);
  process.removeListener('SIGINT', onSigint);
  process.removeListener('SIGTERM', onSigint);
  const last = result.history[result.history.length - 1];
  appendEvent(result.runDir, 'end', {seconds: result.seconds, best: result.best, last});
  writeFileSync(join(result.runDir, 'summary.json'), JSON.stringify({
    config: cfg, backend: result.backend, params: result.params, seconds: result.seconds, best: result.best, last, history: result.history,
  }, null, 2) + '\n');
  await exportModel(result.model, join(result.runDir, 'model'));
  console.log('\nsummary');
  console.log(epochTable(result.history));
  const bestRec = result.best ? result.history.find((h) => h.epoch === result.best!.epoch) : undefined;
  const bestLine = result.best == null ? 'no epoch had a finite evaluation loss (no best checkpoint)' :
      cfg.valSplit > 0 ? `best validation top-1 ${(100 * result.best.top1).toFixed(2)}% at epoch ${result.best.epoch}` +
          (bestRec ? ` (test top-1 ${(100 * bestRec.testTop1).toFixed(2)}% there)` : '') :
      `best test top-1 ${(100 * result.best.top1).toFixed(2)}% at epoch ${result.best.epoch}`;
  console.log(`\n${bestLine}; ` +
      `last top-1 ${(100 * last.testTop1).toFixed(2)}%, top-5 ${(100 * last.testTop5).toFixed(2)}%; ` +
      `total ${formatDuration(result.seconds)} on ${result.backend}`);
  console.log(`files: ${result.lastCheckpoint}, ${result.bestCheckpoint ?? '-'}, ${join(result.runDir, 'log.jsonl')}, ` +
      `${join(result.runDir, 'log.csv')}, ${join(result.runDir, 'curves.svg')}, ${join(result.runDir, 'model', 'model.json')} (tfjs format, last epoch)`);
  return 0;
}

function readHistory(runDir: string): import('../training/trainer').EpochRecord[] {
  const p = join(runDir, 'log.jsonl');
  if (!existsSync(p)) return [];
  const recs = readFileSync(p, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l))
      .filter((r: {type: string}) => r.type === 'epoch');
  // a resumed run re-logs nothing twice, but keep the latest record per epoch in any case
  const byEpoch = new Map<number, import('../training/trainer').EpochRecord>();
  for (const r of recs) byEpoch.set(r.epoch, r);
  return [...byEpoch.values()].sort((a, b) => a.epoch - b.epoch);
}