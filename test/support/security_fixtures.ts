/**
 * Shared fixtures of the security suites (test/security*.test.ts): a saved tiny softmax ViT
 * folder, a model.json rewrite, and a valid checkpoint of a tiny Fourier-KArAt ViT.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as fs from 'fs';
import * as path from 'path';

import * as karat from '../../src/node';
import {readWeights, writeCheckpoint} from '../../src/training/checkpoint';
import {buildModel} from '../../src/training/model';

export const SMALL = {dim: 8, depth: 1, heads: 2, imageSize: 8, patchSize: 4, numClasses: 3, mlpRatio: 1};

/** Saves a tiny softmax ViT to `<tmp>/<name>/` and returns the folder and its parsed model.json. */
export async function savedModel(tmp: string, name: string): Promise<{dir: string, json: tf.io.ModelJSON}> {
  const dir = path.join(tmp, name);
  const m = karat.models.vit(SMALL);
  await m.save(karat.io.fileSystem(dir));
  m.dispose();
  return {dir, json: JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'))};
}

export function rewrite(dir: string, json: tf.io.ModelJSON, edit: (j: tf.io.ModelJSON) => void): void {
  const j = JSON.parse(JSON.stringify(json)) as tf.io.ModelJSON;
  edit(j);
  fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(j));
}

const SPEC = {...SMALL, attention: {type: 'fourier', grid: 2, rank: 3, mode: 'blockwise'}, classifierActivation: 'linear'} as const;

/** A valid checkpoint of a tiny Fourier-KArAt ViT (weights only). */
export async function tinyCheckpoint(file: string): Promise<void> {
  const m = buildModel(SPEC as never, 1);
  const w = await readWeights(m);
  m.dispose();
  writeCheckpoint(file, {
    header: {format: 2, createdAt: new Date().toISOString(), modelSpec: SPEC, weights: w.entries, optimizer: null,
      trainer: {epoch: 2, step: 6, seed: 7, config: {epochs: 5}}, weightFloats: 0, optimizerFloats: 0},
    weights: w.data, optimizer: null,
  });
}
