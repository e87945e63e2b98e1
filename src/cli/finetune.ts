/**
 * `karat finetune`: a pretrained tfjs ViT (model.json — models.vit or a converted Keras ViT
 * with MultiHeadAttention layers —, a karat run folder, or a .ckpt), its attention swapped
 * (adaptForFinetune: every weight with a counterpart kept, KArAt operators initialised, a
 * new head when the class count differs, position embeddings resampled when the image size
 * differs), then trained with the same recipe, checkpoints, resume, logs and plots as
 * `karat train` (runTraining).
 */
import {existsSync, statSync} from 'node:fs';
import {join} from 'node:path';

import type * as tfl from '@tensorflow/tfjs-layers';

import {Rng} from '../data/rng';
import {adaptForFinetune, describeViT, FinetuneAdaptation} from '../finetune';
import {PosEmbedInterpolation} from '../models/pos_embedding';
import {fileSystem} from '../io/node';
import {vitFromSafetensors} from '../io/torch_vit';
import {selectBackend} from '../training/backend';
import {loadCheckpointModel, readCheckpoint} from '../training/checkpoint';
import {FIELD_KINDS, kebab, resolveConfig, TrainConfig} from '../training/config';
import {runStamp} from '../training/run_dir';
import {ModelFactory, StartInfo} from '../training/trainer';
import type {SwapSource} from '../swap';
import {DEFAULT_MAX_BYTES, readFileChecked} from './convert';
import {commandFlags, UsageError} from './flags';
import {readConfigFile, runTraining} from './train';

/** Defaults of fine-tuning that differ from karat train's (flags and --config still override). */
export const FINETUNE_DEFAULTS: Partial<TrainConfig> = {epochs: 5, lr: 5e-4, minLr: 1e-5};

/** Architecture flags of karat train that the pretrained model fixes. */
const ARCH_FLAGS = ['preset', 'dim', 'depth', 'heads', 'mlpRatio', 'patchSize'] as const;

const BOOLEANS = new Set([...Object.entries(FIELD_KINDS).filter(([, v]) => v === 'bool').map(([k]) => k), 'help', 'allowInitialised']);

export function finetuneHelp(): string {
  return [
    'usage: karat finetune --model <model.json | run folder | file.ckpt | vit.safetensors> [--attention fourier|softmax] [--grid G] [--rank r]',
    '                      [--mode blockwise|universal] [--interpolation bicubic|bilinear] [--allow-initialised]',
    '                      [--freeze SPEC] [--layer-decay D] [--new-param-lr LR] [every karat train flag]',
    '',
    'Swaps the attention of a pretrained tfjs ViT (every weight with a counterpart kept bit for bit, KArAt',
    'operators initialised), gives it a new head when the dataset has another class count and resamples its',
    'position embedding when the image size differs, then trains it as karat train does.',
    '',
    '  --model               model.json (models.vit or a converted Keras ViT), a karat run folder (its',
    '                        model/model.json, else last.ckpt), a .ckpt checkpoint, or a PyTorch (timm) ViT',
    '                        .safetensors file (as karat convert reads it; with --heads N or --arch NAME',
    '                        when the file is not one that karat export wrote)',
    '  --interpolation       position-embedding resampling on the patch grid: bicubic (default) | bilinear',
    '  --allow-initialised   accept a swap that discards trained weights (KArAt operators that do not fit)',
    '  --freeze              weights not to train: all-but-<karat|head|new|norm|attention>[-and-...], globs over',
    '                        weight names (block0_*), /regex/; comma-separated',
    '  --layer-decay         layer-wise lr decay d: block i of L at d^(L-i) x lr, embeddings d^(L+1), head 1',
    '  --new-param-lr        learning rate of the new weights (KArAt operators, a new head); 0 = as the rest',
    `  --warmup-epochs       default for fine-tuning: a tenth of --epochs`,
    `  defaults that differ from karat train: ${Object.entries(FINETUNE_DEFAULTS).map(([k, v]) => `--${kebab(k)} ${v}`).join(', ')}`,
    '  --dim, --depth, --heads, --mlp-ratio, --patch-size and --preset come from the model and are not accepted',
    '  (except --heads with a .safetensors --model).',
    '',
    "'karat train --help' lists every training flag.",
  ].join('\n');
}

/**
 * Resolves --model to a source for adaptForFinetune (a checkpoint or a PyTorch/timm
 * .safetensors file is loaded into a model; `torch` are the conversion's heads/arch options).
 */
export async function loadFinetuneSource(path: string, torch: {heads?: number, arch?: string} = {}):
    Promise<{source: SwapSource, file: string, dispose: () => void}> {
  if (!existsSync(path)) throw new UsageError(`--model: '${path}' does not exist`);
  if (path.endsWith('.safetensors')) {
    const model = vitFromSafetensors(readFileChecked(path, DEFAULT_MAX_BYTES, '--model'), torch);
    let disposed = false;
    return {source: model, file: path, dispose: () => {
      if (!disposed) model.dispose();
      disposed = true;
    }};
  }
  let file = path;
  if (statSync(path).isDirectory()) {
    const candidates = [join(path, 'model.json'), join(path, 'model', 'model.json'), join(path, 'last.ckpt')];
    const found = candidates.find((c) => existsSync(c));
    if (!found) throw new UsageError(`--model: folder '${path}' has no model.json, model/model.json or last.ckpt`);
    file = found;
  }
  if (file.endsWith('.ckpt')) {
    const {model} = await loadCheckpointModel(file);
    let disposed = false;
    return {source: model, file, dispose: () => {
      if (!disposed) model.dispose();
      disposed = true;
    }};
  }
  if (file.endsWith('.json')) {
    let artifacts;
    try {
      artifacts = await fileSystem(file).load();
    } catch (e) {
      // the handler's refusals (confinement, sizes, JSON) are about the user's file: one line
      throw new UsageError(`--model: ${(e as Error).message}`);
    }
    return {source: artifacts, file, dispose: () => undefined};
  }
  throw new UsageError(`--model: '${path}' is not a model.json, a run folder, a .ckpt checkpoint or a .safetensors file`);
}

/** The random source of a fine-tuning run's new weights for `seed` (the initial model is reproducible). */
export function finetuneRandom(seed: number): () => number {
  const rng = new Rng(seed ^ 0x5eed0f7e);
  return () => rng.uniform();
}

function attentionName(a: TrainConfig): string {
  return a.attention === 'softmax' ? 'softmax' : `G${a.grid}${a.mode === 'blockwise' ? 'B' : 'U'}`;
}

function list(names: string[]): string {
  return names.length ? names.join(', ') : '-';
}

/** The adaptation report printed before training. */
export function formatAdaptation(a: FinetuneAdaptation, from: string): string {
  const size = (s: {imageSize: [number, number], channels: number, numClasses: number, tokens: number | null}) =>
    `${s.imageSize.join('x')}x${s.channels}, ${s.numClasses} classes${s.tokens != null ? `, ${s.tokens} tokens` : ''}`;
  const shapeOf = (n: string) => a.model.weights.find((w) => w.originalName === n)?.shape.join('x') ?? '?';
  return [
    `finetune: ${from} (${a.fromAttention}, ${size(a.from)}) -> ${a.toAttention}, ${size(a.to)}; attention layers: ${a.attentionLayers.join(', ')}`,
    `  kept (bit-identical): ${a.kept.length} weights: ${list(a.kept)}`,
    `  initialised (KArAt operators): ${a.initialised.length} weights: ${list(a.initialised.map((n) => `${n} [${shapeOf(n)}]`))}`,
    `  replaced: ${a.replaced.length} weights: ${list(a.replaced.map((r) => `${r.name} (${r.how})`))}`,
    ...(a.discarded.length ? [`  discarded (--allow-initialised): ${a.discarded.length} weights: ${list(a.discarded)}`] : []),
    ...a.notes.map((n) => `  note: ${n}`),
  ].join('\n');
}

function describeRun(cfg: TrainConfig, i: StartInfo): string {
  const att = cfg.attention === 'softmax' ? 'softmax attention' : `Fourier-KArAt G${cfg.grid}${cfg.mode === 'blockwise' ? 'B' : 'U'} (rank ${cfg.rank})`;
  const frozen = i.plan.filter((p) => p.frozen);
  const trainable = i.plan.filter((p) => !p.frozen);
  const scales = [...new Set(trainable.map((p) => p.rule.lrScale))].sort((a, b) => b - a);
  return [
    `model: fine-tuned ViT dim ${cfg.dim}, depth ${cfg.depth}, heads ${cfg.heads}, patch ${cfg.patchSize}, ${att}; ${i.params.toLocaleString('en-US')} parameters`,
    `optimiser: ${trainable.length} weights trained${frozen.length && trainable.length <= frozen.length ? ` (${list(trainable.map((p) => p.name))})` : ''}, ` +
    `${frozen.length} frozen${frozen.length && frozen.length < trainable.length ? ` (${list(frozen.map((p) => p.name))})` : ''}; ` +
    `lr multipliers ${scales.map((s) => Number(s.toPrecision(4))).join(', ')}` +
    `${i.plan.some((p) => p.isNew) ? `; new weights: ${i.plan.filter((p) => p.isNew).length}` : ''}`,
  ].join('\n');
}

/** What karat finetune takes from the command line besides karat train's flags (removed from `flags`). */
interface FinetuneArgs {
  modelPath: string | undefined;
  allowInitialised: boolean;
  interpolation: PosEmbedInterpolation;
  configPath: string | undefined;
  /** a PyTorch (timm) .safetensors file does not store its heads: --heads N or --arch NAME */
  torch: {heads?: number, arch?: string};
  resume: string | undefined;
}

function takeFinetuneArgs(flags: Record<string, unknown>): FinetuneArgs {
  const modelPath = flags.model as string | undefined;
  const allowInitialised = flags.allowInitialised === true || flags.allowInitialised === 'true';
  const interpolation = (flags.interpolation ?? 'bicubic') as PosEmbedInterpolation;
  const configPath = flags.config as string | undefined;
  for (const k of ['model', 'allowInitialised', 'interpolation', 'config']) delete flags[k];
  if (interpolation !== 'bicubic' && interpolation !== 'bilinear') {
    throw new UsageError(`karat finetune: --interpolation must be bicubic or bilinear, got '${interpolation}'`);
  }
  const torch: {heads?: number, arch?: string} = {};
  if (modelPath != null && modelPath.endsWith('.safetensors')) {
    if (flags.heads != null) {
      const h = Number(flags.heads);
      if (!Number.isInteger(h) || h < 1) throw new UsageError(`karat finetune: --heads must be an integer >= 1, got '${String(flags.heads)}'`);
      torch.heads = h;
    }
    if (flags.arch != null) torch.arch = String(flags.arch);
    delete flags.heads;
    delete flags.arch;
  } else if (flags.arch != null) {
    throw new UsageError(`karat finetune: --arch applies to a .safetensors --model`);
  }
  for (const k of ARCH_FLAGS) {
    if (k in flags) throw new UsageError(`karat finetune: --${kebab(k)} is fixed by the pretrained model (drop it)`);
  }
  const resume = flags.resume as string | undefined;
  if (resume != null && resume !== 'auto' && modelPath != null) {
    throw new UsageError(`karat finetune: --resume continues a run from its checkpoint; drop --model (or use --resume auto)`);
  }
  if (modelPath == null && (resume == null || resume === 'auto')) {
    throw new UsageError(`karat finetune: --model <model.json | run folder | file.ckpt> is required`);
  }
  return {modelPath, allowInitialised, interpolation, configPath, torch, resume};
}

type FinetuneSource = Awaited<ReturnType<typeof loadFinetuneSource>>;

/**
 * The run's configuration: finetune defaults < the resumed checkpoint's < the model's
 * architecture < --config < the command line. Loads the pretrained model (on the run's
 * backend) when there is one.
 */
async function resolveFinetuneConfig(flags: Record<string, unknown>, args: FinetuneArgs):
    Promise<{cfg: TrainConfig, source: FinetuneSource | null}> {
  const {resume, configPath, modelPath} = args;
  const layers: Array<{from: string, values: Record<string, unknown>}> = [{from: 'finetune defaults', values: {...FINETUNE_DEFAULTS}}];
  if (resume != null && resume !== 'auto') {
    const p = existsSync(resume) && !resume.endsWith('.ckpt') ? join(resume, 'last.ckpt') : resume;
    const saved = {...(readCheckpoint(p).header.trainer.config as Record<string, unknown>)};
    delete saved.resume;
    layers.push({from: `checkpoint ${p}`, values: saved});
  }
  const fileValues = configPath ? readConfigFile(configPath) : {};
  for (const k of ARCH_FLAGS) {
    if (k in fileValues) throw new UsageError(`karat finetune: '${kebab(k)}' in --config ${configPath} is fixed by the pretrained model`);
  }
  if (configPath) layers.push({from: `--config ${configPath}`, values: fileValues});
  layers.push({from: 'command line', values: flags});
  let cfg = resolveConfig(layers);
  let source: FinetuneSource | null = null;
  if (modelPath != null) {
    // the model's weights are tensors: start the backend of the run first
    await selectBackend(cfg.backend);
    source = await loadFinetuneSource(modelPath, args.torch);
    const d = await describeViT(source.source);
    layers.splice(1, 0, {from: `model ${source.file}`, values: {
      dim: d.dim, depth: d.depth, heads: d.heads, ...(d.patchSize != null ? {patchSize: d.patchSize} : {}),
      ...(d.mlpRatio != null ? {mlpRatio: d.mlpRatio} : {}),
    }});
    cfg = resolveConfig(layers);
  }
  if (cfg.dataset !== 'folder' && ('imageSize' in flags || 'imageSize' in fileValues)) {
    throw new UsageError(`karat finetune: --image-size resizes image-folder datasets (--dataset folder); ${cfg.dataset} has a fixed image size`);
  }
  if (!layers.some((l) => l.from !== 'finetune defaults' && 'warmupEpochs' in l.values)) cfg = {...cfg, warmupEpochs: cfg.epochs / 10};
  if (cfg.runName == null) {
    cfg = {...cfg, runName: `finetune-${attentionName(cfg)}-${runStamp()}`};
  }
  return {cfg, source};
}

/** The trainer's model factory: the pretrained model adapted to the dataset and the target attention. */
function finetuneFactory(source: FinetuneSource, cfg: TrainConfig, args: FinetuneArgs): ModelFactory {
  const target = cfg.attention === 'softmax' ? 'softmax' as const : {type: 'fourier' as const, grid: cfg.grid, rank: cfg.rank, mode: cfg.mode};
  return async (data, seed) => {
    const a = await adaptForFinetune(source.source, {
      attention: target, imageSize: [data.height, data.width], channels: data.channels, numClasses: data.numClasses,
      interpolation: args.interpolation, allowInitialised: args.allowInitialised, random: finetuneRandom(seed),
    });
    source.dispose();
    console.log(formatAdaptation(a, source.file));
    const model: tfl.LayersModel = a.model;
    return {
      model, newParams: a.newParams,
      spec: {topology: model.toJSON(null, false) as object, imageSize: a.to.imageSize, channels: a.to.channels, numClasses: a.to.numClasses},
    };
  };
}

export async function cmdFinetune(argv: string[]): Promise<number> {
  const flags = commandFlags('finetune', argv, BOOLEANS);
  if (flags.help) {
    console.log(finetuneHelp());
    return 0;
  }
  const args = takeFinetuneArgs(flags);
  const {cfg, source} = await resolveFinetuneConfig(flags, args);
  const factory = source == null ? undefined : finetuneFactory(source, cfg, args);
  try {
    return await runTraining(cfg, {factory, describeModel: (i) => describeRun(cfg, i)});
  } finally {
    source?.dispose();
  }
}
