/** `karat analyze` (src/cli/analyze.ts) end to end on a tiny checkpointed ViT, cpu backend. */
import * as assert from 'node:assert/strict';
import {existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import {PNG} from 'pngjs';

import '../src/node';
import {encodePNG} from '../src/analysis/index';
import {cmdAnalyze} from '../src/cli/analyze';
import {readWeights, writeCheckpoint} from '../src/training/checkpoint';
import {buildModel, ModelSpec} from '../src/training/model';
import {randomArray} from './support/reference';

const SPEC: ModelSpec = {
  dim: 8, depth: 2, heads: 2, mlpRatio: 2, imageSize: 32, patchSize: 8, channels: 3, numClasses: 10,
  attention: {type: 'fourier', grid: 2, rank: 3, mode: 'blockwise'}, classifierActivation: 'linear',
};

async function quiet<T>(fn: () => Promise<T>): Promise<{value: T, out: string}> {
  const log = console.log;
  const lines: string[] = [];
  console.log = (...a: unknown[]) => lines.push(a.join(' '));
  try {
    return {value: await fn(), out: lines.join('\n')};
  } finally {
    console.log = log;
  }
}

describe('karat analyze (cli, cpu)', function() {
  this.timeout(120000);
  let dir = '';

  before(async () => {
    await tf.setBackend('cpu');
    dir = mkdtempSync(join(tmpdir(), 'karat-analyze-'));
    const model = buildModel(SPEC, 1);
    const {entries, data} = await readWeights(model);
    mkdirSync(join(dir, 'path'));
    // Three checkpoints of a fake "run": the weights moved along two random directions.
    const d1 = data.map((w, i) => randomArray(w.length, 100 + i, 0.05));
    const d2 = data.map((w, i) => randomArray(w.length, 200 + i, 0.05));
    [[2, 1], [1, 2], [0, 0]].forEach(([a, b], k) => {
      const weights = data.map((w, i) => Float32Array.from(w, (v, j) => v + a * d1[i][j] + b * d2[i][j]));
      writeCheckpoint(join(dir, 'path', `step${k}.ckpt`), {
        header: {format: 1, createdAt: new Date(0).toISOString(), modelSpec: SPEC, weights: entries, optimizer: null,
                 trainer: {epoch: k, step: 10 * k, normalisation: {mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]},
                           config: {dataset: 'cifar10-subset'}},
                 weightFloats: 0, optimizerFloats: 0},
        weights, optimizer: null,
      });
    });
    for (let i = 0; i < 2; i++) {
      const px = Uint8Array.from(randomArray(40 * 40 * 3, 7 + i), v => Math.floor((v + 1) * 127));
      writeFileSync(join(dir, `img${i}.png`), encodePNG(px, 40, 40, 3));
    }
    model.dispose();
  });

  after(() => {
    if (dir) rmSync(dir, {recursive: true, force: true});
  });

  it('writes maps, spectra, curves and weight histograms for image files', async () => {
    const out = join(dir, 'out1');
    const {value, out: log} = await quiet(() => cmdAnalyze([
      '--checkpoint', join(dir, 'path', 'step2.ckpt'), '--image', `${join(dir, 'img0.png')},${join(dir, 'img1.png')}`,
      '--out', out, '--backend', 'cpu', '--curves', '1:1:0:0,1:1:2:5']));
    assert.equal(value, 0);
    assert.match(log, /wrote \d+ files/);
    for (const f of ['attention/index.html', 'attention/img1_block1_head1.png', 'attention/img0_rollout.png',
      'spectra/block0.svg', 'spectra/block1.svg', 'curves.svg', 'weights.svg', 'summary.json']) {
      assert.ok(existsSync(join(out, f)), f);
    }
    const png = PNG.sync.read(readFileSync(join(out, 'attention/img0_rollout.png')));
    assert.equal(png.width, 32 * 4);
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    assert.equal(summary.blocks.length, 2);
    assert.equal(summary.curves[0].pairs.length, 2);
    assert.equal(summary.weights.fourierA.count, 2 * 2 * 3 * 17 * 2);
    const curves = readFileSync(join(out, 'curves.svg'), 'utf8');
    assert.match(curves, /head 1, p=2, q=5/);
  });

  it('draws the loss landscape of a checkpoint path on dataset images', async function() {
    const out = join(dir, 'out2');
    let r;
    try {
      r = await quiet(() => cmdAnalyze([
        '--checkpoint', join(dir, 'path', 'step2.ckpt'), '--path', join(dir, 'path'), '--what', 'landscape',
        '--resolution', '3', '--landscape-examples', '8', '--images', '2', '--out', out, '--backend', 'cpu']));
    } catch (e) {
      if (/cifar10-subset|embedded|subset/i.test(String((e as Error).message))) {
        console.log(`    [skip] no CIFAR-10 subset available: ${(e as Error).message}`);
        this.skip();
      }
      throw e;
    }
    assert.equal(r.value, 0);
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    assert.equal(summary.landscape.checkpoints.length, 3);
    assert.ok(summary.landscape.explained[0] + summary.landscape.explained[1] > 0.999);
    assert.ok(Number.isFinite(summary.landscape.minLoss));
    assert.match(readFileSync(join(out, 'landscape.svg'), 'utf8'), /optimiser path \(3 checkpoints\)/);
  });

  it('rejects bad usage with clear messages', async () => {
    await assert.rejects(cmdAnalyze(['--out', dir]), /exactly one of --checkpoint FILE or --model PATH/);
    await assert.rejects(cmdAnalyze(['--model', 'x', '--what', 'maps,nope']), /--what must list some of maps/);
    await assert.rejects(cmdAnalyze(['--model', 'x', '--bogus', '1']), /unknown flag --bogus/);
    await assert.rejects(cmdAnalyze(['--checkpoint', join(dir, 'path', 'step2.ckpt'), '--what', 'landscape']), /needs --path/);
  });
});
