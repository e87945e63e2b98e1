/** Model-level analyses on a tiny ViT: attention extraction, maps, spectra, curves, landscape. */
import * as assert from 'node:assert/strict';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';

import * as karat from '../src/index';
import * as an from '../src/analysis/index';
import {randomArray} from './support/reference';

const R = 2, G = 2;

function tinyVit(attention: 'softmax' | 'karat', mode: 'blockwise' | 'universal' = 'blockwise') {
  return karat.models.vit({
    dim: 8, depth: 2, heads: 2, imageSize: 8, patchSize: 4, numClasses: 3,
    attention: attention === 'softmax' ? 'softmax' : {type: 'fourier', grid: G, rank: R, mode, seed: 3},
  });
}

function images(B: number, seed: number) {
  return tf.tensor4d(randomArray(B * 8 * 8 * 3, seed), [B, 8, 8, 3]);
}

describe('analysis of a tiny ViT (cpu)', function() {
  this.timeout(60000);
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('extracts S and σ̂(S) that match the layer\'s own returnAttentionScores output', () => {
    const model = tinyVit('karat');
    const x = images(2, 1);
    const data = an.computeAttention(model, x);
    assert.equal(data.length, 2);
    // The attention layer's input is the output of block{j}_norm1.
    for (const d of data) {
      const layer = model.getLayer(d.name) as karat.KArAtMultiHeadAttention;
      const sub = tfl.model({inputs: model.inputs, outputs: model.getLayer(d.name.replace('_attn', '_norm1')).output as tfl.SymbolicTensor});
      const xin = sub.predict(x) as tf.Tensor;
      const [, att] = layer.callAndReturnAttentionScores(xin);
      const ref = att.dataSync();
      assert.deepEqual(att.shape, [2, 2, 5, 5]);
      let err = 0;
      for (let i = 0; i < ref.length; i++) err = Math.max(err, Math.abs(ref[i] - d.activated[i]));
      assert.ok(err < 1e-5, `${d.name}: ${err}`);
      // softmax rows sum to 1.
      for (let row = 0; row < 2 * 2 * 5; row++) {
        const s = d.softmax.subarray(row * 5, row * 5 + 5).reduce((a, b) => a + b, 0);
        assert.ok(Math.abs(s - 1) < 1e-5);
      }
      tf.dispose([xin, att]);
    }
    x.dispose();
    model.dispose();
  });

  it('maps per block and head plus rollout, on the patch grid, without leaking tensors', () => {
    const model = tinyVit('karat');
    const x = images(3, 2);
    const before = tf.memory().numTensors;
    const maps = an.attentionMaps(model, x);
    assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
    assert.deepEqual(maps.grid, [2, 2]);
    assert.equal(maps.images.length, 3);
    assert.equal(maps.images[0].maps.length, 2);
    assert.equal(maps.images[0].maps[0].length, 2);
    assert.equal(maps.images[0].maps[1][1].length, 4);
    assert.equal(maps.images[0].rollout.length, 4);
    assert.equal(maps.signed, maps.images.some(im => im.maps.some(m => m.some(r => r.some(v => v < 0))) || im.rollout.some(v => v < 0)));
    const rgb = Array.from({length: 3}, () => ({width: 8, height: 8, data: new Uint8Array(192).fill(128)}));
    const files = an.renderAttentionReport(maps, rgb, {scale: 2});
    assert.equal(Object.keys(files).filter(f => f.endsWith('.png')).length, 3 * (2 * 2 + 1));
    const html = files['attention/index.html'] as string;
    assert.match(html, maps.signed ? /Diverging colour scale: blue = negative, white = 0, red = positive/ : /Sequential colour scale/);
    x.dispose();
    model.dispose();
  });

  it('async read-back gives the same attention and maps as the synchronous one', async () => {
    const model = tinyVit('karat', 'universal');
    const x = images(2, 9);
    const a = an.computeAttention(model, x), b = await an.computeAttentionAsync(model, x);
    assert.equal(a.length, b.length);
    a.forEach((d, i) => assert.deepEqual(Array.from(d.activated), Array.from(b[i].activated)));
    const m1 = an.attentionMaps(model, x), m2 = await an.attentionMapsAsync(model, x);
    assert.deepEqual(Array.from(m1.images[1].rollout), Array.from(m2.images[1].rollout));
    x.dispose();
    model.dispose();
  });

  it('spectra: σ̂(S) has rank <= r, row-stochastic softmax(S) has σ_1 >= 1; a softmax model reports softmax', () => {
    const model = tinyVit('karat');
    const x = images(2, 3);
    const sp = an.attentionSpectra(model, x);
    for (const blk of sp.blocks) {
      for (const h of blk.heads) {
        assert.equal(h.activated.length, 5);
        for (let k = R; k < 5; k++) assert.ok(h.activated[k] < 1e-5 * h.activated[0], `σ_${k} of a rank-${R} matrix`);
        // A row-stochastic N x N matrix has σ_1 >= 1.
        assert.ok(h.softmax[0] >= 1 - 1e-6);
      }
    }
    const files = an.renderSpectra(sp);
    assert.equal(Object.keys(files).length, 2);
    assert.match(files['spectra/block0.svg'] as string, /KArAt σ̂\(S\)/);
    const soft = tinyVit('softmax');
    const sp2 = an.attentionSpectra(soft, x);
    assert.equal(sp2.blocks[0].kind, 'softmax');
    assert.deepEqual(Array.from(sp2.blocks[0].heads[0].activated), Array.from(sp2.blocks[0].heads[0].softmax));
    x.dispose();
    model.dispose();
    soft.dispose();
  });

  it('weight distributions count each (shared) operator once; curves use the layer operator', () => {
    for (const mode of ['blockwise', 'universal'] as const) {
      const model = tinyVit('karat', mode);
      const d = an.weightDistributions(model);
      const ops = mode === 'blockwise' ? 2 : 1;
      assert.equal(d.fourierA.length, ops * 2 * R * 5 * G);
      assert.equal(d.fourierB.length, ops * 2 * R * 5 * G);
      assert.equal(d.proj.length, ops * 2 * 5 * R);
      assert.equal(d.query.length, 2 * 8 * 2 * 4);
      const svg = an.renderWeightHistograms(d);
      assert.match(svg, /Fourier A \(cos\)/);
      const layer = model.getLayer('block1_attn') as karat.KArAtMultiHeadAttention;
      const op = layer.operator!;
      const coeffs = op.params().coeffs;
      const xs = an.linspace(-2, 2, 9);
      const [c] = an.activationCurves(op.cfg, op.params(), [{head: 1, p: 1, q: 4}], xs);
      const ref = an.fourierCurve(coeffs.dataSync(), coeffs.shape, c, xs);
      assert.ok(c.y.every((v, k) => Math.abs(v - ref[k]) < 1e-5));
      model.dispose();
    }
    const soft = tinyVit('softmax');
    assert.equal(an.weightDistributions(soft).fourierA.length, 0);
    soft.dispose();
  });

  it('score ranges bracket the scores', () => {
    const model = tinyVit('karat');
    const x = images(2, 4);
    const ranges = an.scoreRanges(model, x);
    const data = an.computeAttention(model, x);
    assert.equal(ranges.length, 2);
    const all = Array.from(data[0].scores);
    assert.equal(Math.min(ranges[0][0].min, ranges[0][1].min), Math.min(...all));
    assert.ok(ranges[0][0].p01 >= ranges[0][0].min && ranges[0][0].p99 <= ranges[0][0].max);
    x.dispose();
    model.dispose();
  });

  it('loss landscape on the plane of a planted path; restores the weights', async () => {
    const model = tinyVit('karat');
    const x = images(4, 5);
    const labels = [0, 1, 2, 1];
    const w0 = model.getWeights().map(t => t.dataSync().slice() as Float32Array);
    const P = w0.reduce((n, w) => n + w.length, 0);
    const e1 = randomArray(P, 61, 0.05), e2 = randomArray(P, 62, 0.05);
    const split = (flat: Float32Array) => {
      let o = 0;
      return w0.map(w => flat.slice(o, (o += w.length)));
    };
    const base = an.flattenWeights(w0);
    const coords = [[2, 1], [1, 1.5], [0.5, 0.5], [0, 0]];
    const cks = coords.map(([a, b]) => split(Float32Array.from(base, (v, k) => v + a * e1[k] + b * e2[k])));
    const loss = an.crossEntropyLoss(x, labels);
    const l0 = loss(model);
    const res = await an.lossLandscape({model, checkpoints: cks, loss, resolution: 4});
    assert.ok(res.explained[0] + res.explained[1] > 0.9999);
    assert.equal(res.losses.length, 16);
    assert.ok(res.losses.every(Number.isFinite));
    assert.ok(Math.abs(res.pathLosses[3] - l0) < 1e-5, 'last checkpoint = current weights');
    // Path distances are preserved by the projection.
    const dist = (i: number, j: number) => Math.hypot(res.path[i][0] - res.path[j][0], res.path[i][1] - res.path[j][1]);
    const e1n = Math.hypot(...e1), e2n = Math.hypot(...e2);
    const dot = e1.reduce((a, v, k) => a + v * e2[k], 0);
    const trueDist = (i: number, j: number) => {
      const da = coords[i][0] - coords[j][0], db = coords[i][1] - coords[j][1];
      return Math.sqrt(da * da * e1n * e1n + db * db * e2n * e2n + 2 * da * db * dot);
    };
    assert.ok(Math.abs(dist(0, 3) - trueDist(0, 3)) < 1e-3 * trueDist(0, 3));
    assert.ok(Math.abs(loss(model) - l0) < 1e-6, 'weights restored');
    const svg = an.renderLandscape(res);
    assert.match(svg, /optimiser path \(4 checkpoints\)/);
    assert.ok(!svg.includes('NaN'));
    await assert.rejects(an.lossLandscape({model, checkpoints: cks.slice(0, 2), loss}), /at least 3 checkpoints/);
    x.dispose();
    model.dispose();
  });

  it('rejects bad input naming the argument', () => {
    const model = tinyVit('karat');
    assert.throws(() => an.computeAttention(model, tf.zeros([1, 4, 4, 3]) as tf.Tensor4D), /argument 'images' must have shape \[B, 8, 8, 3\]/);
    assert.throws(() => an.computeAttention(model, 3 as unknown as tf.Tensor4D), /argument 'images' must be a tf.Tensor4D/);
    model.dispose();
  });
});
