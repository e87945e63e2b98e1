/**
 * Builds the ViT described by a TrainConfig with the project's models.vit (logits output),
 * deterministically: the caller passes the seeded generator (RandomSource) that tfjs'
 * initialisers draw their seeds from while the model is built.
 */
import * as tfl from '@tensorflow/tfjs-layers';

import {vit, ViTArgs} from '../models/index';
import {RandomSource, Rng, withMathRandom} from '../data/rng';
import {ConfigError, MAX_PATCHES, TrainConfig} from './config';
import {decayApplies, isKArAtWeight} from './select';

/**
 * A model given by its tfjs layers topology (model.toJSON()), e.g. a fine-tuned model whose
 * architecture came from a model.json rather than from the training configuration.
 */
export interface TopologySpec {
  topology: object;
  imageSize: [number, number];
  channels: number;
  numClasses: number;
}

/** JSON-serialisable model description stored in checkpoints. */
export type ModelSpec = ViTArgs | TopologySpec;

export function isTopologySpec(spec: unknown): spec is TopologySpec {
  return spec != null && typeof spec === 'object' && 'topology' in spec;
}

/** Number of classes of the model a spec describes. */
export function specNumClasses(spec: ModelSpec): number {
  return spec.numClasses;
}

export function modelSpecFor(cfg: TrainConfig, data: {height: number, width: number, channels: number, numClasses: number}): ViTArgs {
  if (data.height % cfg.patchSize !== 0 || data.width % cfg.patchSize !== 0) {
    throw new ConfigError(`'patch-size' ${cfg.patchSize} does not divide the image size ${data.height}x${data.width}; choose a divisor of ${data.height}`);
  }
  const patches = (data.height / cfg.patchSize) * (data.width / cfg.patchSize);
  if (patches > MAX_PATCHES) {
    throw new ConfigError(`${data.height}x${data.width} images in ${cfg.patchSize}x${cfg.patchSize} patches make ${patches} tokens, ` +
                          `more than ${MAX_PATCHES} (attention costs tokens^2): raise 'patch-size' or lower 'image-size'`);
  }
  return {
    dim: cfg.dim, depth: cfg.depth, heads: cfg.heads, mlpRatio: cfg.mlpRatio,
    imageSize: data.height === data.width ? data.height : [data.height, data.width],
    patchSize: cfg.patchSize, channels: data.channels, numClasses: data.numClasses,
    attention: cfg.attention === 'softmax' ? 'softmax' : {type: 'fourier', grid: cfg.grid, rank: cfg.rank, mode: cfg.mode},
    dropPath: cfg.dropPath, classifierActivation: 'linear',
  };
}

export type {RandomSource};
export {withMathRandom};

/** The seeded generator that initialises the model of a run with seed `seed`. */
export function initRandom(seed: number): RandomSource {
  const rng = new Rng(seed ^ 0x1badb002);
  return () => rng.uniform();
}

/** @deprecated use withMathRandom, which also takes an async `fn` (Math.random is `random` until its promise settles). */
export async function withMathRandomAsync<T>(random: RandomSource | Rng, fn: () => Promise<T>): Promise<T> {
  return withMathRandom(random, fn);
}

/** The ViT of `spec`, its weights initialised from `random` (a seed: that seed's initRandom). */
export function buildModel(spec: ViTArgs, random: RandomSource | number): tfl.LayersModel {
  return withMathRandom(typeof random === 'number' ? initRandom(random) : random, () => vit(spec));
}

/**
 * Builds the model of any spec (a ViT configuration or a layers topology), its weights
 * initialised from `random` (a seed: that seed's initRandom).
 */
export async function modelFromSpec(spec: ModelSpec, random: RandomSource | number): Promise<tfl.LayersModel> {
  const source = typeof random === 'number' ? initRandom(random) : random;
  if (!isTopologySpec(spec)) return buildModel(spec, source);
  return withMathRandom(source, () => tfl.models.modelFromJSON({modelTopology: spec.topology} as never));
}

/** Parameter count (unique variables). */
export function countParams(model: tfl.LayersModel): number {
  const seen = new Set<number>();
  let n = 0;
  for (const w of model.weights) {
    const v = w.read();
    if (seen.has(v.id)) continue;
    seen.add(v.id);
    n += v.size;
  }
  return n;
}

/** Grouping rule of one weight: no decay on biases, norms, embeddings, KArAt coefficients. */
export function paramRule(name: string, rank: number, cfg: TrainConfig): {decay: boolean, lrScale: number, group: string} {
  if (isKArAtWeight(name)) {
    return {decay: cfg.karatDecay, lrScale: cfg.karatLr > 0 ? cfg.karatLr / cfg.lr : 1, group: 'karat'};
  }
  const decay = decayApplies(name, rank);
  return {decay, lrScale: 1, group: decay ? 'decay' : 'no_decay'};
}
