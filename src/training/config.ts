/**
 * The training configuration (every CLI flag maps to one field), the presets, and
 * validation with clear errors. Precedence: defaults < preset < --config file < flags.
 */
import {DATASET_NAMES, KnownDataset} from '../data/registry';

/** The dataset names, as the data registry knows them. */
export type DatasetName = KnownDataset;
export const DATASETS: readonly DatasetName[] = DATASET_NAMES;

export type BackendChoice = 'auto' | 'cpu' | 'wasm' | 'webgpu' | 'webgl' | 'tensorflow';
export const BACKENDS: readonly BackendChoice[] = ['auto', 'cpu', 'wasm', 'webgpu', 'webgl', 'tensorflow'];

export interface TrainConfig {
  preset: string | null;
  // data
  dataset: DatasetName;
  dataDir: string | null;
  download: boolean;
  /** Use only the first N training / test examples (0 = all). */
  trainLimit: number;
  testLimit: number;
  /** Hold out the last N training examples as a fixed validation set (0 = none). */
  valSplit: number;
  /** Image size for image folders (square); other datasets have fixed sizes. */
  imageSize: number;
  // model
  model: string;  // 'custom' or a paper preset 'tiny' | 'small' | 'base'
  dim: number;
  depth: number;
  heads: number;
  mlpRatio: number;
  patchSize: number;
  attention: 'softmax' | 'fourier';
  grid: number;
  rank: number;
  mode: 'blockwise' | 'universal';
  dropPath: number;
  // optimisation
  epochs: number;
  batchSize: number;
  evalBatchSize: number;
  lr: number;
  minLr: number;
  warmupEpochs: number;
  warmupLr: number;
  weightDecay: number;
  /** Learning rate of KArAt parameters (0 = same as lr). */
  karatLr: number;
  /** Apply weight decay to KArAt coefficients too. */
  karatDecay: boolean;
  beta1: number;
  beta2: number;
  clipGrad: number;
  /** Weights not to train (see param_groups.ts): 'all-but-karat-and-head', globs, /regex/. */
  freeze: string | null;
  /** Layer-wise learning-rate decay (1 = off). */
  layerDecay: number;
  /** Learning rate of weights created for fine-tuning (0 = the same rules as the others). */
  newParamLr: number;
  // augmentation
  cropPadding: number;
  hflip: boolean;
  mixup: number;
  cutmix: number;
  mixProb: number;
  switchProb: number;
  labelSmoothing: number;
  randomErasing: number;
  // run
  seed: number;
  backend: BackendChoice;
  outDir: string;
  runName: string | null;
  resume: string | null;
  /** Replace the outputs of an existing run folder of the same name (instead of refusing it). */
  overwrite: boolean;
  prefetch: number;
  /** Stop each epoch after this many steps (0 = full epoch); for quick budgets. */
  stepsPerEpoch: number;
  /** Progress output: 'auto' (bar on a TTY, lines otherwise), 'bar', 'lines', 'none'. */
  progress: 'auto' | 'bar' | 'lines' | 'none';
  /** Also keep a weights-only checkpoint per epoch in <run>/epochs/ (for `karat analyze --path`). */
  keepEpochCheckpoints: boolean;
}

export const DEFAULTS: TrainConfig = {
  preset: null,
  dataset: 'cifar10-subset', dataDir: null, download: false, trainLimit: 0, testLimit: 0, valSplit: 0, imageSize: 32,
  model: 'custom', dim: 64, depth: 4, heads: 4, mlpRatio: 2, patchSize: 4,
  attention: 'fourier', grid: 3, rank: 12, mode: 'blockwise', dropPath: 0,
  epochs: 10, batchSize: 64, evalBatchSize: 250, lr: 1e-3, minLr: 1e-5, warmupEpochs: 1, warmupLr: 1e-6,
  weightDecay: 0.05, karatLr: 0, karatDecay: false, beta1: 0.9, beta2: 0.999, clipGrad: 1.0,
  freeze: null, layerDecay: 1, newParamLr: 0,
  cropPadding: 4, hflip: true, mixup: 0.8, cutmix: 1.0, mixProb: 1.0, switchProb: 0.5, labelSmoothing: 0.1, randomErasing: 0,
  seed: 42, backend: 'auto', outDir: 'runs', runName: null, resume: null, overwrite: false, prefetch: 2, stepsPerEpoch: 0,
  progress: 'auto', keepEpochCheckpoints: false,
};

/** Presets: partial configs applied over the defaults. */
export const PRESETS: Record<string, {description: string, config: Partial<TrainConfig>}> = {
  'quick': {
    description: 'small Fourier-KArAt ViT (G3B) on the embedded CIFAR-10 subset; under 10 minutes on 2 CPU cores',
    config: {
      dataset: 'cifar10-subset', model: 'custom', dim: 48, depth: 2, heads: 4, mlpRatio: 2, patchSize: 8,
      attention: 'fourier', grid: 3, rank: 12, mode: 'blockwise',
      epochs: 2, batchSize: 50, stepsPerEpoch: 80, lr: 2e-3, minLr: 1e-4, warmupEpochs: 0.2, weightDecay: 0.05,
      mixup: 0, cutmix: 0, labelSmoothing: 0, randomErasing: 0, clipGrad: 1.0,
    },
  },
  'cifar10-paper': {
    description: 'the paper\'s CIFAR-10 recipe: ViT-Tiny + Fourier-KArAt G3B, 32x32 patch 4, 100 epochs, DeiT augmentation',
    config: {
      dataset: 'cifar10', model: 'tiny', patchSize: 4, attention: 'fourier', grid: 3, rank: 12, mode: 'blockwise',
      epochs: 100, batchSize: 128, lr: 5e-4 * 128 / 512, minLr: 1e-5, warmupEpochs: 5, weightDecay: 0.05,
      mixup: 0.8, cutmix: 1.0, labelSmoothing: 0.1, randomErasing: 0.25, clipGrad: 0, dropPath: 0.1,
    },
  },
  'cifar100-paper': {
    description: 'the paper\'s CIFAR-100 recipe: ViT-Tiny + Fourier-KArAt G3B, 32x32 patch 4, 100 epochs, DeiT augmentation',
    config: {
      dataset: 'cifar100', model: 'tiny', patchSize: 4, attention: 'fourier', grid: 3, rank: 12, mode: 'blockwise',
      epochs: 100, batchSize: 128, lr: 5e-4 * 128 / 512, minLr: 1e-5, warmupEpochs: 5, weightDecay: 0.05,
      mixup: 0.8, cutmix: 1.0, labelSmoothing: 0.1, randomErasing: 0.25, clipGrad: 0, dropPath: 0.1,
    },
  },
};

/** Paper model sizes (spec §6) and the grid the paper found best for each. */
export const PAPER_MODELS: Record<string, {dim: number, depth: number, heads: number, mlpRatio: number, grid: number}> = {
  tiny: {dim: 192, depth: 12, heads: 3, mlpRatio: 4, grid: 3},
  small: {dim: 384, depth: 12, heads: 6, mlpRatio: 4, grid: 3},
  base: {dim: 768, depth: 12, heads: 12, mlpRatio: 4, grid: 1},
};

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** How a config field is parsed from a flag or a config file. */
export type FieldKind = 'number' | 'int' | 'bool' | 'string' | 'nullable-string';

/** The type of each config field (drives flag parsing, config files and validation). */
export const FIELD_KINDS: Record<keyof TrainConfig, FieldKind> = {
  preset: 'nullable-string', dataset: 'string', dataDir: 'nullable-string', download: 'bool', trainLimit: 'int', testLimit: 'int', valSplit: 'int',
  imageSize: 'int', model: 'string', dim: 'int', depth: 'int', heads: 'int', mlpRatio: 'number', patchSize: 'int',
  attention: 'string', grid: 'int', rank: 'int', mode: 'string', dropPath: 'number', epochs: 'int', batchSize: 'int',
  evalBatchSize: 'int', lr: 'number', minLr: 'number', warmupEpochs: 'number', warmupLr: 'number', weightDecay: 'number',
  karatLr: 'number', karatDecay: 'bool', beta1: 'number', beta2: 'number', clipGrad: 'number', freeze: 'nullable-string', layerDecay: 'number',
  newParamLr: 'number', cropPadding: 'int',
  hflip: 'bool', mixup: 'number', cutmix: 'number', mixProb: 'number', switchProb: 'number', labelSmoothing: 'number',
  randomErasing: 'number', seed: 'int', backend: 'string', outDir: 'string', runName: 'nullable-string',
  resume: 'nullable-string', overwrite: 'bool', prefetch: 'int', stepsPerEpoch: 'int', progress: 'string',
  keepEpochCheckpoints: 'bool',
};

/** One-line help per field (the CLI's --help and the flag table of docs/training.md come from here). */
export const FIELD_HELP: Record<keyof TrainConfig, string> = {
  preset: `preset: ${Object.keys(PRESETS).join(' | ')}`,
  dataset: `dataset: ${DATASETS.join(' | ')}`,
  dataDir: 'directory or archive of the dataset (CIFAR .tar.gz or extracted dir, IDX dir, image folder)',
  download: 'download CIFAR-10/100 or Fashion-MNIST from the official location (SHA-256 verified)',
  trainLimit: 'use only the first N training examples (0 = all)',
  testLimit: 'use only the first N test examples (0 = all)',
  valSplit: 'hold out the last N training examples (after --train-limit) as a fixed validation set, the same for every seed; best.ckpt is then chosen on validation top-1',
  imageSize: 'image side for image folders (resized)',
  model: 'model size: custom (use --dim/--depth/--heads/--mlp-ratio) | tiny | small | base',
  dim: 'embedding width (custom model)', depth: 'number of encoder blocks (custom model)',
  heads: 'attention heads (custom model)', mlpRatio: 'MLP hidden width / dim (custom model)',
  patchSize: 'patch side in pixels',
  attention: 'attention: softmax | fourier (Fourier-KArAt)',
  grid: 'Fourier-KArAt grid size G', rank: 'Fourier-KArAt rank r', mode: 'Fourier-KArAt sharing: blockwise | universal',
  dropPath: 'stochastic depth rate',
  epochs: 'number of epochs', batchSize: 'training batch size', evalBatchSize: 'evaluation batch size',
  lr: 'peak learning rate (AdamW)', minLr: 'final learning rate of the cosine decay',
  warmupEpochs: 'linear warm-up length in epochs (fractions allowed)', warmupLr: 'learning rate at the start of warm-up',
  weightDecay: 'decoupled weight decay (not on biases, norms, embeddings, KArAt coefficients)',
  karatLr: 'separate learning rate for KArAt parameters (0 = same as --lr)',
  karatDecay: 'apply weight decay to KArAt coefficients too',
  beta1: 'AdamW β1', beta2: 'AdamW β2', clipGrad: 'clip gradients to this global L2 norm (0 = off)',
  freeze: 'weights not to train: all-but-<karat|head|new|norm|attention>[-and-...], globs over weight names (block0_*), /regex/; comma-separated',
  layerDecay: 'layer-wise learning-rate decay d: block i of L trains at d^(L-i) x lr, embeddings d^(L+1), head 1 (1 = off)',
  newParamLr: 'learning rate of weights created by karat finetune (KArAt operators, a new head); 0 = same rules as the rest',
  cropPadding: 'random-crop zero padding in pixels (0 = no crop)', hflip: 'random horizontal flip',
  mixup: 'mixup Beta(α, α) α (0 = off)', cutmix: 'cutmix Beta(α, α) α (0 = off)',
  mixProb: 'probability of mixup/cutmix per batch', switchProb: 'probability of cutmix over mixup when both are on',
  labelSmoothing: 'label smoothing ε', randomErasing: 'random-erasing probability per image (0 = off)',
  seed: 'random seed (data order, augmentation, initialisation)',
  backend: `tfjs backend: ${BACKENDS.join(' | ')}`,
  outDir: 'directory for runs', runName: 'run name (default: preset/model and a timestamp)',
  resume: "resume from a checkpoint file, a run directory, or 'auto' (the run's last.ckpt if present)",
  overwrite: 'replace the outputs of an existing run folder of the same name (without it such a run is refused)',
  prefetch: 'batches prepared ahead of training', stepsPerEpoch: 'stop each epoch after N steps (0 = full epoch)',
  progress: 'progress output: auto | bar | lines | none',
  keepEpochCheckpoints: 'keep a weights-only checkpoint per epoch in <run>/epochs/ (loss landscape: karat analyze --path <run>/epochs)',
};

/** Own (not inherited) property test: config keys and names from users never match Object.prototype members. */
export function hasOwn(o: object, k: string): boolean {
  return Object.prototype.hasOwnProperty.call(o, k);
}

/** Largest image side (--image-size) and most patches per image a configuration may ask for. */
export const MAX_IMAGE_SIZE = 4096;
export const MAX_PATCHES = 4096;

/**
 * Bounds of every size a configuration sets, checked before anything is built, whatever the
 * source of the value (defaults, preset, config file, flags, a resumed checkpoint). The
 * largest paper model (ViT-Base: dim 768, depth 12, heads 12, MLP ratio 4) is well inside.
 */
export const SIZE_BOUNDS = {
  dim: 4096, depth: 128, heads: 256, mlpRatio: 16, patchSize: 1024, grid: 64, rank: 4096,
  epochs: 1_000_000, batchSize: 65536, evalBatchSize: 65536, prefetch: 64,
} as const;
/** Most parameters (before KArAt operators) a configured ViT may have: 2^31, 8 GiB of float32. */
export const MAX_MODEL_PARAMS = 2 ** 31;

export function kebab(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** Converts and checks one value for `key`; `from` names where it came from. */
export function coerceField(key: keyof TrainConfig, value: unknown, from: string): unknown {
  const kind = FIELD_KINDS[key];
  const bad = (want: string) => new ConfigError(`${from}: '${kebab(key)}' must be ${want}, got ${JSON.stringify(value)}`);
  switch (kind) {
    case 'bool':
      if (typeof value === 'boolean') return value;
      if (value === 'true' || value === '1' || value === 'yes') return true;
      if (value === 'false' || value === '0' || value === 'no') return false;
      throw bad('true or false');
    case 'int': {
      const n = typeof value === 'string' ? (value.trim() === '' ? NaN : Number(value)) : value;
      if (typeof n !== 'number' || !Number.isInteger(n)) throw bad('an integer');
      return n;
    }
    case 'number': {
      const n = typeof value === 'string' ? (value.trim() === '' ? NaN : Number(value)) : value;
      if (typeof n !== 'number' || !Number.isFinite(n)) throw bad('a number');
      return n;
    }
    case 'string':
      if (typeof value !== 'string' || value === '') throw bad('a string');
      return value;
    case 'nullable-string':
      if (value === null) return null;
      if (typeof value !== 'string') throw bad('a string');
      return value;
  }
}

/** Merges defaults, preset, file and flag layers, then validates the result. */
export function resolveConfig(layers: Array<{from: string, values: Record<string, unknown>}>): TrainConfig {
  const presetName = [...layers].reverse().map((l) => l.values.preset).find((p) => p != null) as string | undefined;
  let cfg: TrainConfig = {...DEFAULTS};
  if (presetName != null) {
    const p = hasOwn(PRESETS, presetName) ? PRESETS[presetName] : undefined;
    if (!p) throw new ConfigError(`unknown preset '${presetName}'; known presets: ${Object.keys(PRESETS).join(', ')}`);
    cfg = {...cfg, ...p.config, preset: presetName};
  }
  for (const layer of layers) {
    for (const [k, v] of Object.entries(layer.values)) {
      if (!hasOwn(FIELD_KINDS, k)) {
        const hint = Object.keys(FIELD_KINDS).find((f) => f.toLowerCase() === k.toLowerCase().replace(/-/g, ''));
        throw new ConfigError(`${layer.from}: unknown option '${k}'${hint ? ` (did you mean '${kebab(hint)}'?)` : ''}`);
      }
      (cfg as unknown as Record<string, unknown>)[k] = coerceField(k as keyof TrainConfig, v, layer.from);
    }
  }
  // a paper model size sets the architecture (explicit layers still override dims above only for custom)
  if (cfg.model !== 'custom') {
    const m = hasOwn(PAPER_MODELS, cfg.model) ? PAPER_MODELS[cfg.model] : undefined;
    if (!m) throw new ConfigError(`unknown model '${cfg.model}'; expected custom, ${Object.keys(PAPER_MODELS).join(', ')}`);
    cfg = {...cfg, dim: m.dim, depth: m.depth, heads: m.heads, mlpRatio: m.mlpRatio};
  }
  validate(cfg);
  return cfg;
}

export function validate(c: TrainConfig): void {
  const err = (m: string) => {
    throw new ConfigError(m);
  };
  if (!DATASETS.includes(c.dataset)) err(`unknown dataset '${c.dataset}'; expected one of ${DATASETS.join(', ')}`);
  if (!BACKENDS.includes(c.backend)) err(`unknown backend '${c.backend}'; expected one of ${BACKENDS.join(', ')}`);
  if (c.attention !== 'softmax' && c.attention !== 'fourier') err(`unknown attention '${c.attention}'; expected softmax or fourier`);
  if (c.mode !== 'blockwise' && c.mode !== 'universal') err(`unknown mode '${c.mode}'; expected blockwise or universal`);
  if (!['auto', 'bar', 'lines', 'none'].includes(c.progress)) err(`unknown progress '${c.progress}'; expected auto, bar, lines or none`);
  for (const k of ['epochs', 'batchSize', 'evalBatchSize', 'dim', 'depth', 'heads', 'patchSize', 'grid', 'rank', 'prefetch', 'imageSize'] as const) {
    if (!(c[k] >= 1)) err(`'${kebab(k)}' must be >= 1, got ${c[k]}`);
  }
  for (const k of ['trainLimit', 'testLimit', 'valSplit', 'stepsPerEpoch', 'cropPadding', 'lr', 'minLr', 'warmupEpochs', 'warmupLr',
    'weightDecay', 'karatLr', 'newParamLr', 'clipGrad', 'mixup', 'cutmix', 'randomErasing', 'labelSmoothing', 'dropPath', 'mixProb', 'switchProb'] as const) {
    if (!(c[k] >= 0)) err(`'${kebab(k)}' must be >= 0, got ${c[k]}`);
  }
  for (const k of ['labelSmoothing', 'randomErasing', 'mixProb', 'switchProb', 'dropPath'] as const) {
    if (c[k] > 1) err(`'${kebab(k)}' must be <= 1, got ${c[k]}`);
  }
  if (!(c.beta1 >= 0 && c.beta1 < 1) || !(c.beta2 >= 0 && c.beta2 < 1)) err(`'beta1' and 'beta2' must be in [0, 1)`);
  if (c.lr <= 0) err(`'lr' must be > 0, got ${c.lr}`);
  if (!(c.layerDecay > 0 && c.layerDecay <= 1)) err(`'layer-decay' must be in (0, 1], got ${c.layerDecay}`);
  for (const k of Object.keys(SIZE_BOUNDS) as Array<keyof typeof SIZE_BOUNDS>) {
    if (c[k] > SIZE_BOUNDS[k]) err(`'${kebab(k)}' must be <= ${SIZE_BOUNDS[k]}, got ${c[k]}`);
  }
  if (!(c.mlpRatio > 0)) err(`'mlp-ratio' must be > 0, got ${c.mlpRatio}`);
  if (c.heads > c.dim) err(`'heads' (${c.heads}) must not exceed 'dim' (${c.dim})`);
  const params = c.depth * (4 + 2 * c.mlpRatio) * c.dim * c.dim;
  if (params > MAX_MODEL_PARAMS) {
    err(`'dim' ${c.dim} x 'depth' ${c.depth} x 'mlp-ratio' ${c.mlpRatio} makes about ${params.toExponential(2)} parameters, ` +
        `more than ${MAX_MODEL_PARAMS.toExponential(2)} (8 GiB of float32)`);
  }
  if (c.imageSize > MAX_IMAGE_SIZE) err(`'image-size' must be <= ${MAX_IMAGE_SIZE}, got ${c.imageSize}`);
  if (c.patchSize > c.imageSize && c.dataset === 'folder') err(`'patch-size' (${c.patchSize}) must not exceed 'image-size' (${c.imageSize})`);
  if (c.dim % c.heads !== 0) err(`'dim' (${c.dim}) must be divisible by 'heads' (${c.heads})`);
  if (c.runName != null && (c.runName === '' || c.runName === '.' || c.runName === '..' || /[/\\\0]/.test(c.runName))) {
    err(`'run-name' must be a folder name without path separators, got ${JSON.stringify(c.runName)} (use --out-dir for the parent folder)`);
  }
  if (c.seed < 0 || c.seed > 0xffffffff) err(`'seed' must be in [0, 2^32), got ${c.seed}`);
}
