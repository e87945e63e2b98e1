/**
 * The `karat` command line: train | finetune | eval | info | analyze | convert | export.
 *
 *   karat train --preset quick                     the main job (embedded CIFAR-10 subset)
 *   karat train --config run.json --epochs 20      flags override the config file
 *   karat eval --checkpoint runs/<run>/best.ckpt   top-1/top-5 and a confusion matrix
 *   karat info [--checkpoint FILE]                 backends, presets, datasets, a checkpoint's header
 */
import * as tf from '@tensorflow/tfjs-core';

import {DataError} from '../data/dataset';
import {BatchLoader} from '../data/loader';
import {NO_AUGMENT} from '../data/augment';
import {loadDatasetPair} from '../data/registry';
import {AUTO_ORDER, activateBackend, releaseBackends, selectBackend} from '../training/backend';
import {CheckpointError, checkSpecFitsWeights, modelFromCheckpoint, readCheckpoint} from '../training/checkpoint';
import {BACKENDS, ConfigError, DATASETS, kebab, PRESETS, TrainConfig} from '../training/config';
import {epochTable, table} from '../training/logging';
import {formatConfusion} from '../training/metrics';
import {isTopologySpec, ModelSpec} from '../training/model';
import {evaluate, TrainingDivergedError} from '../training/trainer';
import {version} from '../version';
import {cmdAnalyze} from './analyze';
import {cmdConvert, cmdExport} from './convert';
import {cmdFinetune} from './finetune';
import {parseFlags, UsageError} from './flags';
import {cmdTrain, readConfigFile, runTraining} from './train';

export {parseFlags, readConfigFile, runTraining, UsageError};

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
    checkSpecFitsWeights(ck, `checkpoint '${flags.checkpoint}'`);
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
const FILE_SYSTEM_CODES = new Set(['ENOENT', 'EEXIST', 'ENOTDIR', 'EISDIR', 'EACCES', 'EPERM', 'ENOSPC', 'EROFS', 'ENAMETOOLONG', 'ELOOP', 'EMFILE']);

function isFileSystemError(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && FILE_SYSTEM_CODES.has(code) && typeof (e as NodeJS.ErrnoException).syscall === 'string';
}

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
        e instanceof TrainingDivergedError || err?.name === 'KArAtArgumentError' || err?.name === 'KerasViTError' ||
        err?.name === 'SafetensorsError') {
      console.error(`karat: error: ${err.message}`);
      return 2;
    }
    if (isFileSystemError(e)) {
      // a path the user gave cannot be read or written (a folder where a file belongs, a file
      // in the way, no permission, a full disk): one line, not a stack trace
      console.error(`karat: error: ${err.message}`);
      return 2;
    }
    throw e;
  }
}
