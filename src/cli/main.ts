/**
 * The `karat` command line: train | finetune | eval | info | analyze | convert | export.
 *
 *   karat train --preset quick                     the main job (embedded CIFAR-10 subset)
 *   karat train --config run.json --epochs 20      flags override the config file
 *   karat eval --checkpoint runs/<run>/best.ckpt   top-1/top-5 and a confusion matrix
 *   karat info [--checkpoint FILE]                 backends, presets, datasets, a checkpoint's header
 */
import {existsSync, readFileSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';

import * as tf from '@tensorflow/tfjs-core';

import {DataError} from '../data/dataset';
import {BatchLoader} from '../data/loader';
import {NO_AUGMENT} from '../data/augment';
import {loadDatasetPair} from '../data/registry';
import {DownloadProgress} from '../data/download';
import {AUTO_ORDER, activateBackend, releaseBackends, selectBackend} from '../training/backend';
import {CheckpointError, exportModel, modelFromCheckpoint, readCheckpoint} from '../training/checkpoint';
import {BACKENDS, ConfigError, DATASETS, DEFAULTS, FIELD_HELP, FIELD_KINDS, kebab, PRESETS, resolveConfig, TrainConfig} from '../training/config';
import {appendEpochLogs, appendEvent, epochTable, formatDuration, Progress, table} from '../training/logging';
import {formatConfusion} from '../training/metrics';
import {isTopologySpec, ModelSpec} from '../training/model';
import {plotRuns} from '../training/plot';
import {evaluate, ModelFactory, StartInfo, train, TrainingDivergedError} from '../training/trainer';
import {version} from '../version';
import {cmdAnalyze} from './analyze';
import {cmdConvert, cmdExport} from './convert';
import {cmdFinetune} from './finetune';
import {camel, parseFlags, UsageError} from './flags';

export {parseFlags, UsageError};

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

const HELP = `karat ${version} — Kolmogorov-Arnold Attention (Fourier-KArAt) training for TensorFlow.js

usage:
  karat train [--preset quick|cifar10-paper|cifar100-paper] [--config FILE.json] [flags]
  karat finetune --model <model.json | run folder | FILE.ckpt> [--attention fourier|softmax] [--grid G] [--rank r] [--mode M] [train flags]
  karat eval  --checkpoint FILE [--dataset NAME] [--data-dir PATH] [--backend NAME] [--batch-size N] [--test-limit N]
  karat info  [--checkpoint FILE] [--probe]
  karat analyze (--checkpoint FILE | --model PATH) [--path DIR] [--out DIR] [flags]
  karat convert --from vit.safetensors --out DIR [--heads N | --arch NAME]   PyTorch (timm) ViT -> tfjs
  karat export  --model DIR|model.json|FILE.ckpt --to vit.safetensors         tfjs ViT -> PyTorch (timm names)

'karat train --help' lists every training flag; 'karat finetune --help' the fine-tuning flags; 'karat analyze --help' the analysis flags.`;

export function readConfigFile(path: string): Record<string, unknown> {
  if (!existsSync(path)) throw new ConfigError(`--config: file '${path}' does not exist`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ConfigError(`--config: '${path}' is not valid JSON (${(e as Error).message})`);
  }
  if (raw == null || typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`--config: '${path}' must hold a JSON object`);
  const out: Record<string, unknown> = Object.create(null);
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) out[camel(k)] = v;
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

async function cmdTrain(argv: string[]): Promise<number> {
  const {flags, positional} = parseFlags(argv, TRAIN_BOOLEANS);
  if (flags.help) {
    console.log(trainHelp());
    return 0;
  }
  if (positional.length) throw new UsageError(`karat train: unexpected argument '${positional[0]}' (flags start with --)`);
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
  const onSigint = () => {
    if (interrupted) return;
    interrupted = true;
    progress.clear();
    process.stderr.write(`\ninterrupted. ${lastCk ? `Last complete checkpoint: ${lastCk} (resume with --resume ${runDir})` : 'No checkpoint was written yet.'}\n`);
    process.exit(130);
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

async function cmdEval(argv: string[]): Promise<number> {
  const {flags} = parseFlags(argv, new Set(['help', 'download']));
  if (flags.help) {
    console.log('usage: karat eval --checkpoint FILE [--dataset NAME] [--data-dir PATH] [--backend NAME] [--batch-size N] [--test-limit N]');
    return 0;
  }
  const known = new Set(['checkpoint', 'dataset', 'dataDir', 'backend', 'batchSize', 'testLimit', 'download', 'help']);
  for (const k of Object.keys(flags)) if (!known.has(k)) throw new UsageError(`karat eval: unknown flag --${kebab(k)}`);
  if (!flags.checkpoint) throw new UsageError('karat eval: --checkpoint FILE is required');
  const intFlag = (name: string, v: unknown, min: number): number | undefined => {
    if (v === undefined) return undefined;
    const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
    if (!Number.isInteger(n) || n < min) throw new UsageError(`karat eval: --${name} must be an integer >= ${min}, got '${String(v)}'`);
    return n;
  };
  const testLimit = intFlag('test-limit', flags.testLimit, 0) ?? 0;
  const batchSize = intFlag('batch-size', flags.batchSize, 1) ?? 250;
  const ck = readCheckpoint(String(flags.checkpoint));
  const saved = (ck.header.trainer.config ?? {}) as Partial<TrainConfig>;
  const dataset = String(flags.dataset ?? saved.dataset ?? 'cifar10-subset');
  const backendName = String(flags.backend ?? 'auto');
  if (!BACKENDS.includes(backendName as never)) throw new ConfigError(`unknown backend '${backendName}'; expected one of ${BACKENDS.join(', ')}`);
  const backend = await selectBackend(backendName as TrainConfig['backend']);
  console.log(`backend: ${backend.name} — ${backend.detail}`);
  const {test} = await loadDatasetPair(dataset, {
    dataDir: (flags.dataDir as string | undefined) ?? (flags.dataset ? null : saved.dataDir ?? null),
    download: !!flags.download, testLimit, imageSize: saved.imageSize,
  });
  const spec = ck.header.modelSpec as ModelSpec;
  if (spec.numClasses !== test.numClasses) {
    throw new CheckpointError(`checkpoint '${flags.checkpoint}' has ${spec.numClasses} classes, dataset ${test.name} has ${test.numClasses}`);
  }
  const model = await modelFromCheckpoint(ck, `checkpoint '${flags.checkpoint}'`);
  const norm = (ck.header.trainer.normalisation as {mean: number[], std: number[]} | undefined) ?? {mean: [0, 0, 0], std: [1, 1, 1]};
  const bs = Math.min(batchSize, test.size);
  const loader = new BatchLoader(test, {batchSize: bs, train: false, augment: {...NO_AUGMENT, ...norm}, seed: 0});
  const ev = await evaluate(model, loader, test.numClasses);
  console.log(`checkpoint: ${flags.checkpoint} (epoch ${ck.header.trainer.epoch}, step ${ck.header.trainer.step})`);
  console.log(`dataset: ${test.name}, ${ev.examples} examples, ${ev.seconds.toFixed(1)} s`);
  console.log(`loss ${ev.loss.toFixed(4)}  top-1 ${(100 * ev.top1).toFixed(2)}%  top-5 ${(100 * ev.top5).toFixed(2)}%` +
      (ev.diverged ? `  DIVERGED: the loss is not finite; ${ev.nonFinite} of ${ev.examples} examples have non-finite logits (counted as wrong)` : '') + '\n');
  console.log(formatConfusion(ev.confusion, test.classNames, ev.nonFiniteByClass));
  return 0;
}

async function cmdInfo(argv: string[]): Promise<number> {
  const {flags} = parseFlags(argv, new Set(['help', 'probe']));
  if (flags.help) {
    console.log('usage: karat info [--checkpoint FILE] [--probe]   (--probe starts every backend to see which work)');
    return 0;
  }
  for (const k of Object.keys(flags)) if (!['checkpoint', 'probe'].includes(k)) throw new UsageError(`karat info: unknown flag --${kebab(k)}`);
  console.log(`tfjs-karat ${version}, tfjs-core ${tf.version_core}, node ${process.version}, ${process.platform}-${process.arch}`);
  if (flags.checkpoint) {
    const ck = readCheckpoint(String(flags.checkpoint));
    const t = ck.header.trainer;
    console.log(`checkpoint ${flags.checkpoint}: epoch ${t.epoch}, step ${t.step}, seed ${t.seed}, saved ${ck.header.createdAt}, backend ${t.backend}`);
    const spec = ck.header.modelSpec as ModelSpec;
    console.log(isTopologySpec(spec) ?
        `model: a layers topology (karat finetune), ${spec.imageSize.join('x')}x${spec.channels} images, ${spec.numClasses} classes` :
        `model: ${JSON.stringify(spec)}`);
    console.log(`weights: ${ck.header.weights.length} tensors, ${ck.header.weightFloats.toLocaleString('en-US')} parameters; optimizer state: ${ck.optimizer ? `step ${ck.optimizer.meta.step}` : 'none'}`);
    const hist = (t.history as import('../training/trainer').EpochRecord[]) ?? [];
    if (hist.length) console.log(epochTable(hist));
    return 0;
  }
  console.log(`\nbackends (auto order: ${AUTO_ORDER.join(' > ')}):`);
  if (flags.probe) {
    const rows: string[][] = [];
    for (const b of BACKENDS.filter((b) => b !== 'auto') as Array<Exclude<TrainConfig['backend'], 'auto'>>) {
      try {
        const i = await activateBackend(b);
        rows.push([b, 'available', i.detail]);
      } catch (e) {
        rows.push([b, 'unavailable', (e as Error).message.slice(0, 100)]);
      }
    }
    console.log(table(['backend', 'status', 'detail'], rows));
  } else {
    console.log(`  ${BACKENDS.join(', ')}  (add --probe to start each one and report which work)`);
  }
  console.log('\npresets:');
  for (const [k, p] of Object.entries(PRESETS)) console.log(`  ${k.padEnd(16)} ${p.description}`);
  console.log(`\ndatasets: ${DATASETS.join(', ')}`);
  return 0;
}

/**
 * Runs a `karat` command; returns the exit code. Errors from bad input print one clear line.
 * Backends stay as they are, so it can be called in-process (tests, programs); the `karat`
 * process itself uses runCli.
 */
export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  return dispatch(cmd, rest);
}

/** The `karat` process: main(argv), then WebGPU/Dawn are dropped so that Node can exit. */
export async function runCli(argv: string[]): Promise<number> {
  try {
    return await main(argv);
  } finally {
    releaseBackends();
  }
}

async function dispatch(cmd: string | undefined, rest: string[]): Promise<number> {
  try {
    switch (cmd) {
      case 'train':
        return await cmdTrain(rest);
      case 'eval':
        return await cmdEval(rest);
      case 'info':
        return await cmdInfo(rest);
      case 'analyze':
        return await cmdAnalyze(rest);
      case 'finetune':
        return await cmdFinetune(rest);
      case 'convert':
        return await cmdConvert(rest);
      case 'export':
        return await cmdExport(rest);
      case undefined:
      case '--help':
      case '-h':
      case 'help':
        console.log(HELP);
        return cmd === undefined ? 1 : 0;
      case '--version':
        console.log(version);
        return 0;
      default:
        throw new UsageError(`unknown command '${cmd}'; expected train, finetune, eval, info, analyze, convert or export (karat --help)`);
    }
  } catch (e) {
    const err = e as Error;
    if (e instanceof UsageError || e instanceof ConfigError || e instanceof DataError || e instanceof CheckpointError ||
        e instanceof TrainingDivergedError || err?.name === 'KArAtArgumentError' || err?.name === 'SafetensorsError') {
      console.error(`karat: error: ${err.message}`);
      return 2;
    }
    throw e;
  }
}
