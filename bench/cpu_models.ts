/** The models the CPU benchmarks measure besides the quick preset. */

/** The model and recipe of the CIFAR-10 study (docs/results/study-cifar10/config.json), without its dataset sizes (hflip: on by default on both sides). */
export const STUDY_MODEL = {
  dataset: 'cifar10-subset', model: 'custom', dim: 48, depth: 3, heads: 3, mlpRatio: 2, patchSize: 4, rank: 12, grid: 3, mode: 'blockwise',
  batchSize: 64, lr: 0.002, minLr: 0.0001, warmupEpochs: 0.5, weightDecay: 0.05, cropPadding: 4,
  mixup: 0, cutmix: 0, labelSmoothing: 0.1, randomErasing: 0, clipGrad: 1.0,
} as const;
