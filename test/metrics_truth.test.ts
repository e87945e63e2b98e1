/**
 * A metric never lies: non-finite logits are wrong answers (top-k, confusion matrix), an
 * evaluation with a non-finite loss is reported as diverged and never chosen as best, and
 * `karat eval` of a NaN checkpoint says so. cpu backend, tiny model, 20 test images.
 */
import '@tensorflow/tfjs-backend-cpu';

import * as tf from '@tensorflow/tfjs-core';
import {strict as assert} from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import '../src/index';
import {BatchLoader} from '../src/data/loader';
import {NO_AUGMENT} from '../src/data/augment';
import {loadDatasetPair} from '../src/data/registry';
import {readWeights, writeCheckpoint} from '../src/training/checkpoint';
import {confusionMatrix, formatConfusion, topKCorrect} from '../src/training/metrics';
import {buildModel, ModelSpec} from '../src/training/model';
import {evaluate, isBetterEpoch} from '../src/training/trainer';
import {runCliInProcess} from './support/cli';
import {parseLogCsv, readRuns} from '../scripts/study/report';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'karat-metrics-'));
after(() => fs.rmSync(tmp, {recursive: true, force: true}));

const SPEC: ModelSpec = {dim: 8, depth: 1, heads: 2, mlpRatio: 1, imageSize: 32, patchSize: 8, channels: 3, numClasses: 10,
  attention: {type: 'fourier', grid: 1, rank: 2, mode: 'blockwise'}, classifierActivation: 'linear'};

const cli = runCliInProcess;

describe('metrics: non-finite logits are wrong answers', function() {
  it('top-k counts a row with a NaN or infinite logit as wrong (target NaN, other NaN, target +Inf)', () => {
    const K = 3;
    const logits = new Float32Array([
      NaN, 0, 0,          // label 0: NaN target (every comparison false: was counted correct)
      5, NaN, 1,          // label 0: a NaN elsewhere
      Infinity, 0, 0,     // label 0: infinite target
      2, 1, 0,            // label 0: a plain correct row
      0, 1, 2,            // label 0: a plain wrong row (top-1), right in the top 3
    ]);
    const labels = new Int32Array([0, 0, 0, 0, 0]);
    assert.equal(topKCorrect(logits, labels, K, 1), 1);
    assert.equal(topKCorrect(logits, labels, K, 3), 2);
    const nonFinite = [0, 0, 0];
    const m = confusionMatrix(logits, labels, K, undefined, nonFinite);
    assert.deepEqual(m, [[1, 0, 1], [0, 0, 0], [0, 0, 0]]);
    assert.deepEqual(nonFinite, [3, 0, 0]);
    const text = formatConfusion(m, ['a', 'b', 'c'], nonFinite);
    assert.match(text, /NaN\/Inf/);
    assert.match(text.split('\n')[1], /^a\s+1\s+0\s+1\s+3\s+20\.0%$/, text);
  });

  it('an evaluation with NaN logits is diverged with top-1 0, and never the best epoch', async () => {
    await tf.setBackend('cpu');
    const model = buildModel(SPEC, 1);
    const head = model.getLayer('head');
    head.setWeights([head.getWeights()[0], tf.fill([10], NaN)]);
    const {test} = await loadDatasetPair('cifar10-subset', {testLimit: 20});
    const loader = new BatchLoader(test, {batchSize: 10, train: false, augment: NO_AUGMENT, seed: 0});
    const ev = await evaluate(model, loader, 10);
    model.dispose();
    assert.equal(ev.diverged, true);
    assert.ok(Number.isNaN(ev.loss));
    assert.equal(ev.top1, 0);
    assert.equal(ev.top5, 0);
    assert.equal(ev.nonFinite, 20);
    assert.equal(ev.confusion.flat().reduce((a, v) => a + v, 0), 0);
    assert.equal(isBetterEpoch(ev, null), false, 'a diverged first epoch is not best');
    assert.equal(isBetterEpoch({...ev, top1: 1}, {top1: 0.1}), false, 'nor one with 100% top-1');
    assert.equal(isBetterEpoch({diverged: false, top1: 0.2}, {top1: 0.1}), true);
    assert.equal(isBetterEpoch({diverged: false, top1: 0.1}, null), true);
  });

  it('karat eval of a NaN checkpoint reports DIVERGED and 0%, consistent with its confusion matrix', async () => {
    await tf.setBackend('cpu');
    const model = buildModel(SPEC, 1);
    const w = await readWeights(model);
    model.dispose();
    const i = w.entries.findIndex((e) => e.name === 'head/bias');
    w.data[i].fill(NaN);
    const file = path.join(tmp, 'nan.ckpt');
    writeCheckpoint(file, {
      header: {format: 2, createdAt: new Date().toISOString(), modelSpec: SPEC, weights: w.entries, optimizer: null,
        trainer: {epoch: 1, step: 3, seed: 1, config: {dataset: 'cifar10-subset', epochs: 1}}, weightFloats: 0, optimizerFloats: 0},
      weights: w.data, optimizer: null,
    });
    const r = await cli(['eval', '--checkpoint', file, '--backend', 'cpu', '--test-limit', '20', '--batch-size', '10']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /loss NaN\s+top-1 0\.00%\s+top-5 0\.00%\s+DIVERGED: the loss is not finite; 20 of 20 examples have non-finite logits/);
    assert.doesNotMatch(r.out, /100\.00%/);
    // every per-class accuracy in the matrix is 0% (or '-' for a class absent from the 20 images)
    const rows = r.out.split('\n').filter((l) => /%$/.test(l) && !/top-1/.test(l));
    assert.equal(rows.length, 10);
    for (const l of rows) assert.match(l, /(0\.0|-)%$/, l);
  });
});

describe('metrics: the study report refuses malformed logs, naming the file and the row', () => {
  const HEAD = 'epoch,step,lr,trainLoss,trainAcc,valLoss,valTop1,testLoss,testTop1,testTop5,epochSeconds,imagesPerSec,cpuSeconds,best';
  const row = (e: number, t: string) => `${e},${e * 10},0.001,1.5,0.4,1.4,0.3,1.3,${t},0.9,10,50,8,false`;

  it('a missing column, a junk cell, an out-of-range top-1, a repeated epoch', () => {
    const cases: Array<[string, RegExp]> = [
      [[HEAD.replace(',testTop1', ''), '1,10,0.001,1.5,0.4,1.4,0.3,1.3,0.9,10,50,8,false'].join('\n'), /log\.csv: row 1 \(header\) has no column 'testTop1'$/],
      [[HEAD, row(1, '0.3'), row(2, 'abc')].join('\n'), /log\.csv: row 3, column 'testTop1': "abc" is not a number$/],
      [[HEAD, row(1, '0.3'), row(2, '')].join('\n'), /log\.csv: row 3, column 'testTop1': "" is not a number$/],
      [[HEAD, row(1, '45.0')].join('\n'), /log\.csv: row 2, column 'testTop1': 45\.0 is not an accuracy in \[0, 1\]$/],
      [[HEAD, row(1, '-3')].join('\n'), /log\.csv: row 2, column 'testTop1': -3 is not an accuracy in \[0, 1\]$/],
      [[HEAD, row(1, '0.3'), row(2, '0.4'), row(2, '0.5')].join('\n'), /log\.csv: row 4 repeats epoch 2 \(first at row 3\)$/],
      [[HEAD, row(1, '0.3').replace(/^1,/, '1.5,')].join('\n'), /log\.csv: row 2: epoch 1\.5 is not a positive integer$/],
    ];
    for (const [text, re] of cases) assert.throws(() => parseLogCsv(text, 'log.csv'), re);
    // a diverged epoch (NaN, as karat train writes it) is still a row, not an error
    assert.ok(Number.isNaN(parseLogCsv([HEAD, row(1, 'NaN')].join('\n'), 'log.csv')[0].testTop1 as number));
  });

  it('a run folder that is a symbolic link out of --runs is refused', () => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'karat-report-'));
    try {
      const runs = path.join(base, 'runs'), outside = path.join(base, 'elsewhere', 'softmax-s1');
      fs.mkdirSync(runs, {recursive: true});
      fs.mkdirSync(outside, {recursive: true});
      fs.writeFileSync(path.join(outside, 'log.csv'), [HEAD, row(1, '0.3')].join('\n'));
      fs.writeFileSync(path.join(outside, 'summary.json'), '{"params": 1}');
      fs.symlinkSync(outside, path.join(runs, 'softmax-s1'));
      assert.throws(() => readRuns(runs), /softmax-s1: a symbolic link leading out of .*runs .*refused/);
    } finally {
      fs.rmSync(base, {recursive: true, force: true});
    }
  });
});
