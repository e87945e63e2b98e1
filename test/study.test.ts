/**
 * The multi-seed study's tooling: the statistics against hand-computed values, the report's
 * numbers recomputed from the run logs, and a smoke study (2 arms x 2 seeds, a few steps of a
 * tiny model) that is resumable.
 */
import {strict as assert} from 'assert';
import {existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';

import {ARM_ORDER, collect, curvesSvg, epochEffectMarkdown, epochTableMarkdown, pairedEffect, readRuns, reportMarkdown, summariseArms} from '../scripts/study/report';
import {parseStudyArgs, runStudy, runState} from '../scripts/study/run';
import {mean, pairedInterval, sd, tQuantile975} from '../scripts/study/stats';
import {inMemoryDataset} from '../src/data/dataset';
import {splitValidation} from '../src/training/trainer';

const close = (a: number, b: number, tol = 1e-9) => assert.ok(Math.abs(a - b) < tol, `${a} vs ${b}`);

describe('study statistics', () => {
  it('mean, sample sd and the paired 95% interval match a hand computation', () => {
    // diffs 0.02, 0.04, 0.01: mean 0.07/3; squared deviations sum 4.6667e-4; sd = sqrt(4.6667e-4 / 2)
    const a = [0.70, 0.74, 0.72], b = [0.68, 0.70, 0.71];
    const p = pairedInterval(a, b);
    close(p.mean, 0.07 / 3);
    close(p.sd, 0.0152753, 1e-6);
    close(p.halfWidth, 4.3027 * 0.0152753 / Math.sqrt(3), 1e-5);
    close(p.lo, 0.0233333 - 0.0379463, 1e-5);
    close(p.hi, 0.0233333 + 0.0379463, 1e-5);
    assert.equal(p.excludesZero, false);
    assert.equal(pairedInterval([0.8, 0.81, 0.82], [0.7, 0.705, 0.71]).excludesZero, true);
    close(mean([1, 2, 3, 4]), 2.5);
    close(sd([2, 4, 4, 4, 5, 5, 7, 9]), Math.sqrt(32 / 7));
    assert.equal(sd([3]), 0);
  });

  it("Student's t quantiles: table values and the large-df approximation", () => {
    close(tQuantile975(1), 12.7062, 1e-4);
    close(tQuantile975(4), 2.7764, 1e-4);
    close(tQuantile975(30), 2.0423, 1e-4);
    close(tQuantile975(60), 2.0003, 2e-3);
    assert.throws(() => tQuantile975(0), /df/);
  });

  it('one pair gives no interval and never claims significance', () => {
    const p = pairedInterval([0.9], [0.1]);
    assert.equal(Number.isNaN(p.halfWidth), true);
    assert.equal(p.excludesZero, false);
  });
});

describe('validation split (--val-split)', () => {
  it('holds out the last N training examples, the same for every seed, disjoint from training', async () => {
    const n = 10;
    const ds = inMemoryDataset({name: 'toy', height: 1, width: 1, channels: 1, classNames: ['a', 'b'],
      images: Uint8Array.from({length: n}, (_, i) => i), labels: Int32Array.from({length: n}, (_, i) => i % 2)});
    const {train, val} = splitValidation(ds, 3);
    assert.equal(train.size, 7);
    assert.equal(val!.size, 3);
    const px = async (d: typeof ds) => {
      const out = new Uint8Array(d.size);
      await d.readImages(Array.from({length: d.size}, (_, i) => i), out);
      return Array.from(out);
    };
    assert.deepEqual(await px(train), [0, 1, 2, 3, 4, 5, 6]);
    assert.deepEqual(await px(val!), [7, 8, 9]);
    assert.deepEqual(Array.from(val!.labels), [1, 0, 1]);
    assert.equal(splitValidation(ds, 0).val, null);
    assert.throws(() => splitValidation(ds, 10), /'val-split' must be an integer in \[0, 10\)/);
  });
});

describe('study report', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'karat-study-report-'));
  });
  after(() => rmSync(dir, {recursive: true, force: true}));

  function writeRun(name: string, params: number, rows: Array<[number, number, number]>) {
    // rows: [epoch, valTop1, testTop1]
    const d = join(dir, name);
    mkdirSync(d, {recursive: true});
    const head = 'epoch,step,lr,trainLoss,trainAcc,valLoss,valTop1,testLoss,testTop1,testTop5,epochSeconds,imagesPerSec,cpuSeconds,best';
    const lines = rows.map(([e, v, t]) => `${e},${e * 10},0.001,1.5,0.4,1.4,${v},1.3,${t},0.9,10,50,8,false`);
    writeFileSync(join(d, 'log.csv'), [head, ...lines].join('\n') + '\n');
    writeFileSync(join(d, 'summary.json'), JSON.stringify({params, seconds: 1}));
  }

  it('selects the epoch on validation, reports test accuracy there and at the last epoch, and pairs by seed', () => {
    writeRun('softmax-s1', 1000, [[1, 0.30, 0.31], [2, 0.40, 0.41], [3, 0.39, 0.42]]);
    writeRun('softmax-s2', 1000, [[1, 0.35, 0.33], [2, 0.34, 0.36], [3, 0.36, 0.37]]);
    writeRun('G3B-s1', 1500, [[1, 0.32, 0.30], [2, 0.45, 0.44], [3, 0.44, 0.43]]);
    writeRun('G3B-s2', 1500, [[1, 0.33, 0.34], [2, 0.38, 0.39], [3, 0.38, 0.40]]);
    const runs = readRuns(dir);
    assert.deepEqual(runs.map((r) => r.name), ['G3B-s1', 'G3B-s2', 'softmax-s1', 'softmax-s2']);
    const arms = summariseArms(runs, ARM_ORDER);
    assert.deepEqual(arms.map((a) => a.arm), ['softmax', 'G3B']);
    const [soft, g3b] = arms;
    // selected epochs: softmax s1 -> 2 (val .40), s2 -> 3 (val .36); G3B s1 -> 2, s2 -> 2 (first of the tie .38)
    assert.deepEqual(soft.selectedEpochs, [2, 3]);
    assert.deepEqual(g3b.selectedEpochs, [2, 2]);
    assert.deepEqual(soft.selected, [0.41, 0.37]);
    assert.deepEqual(g3b.selected, [0.44, 0.39]);
    assert.deepEqual(g3b.last, [0.43, 0.40]);
    const eff = pairedEffect(g3b, soft, 'selected');
    // diffs 0.03, 0.02: mean 0.025, sd 0.0070711, half-width 12.7062 * 0.0070711 / sqrt 2 = 0.063531
    close(eff.mean, 0.025);
    close(eff.halfWidth, 0.063531, 1e-5);
    const md = reportMarkdown(arms);
    assert.ok((md).includes('| softmax | 1,000 | 39.00 ± 2.83 (n = 2) | s1: 41.00, s2: 37.00 | 2, 3 | 39.50 ± 3.54 | 30 / 24 |'), 'report lacks ' + '| softmax | 1,000 | 39.00 ± 2.83 (n = 2) | s1: 41.00, s2: 37.00 | 2, 3 | 39.50 ± 3.54 | 30 / 24 |');
    assert.ok((md).includes('| G3B | +2.50 [-3.85, +8.85] | no |'), 'report lacks ' + '| G3B | +2.50 [-3.85, +8.85] | no |');
    assert.match(curvesSvg(runs, arms, 't'), /^<svg[\s\S]*<\/svg>$/);
    // per epoch: softmax e1 (.31, .33) -> 32.00 ± 1.41, e2 (.41, .36) -> 38.50 ± 3.54; G3B e3 (.43, .40) -> 41.50 ± 2.12
    const table = epochTableMarkdown(runs, arms).split('\n');
    assert.equal(table[0], '| epoch | softmax (n = 2) | G3B (n = 2) |');
    assert.equal(table[2], '| 1 | 32.00 ± 1.41 | 32.00 ± 2.83 |');
    assert.equal(table[3], '| 2 | 38.50 ± 3.54 | 41.50 ± 3.54 |');
    assert.equal(table[4], '| 3 | 39.50 ± 3.54 | 41.50 ± 2.12 |');
    // paired per epoch, G3B − softmax: e1 (-.01, +.01) -> 0 ± 12.7062 · .0141421 / √2; e2 (+.03, +.03) -> sd 0, excludes 0; e3 (+.01, +.03)
    const eff1 = epochEffectMarkdown(runs, arms).split('\n');
    assert.equal(eff1[0], '| epoch | G3B − softmax |');
    assert.equal(eff1[2], '| 1 | +0.00 [-12.71, +12.71] |');
    assert.equal(eff1[3], '| 2 | +3.00 [+3.00, +3.00] * |');
    assert.equal(eff1[4], '| 3 | +2.00 [-10.71, +14.71] |');
  });

  it('reports a diverged run by name instead of scoring it', () => {
    writeRun('G3U-s1', 1500, [[1, 0.2, 0.2], [2, NaN, NaN]]);
    writeRun('G3U-s2', 1500, [[1, 0.2, 0.2], [2, 0.25, 0.24]]);
    const arms = summariseArms(readRuns(dir), ARM_ORDER);
    assert.deepEqual(arms.find((a) => a.arm === 'G3U')!.diverged, ['G3U-s1']);
    // a single seed shows its value without a spread
    const one = summariseArms(readRuns(dir).filter((r) => r.name !== 'G3U-s1'), ARM_ORDER);
    assert.ok(reportMarkdown(one).includes('| G3U | 1,500 | 24.00 (n = 1) | s2: 24.00 |'), reportMarkdown(one));
    assert.ok((reportMarkdown(arms)).includes('Diverged runs (a non-finite test loss or accuracy in some epoch): G3U-s1.'), 'report lacks ' + 'Diverged runs (a non-finite test loss or accuracy in some epoch): G3U-s1.');
  });
});

describe('study runner (smoke)', function() {
  this.timeout(600000);
  let out: string;
  before(() => {
    out = mkdtempSync(join(tmpdir(), 'karat-study-smoke-'));
  });
  after(() => rmSync(out, {recursive: true, force: true}));

  it('runs 2 arms x 2 seeds, skips finished runs, resumes an interrupted one, and the report reads its logs', async () => {
    const o = parseStudyArgs(['--smoke', '--out', out, '--jobs', '2']);
    assert.deepEqual(o.arms, ['softmax', 'G3B']);
    const first = await runStudy({...o, extra: [...o.extra, '--epochs', '1']}, () => {});
    assert.deepEqual(first.map((r) => r.code), [0, 0, 0, 0]);
    for (const n of ['softmax-s1', 'G3B-s1', 'softmax-s2', 'G3B-s2']) assert.equal(runState(join(out, n)), 'done');
    // an interrupted run: its checkpoint is there, its summary is not
    rmSync(join(out, 'G3B-s2', 'summary.json'));
    assert.equal(runState(join(out, 'G3B-s2')), 'resume');
    const second = await runStudy(o, () => {});
    const byName = Object.fromEntries(second.map((r) => [r.name, r]));
    assert.equal(byName['G3B-s2'].state, 'resume');
    assert.equal(byName['G3B-s2'].code, 0);
    assert.equal(byName['softmax-s1'].state, 'done');
    const events = readFileSync(join(out, 'G3B-s2', 'log.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l).type);
    assert.ok((events).includes('resume'));

    const dest = join(out, 'collected');
    assert.deepEqual(collect(out, dest).sort(), ['G3B-s1', 'G3B-s2', 'softmax-s1', 'softmax-s2']);
    assert.equal(existsSync(join(dest, 'G3B-s2', 'log.csv')), true);
    const runs = readRuns(dest);
    const resumed = runs.find((r) => r.name === 'G3B-s2')!;
    assert.deepEqual(resumed.rows.map((r) => r.epoch), [1, 2]);
    for (const r of runs) {
      for (const row of r.rows) {
        for (const k of ['valTop1', 'testTop1']) {
          const v = row[k];
          assert.ok(typeof v === 'number' && v >= 0 && v <= 1, `${r.name} ${k} = ${v}`);
        }
      }
      const best = r.rows.reduce((a, b) => ((b.valTop1 as number) > (a.valTop1 as number) ? b : a));
      assert.equal(r.selectedEpoch, best.epoch);
      assert.equal(r.selectedTop1, best.testTop1);
    }
    const arms = summariseArms(runs, ARM_ORDER);
    const soft = arms.find((a) => a.arm === 'softmax')!;
    const md = reportMarkdown(arms);
    assert.ok((md).includes(`${(100 * mean(soft.selected)).toFixed(2)} ± ${(100 * sd(soft.selected)).toFixed(2)} (n = 2)`), 'report lacks ' + `${(100 * mean(soft.selected)).toFixed(2)} ± ${(100 * sd(soft.selected)).toFixed(2)} (n = 2)`);
  });
});
