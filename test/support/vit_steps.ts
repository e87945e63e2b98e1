/**
 * The "training on backend X follows cpu" check shared by the kernel suites: the same tiny
 * Fourier-KArAt (G3B) ViT, the same initial weights and batch, a few SGD steps.
 */
import {strict as assert} from 'assert';

import * as tf from '@tensorflow/tfjs-core';

import * as karat from '../../src/index';
import {mulberry32, withMathRandom} from '../../src/data/rng';
import {maxErrorOverUnit} from './reference';

const INIT_SEED = 7;

export interface TinyViTSteps {
  /** Input images [4, 8, 8, 3] (flattened) and their 4 labels in [0, 3). */
  imgs: Float32Array;
  labels: number[];
  steps: number;
  lr: number;
}

/**
 * Builds the tiny G3B ViT on `backend` (with the weights `init` when given), runs `steps` SGD
 * steps; returns the losses, the initial and final weights and every kernel that ran.
 */
export async function trainTinyViT(backend: string, init: Float32Array[] | null, o: TinyViTSteps) {
  await tf.setBackend(backend);
  // Seeded initial weights: the same start in every run, so "the cpu loss falls" is not left to chance.
  const model = withMathRandom(mulberry32(INIT_SEED), () => karat.models.vit({
    dim: 16, depth: 2, heads: 2, imageSize: 8, patchSize: 4, numClasses: 3,
    classifierActivation: 'linear',
    attention: {type: 'fourier', grid: 3, rank: 4, mode: 'blockwise'},
  }));
  const weights = model.getWeights();
  if (init != null) model.setWeights(init.map((v, i) => tf.tensor(v, weights[i].shape)));
  // getWeights() returns the live variables: copy the initial values before training.
  const initial = init ?? await Promise.all(weights.map((w) => w.data() as Promise<Float32Array>));
  const x = tf.tensor4d(o.imgs, [4, 8, 8, 3]);
  const y = tf.oneHot(tf.tensor1d(o.labels, 'int32'), 3);
  const opt = tf.train.sgd(o.lr);
  const losses: number[] = [];
  const kernels = new Set<string>();
  for (let s = 0; s < o.steps; s++) {
    const info = await tf.profile(async () => {
      const loss = opt.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x) as tf.Tensor), true)!;
      losses.push((await loss.data())[0]);
      loss.dispose();
    });
    info.kernelNames.forEach((k) => kernels.add(k));
  }
  const final = await Promise.all(model.getWeights().map((w) => w.data() as Promise<Float32Array>));
  tf.dispose([x, y]);
  opt.dispose();
  model.dispose();
  return {losses, final, initial, kernels};
}

export type TinyViTRun = Awaited<ReturnType<typeof trainTinyViT>>;

/**
 * `got`, trained on `backend` from cpu's initial weights, follows `cpu`: every step's loss
 * within 1e-4 · max(1, |loss|), the cpu loss falls, every final weight within 1e-4 over unit.
 */
export function expectFollowsCpu(backend: string, got: TinyViTRun, cpu: TinyViTRun): void {
  const steps = cpu.losses.length;
  assert.equal(got.losses.length, steps, `${backend} ran ${got.losses.length} steps, cpu ${steps}`);
  for (let s = 0; s < steps; s++) {
    assert.ok(Math.abs(got.losses[s] - cpu.losses[s]) < 1e-4 * Math.max(1, Math.abs(cpu.losses[s])),
        `step ${s}: loss ${backend} ${got.losses[s]} vs cpu ${cpu.losses[s]}`);
  }
  assert.ok(cpu.losses[steps - 1] < cpu.losses[0], `loss did not decrease: ${cpu.losses.join(', ')}`);
  for (let i = 0; i < cpu.final.length; i++) {
    const err = maxErrorOverUnit(got.final[i], cpu.final[i]);
    assert.ok(err < 1e-4, `weight ${i}: relative error ${err.toExponential(2)}`);
  }
}
