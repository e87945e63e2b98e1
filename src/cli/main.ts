/**
 * The `karat` command line: train | finetune | eval | info | analyze | convert | export.
 *
 *   karat train --preset quick                     the main job (the CIFAR-10 subset)
 *   karat train --config run.json --epochs 20      flags override the config file
 *   karat eval --checkpoint runs/<run>/best.ckpt   top-1/top-5 and a confusion matrix
 *   karat info [--checkpoint FILE]                 backends, presets, datasets, a checkpoint's header
 */
import {DataError} from '../data/dataset';
import {releaseBackends} from '../training/backend';
import {CheckpointError} from '../training/checkpoint';
import {ConfigError} from '../training/config';
import {TrainingDivergedError} from '../training/trainer';
import {version} from '../version';
import {cmdAnalyze} from './analyze';
import {cmdConvert, cmdExport} from './convert';
import {cmdEval} from './eval';
import {cmdFinetune} from './finetune';
import {parseFlags, UsageError} from './flags';
import {cmdInfo} from './info';
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
