/**
 * Fine-tuning on an image list through the browser-safe entry: the dataset's validation and
 * resampling, the stratified held-out split, and the loop (new head, freezing, callbacks, stop
 * signal, divergence) on the cpu and wasm backends.
 */
import * as assert from 'node:assert/strict';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';

import {mulberry32 as mulberry, withMathRandom} from '../src/data/rng';
import * as karat from '../src/index';

const MEAN = [0.5, 0.5, 0.5], STD = [0.25, 0.25, 0.25];

/** An RGBA image of `w` x `h`: class 0 reddish with a bright left half, class 1 bluish with a bright top half; noise on top. */
function classImage(label: number, w: number, h: number, rnd: () => number): karat.PixelArray {
  const data = new Uint8ClampedArray(w * h * 4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const bright = label === 0 ? x < w / 2 : y < h / 2;
      const base = label === 0 ? [200, 40, 40] : [40, 60, 200];
      for (let c = 0; c < 3; c++) data[(y * w + x) * 4 + c] = Math.min(255, base[c] * (bright ? 1.2 : 0.6) + 40 * rnd());
      data[(y * w + x) * 4 + 3] = 255;
    }
  }
  return {width: w, height: h, data};
}

/** A small random-init Fourier-KArAt ViT, its initialisers drawn from a seeded stream. */
function tinyViT(numClasses = 10) {
  return withMathRandom(mulberry(21), () => vitOf(numClasses));
}

function vitOf(numClasses: number) {
  return karat.models.vit({
    dim: 16, depth: 1, heads: 2, mlpRatio: 2, imageSize: 16, patchSize: 4, numClasses,
    attention: {type: 'fourier', grid: 2, rank: 4, mode: 'blockwise', seed: 3},
  });
}

function throwsCode(fn: () => unknown, code: karat.ImageListErrorCode, re?: RegExp) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof karat.ImageListError, `expected ImageListError, got ${e}`);
    assert.equal(e.name, 'ImageListError');
    assert.equal(e.code, code);
    if (re) assert.match(e.message, re);
    return true;
  });
}

describe('imageList', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('resizes by area averaging after a centre crop, from RGBA, RGB, grey and tensors', () => {
    // 4 x 2 RGB: the centre 2 x 2 square is columns 1..2; resized to 1 x 1 it is their mean.
    const rgb = new Uint8Array(4 * 2 * 3);
    const vals = [[0, 10, 20, 30], [40, 50, 60, 70]];
    for (let y = 0; y < 2; y++) for (let x = 0; x < 4; x++) for (let c = 0; c < 3; c++) rgb[(y * 4 + x) * 3 + c] = vals[y][x] + c;
    const a = karat.imageList([{image: {width: 4, height: 2, data: rgb}, label: 0}, {image: {width: 1, height: 1, data: [9]}, label: 1}],
                              {classNames: ['a', 'b'], imageSize: 1});
    assert.deepEqual(Array.from(a.images), [(10 + 20 + 50 + 60) / 4, (10 + 20 + 50 + 60) / 4 + 1, (10 + 20 + 50 + 60) / 4 + 2, 9, 9, 9]);
    // 3 x 3 -> 2 x 2: output pixel (0,0) covers source [0,1.5)^2 with weights 1, 0.5, 0.5, 0.25.
    const g = [0, 4, 8, 12, 16, 20, 24, 28, 32];
    const t = tf.tensor3d(g, [3, 3, 1]);
    const b = karat.imageList([{image: t, label: 0}, {image: classImage(1, 6, 6, mulberry(1)), label: 1}], {classNames: ['a', 'b'], imageSize: 2});
    t.dispose();
    const want = (0 * 1 + 4 * 0.5 + 12 * 0.5 + 16 * 0.25) / 2.25;
    assert.equal(b.images[0], Math.round(want));
    assert.equal(b.images[2], Math.round(want));
    assert.equal(b.images.length, 2 * 2 * 2 * 3);
    assert.deepEqual(Array.from(b.labels), [0, 1]);
  });

  it('names each bad input: not an image, too large, one class, an empty class, a bad label', () => {
    const ok = classImage(0, 8, 8, mulberry(2));
    const opts = {classNames: ['a', 'b'], imageSize: 4};
    throwsCode(() => karat.imageList([{image: 'cat.txt' as unknown as karat.PixelArray, label: 0}, {image: ok, label: 1}], opts), 'not-an-image', /image 0 is not an image/);
    throwsCode(() => karat.imageList([{image: {width: 8, height: 8, data: new Uint8Array(10)}, label: 0}, {image: ok, label: 1}], opts), 'not-an-image', /10 values/);
    throwsCode(() => karat.imageList([{image: {width: 2, height: 1, data: [0, 300]}, label: 0}, {image: ok, label: 1}], opts), 'not-an-image', /outside 0–255/);
    throwsCode(() => karat.imageList([{image: ok, label: 0}, {image: {width: 5000, height: 5000, data: []}, label: 1}], opts), 'image-too-large', /5000 x 5000/);
    throwsCode(() => karat.imageList([{image: ok, label: 0}, {image: ok, label: 1}], {...opts, maxPixels: 63}), 'image-too-large');
    throwsCode(() => karat.imageList([{image: ok, label: 0}], {classNames: ['a'], imageSize: 4}), 'too-few-classes');
    throwsCode(() => karat.imageList([{image: ok, label: 0}], {classNames: Array.from({length: 11}, (_, i) => `c${i}`), imageSize: 4}), 'too-many-classes');
    throwsCode(() => karat.imageList([{image: ok, label: 0}, {image: ok, label: 0}], {classNames: ['cats', 'dogs', 'owls'], imageSize: 4}), 'empty-class', /'dogs', 'owls' have no images/);
    throwsCode(() => karat.imageList([{image: ok, label: 0}, {image: ok, label: 2}], opts), 'bad-label');
  });

  it('splits off a stratified held-out set, each class keeping a training image', () => {
    const rnd = mulberry(3);
    const items = [...Array.from({length: 8}, () => ({image: classImage(0, 4, 4, rnd), label: 0})),
                   ...Array.from({length: 3}, () => ({image: classImage(1, 4, 4, rnd), label: 1})),
                   {image: classImage(0, 4, 4, rnd), label: 2}];
    const list = karat.imageList(items, {classNames: ['a', 'b', 'c'], imageSize: 4});
    const {train, heldOut} = karat.splitHeldOut(list, {fraction: 0.25, seed: 5});
    const count = (l: karat.ImageList, k: number) => Array.from(l.labels).filter((x) => x === k).length;
    assert.deepEqual([count(heldOut, 0), count(heldOut, 1), count(heldOut, 2)], [2, 1, 0]);
    assert.deepEqual([count(train, 0), count(train, 1), count(train, 2)], [6, 2, 1]);
    assert.equal(train.count + heldOut.count, list.count);
    const single = karat.imageList([{image: items[0].image, label: 0}, {image: items[9].image, label: 1}], {classNames: ['a', 'b'], imageSize: 4});
    throwsCode(() => karat.splitHeldOut(single), 'too-few-images');
  });
});

for (const backend of ['cpu', 'wasm']) {
  describe(`fineTune on ${backend}`, () => {
    before(async function() {
      if (!(await tf.setBackend(backend))) this.skip();
      await tf.ready();
    });
    after(async () => {
      await tf.setBackend('cpu');
    });

    it('withNewHead with a seed: the same seed gives the same head, another seed another; a non-integer seed is refused', async () => {
      const base = tinyViT();
      const headOf = async (seed: number) => {
        const m = await karat.withNewHead(base, 3, seed);
        const w = m.weights.filter((x) => x.originalName.startsWith('head/')).map((x) => Array.from(x.read().dataSync()));
        assert.ok(w.length > 0 && w.some((a) => a.some((v) => v !== 0)), 'the head has non-zero weights');
        return JSON.stringify(w);
      };
      const a = await headOf(7), b = await headOf(7), c = await headOf(8);
      assert.equal(a, b);
      assert.notEqual(a, c);
      await assert.rejects(karat.withNewHead(base, 3, 1.5), /seed must be an integer/);
    });

    it('learns two distinct classes with a new head, training only KArAt and the head, with progress callbacks', async () => {
      const rnd = mulberry(11);
      const items = Array.from({length: 24}, (_, i) => ({image: classImage(i % 2, 20, 20, rnd), label: i % 2}));
      const list = karat.imageList(items, {classNames: ['red-left', 'blue-top'], imageSize: 16});
      const {train, heldOut} = karat.splitHeldOut(list, {fraction: 0.25, seed: 1});
      const base = tinyViT();
      const model = await karat.withNewHead(base, 2, mulberry(4));
      assert.equal(model.outputs[0].shape[1], 2);
      const before = new Map(model.weights.map((w) => [w.originalName, w.read().dataSync().slice()]));
      // every weight but the head is the base model's, bit for bit
      for (const w of base.weights) {
        if (w.originalName.startsWith('head/')) continue;
        assert.deepEqual(before.get(w.originalName), w.read().dataSync(), w.originalName);
      }
      const batches: karat.BatchProgress[] = [], epochs: karat.EpochResult[] = [];
      let yields = 0;
      const numTensors = tf.memory().numTensors;
      const r = await karat.fineTune(model, train, heldOut, {
        epochs: 8, batchSize: 6, learningRate: 1e-2, mean: MEAN, std: STD, seed: 2,
        onBatch: (p) => void batches.push(p), onEpochEnd: (e) => void epochs.push(e),
        yieldToUI: async () => void yields++,
      });
      assert.equal(tf.memory().numTensors, numTensors, 'no tensor leaked');
      assert.equal(r.stopped, false);
      assert.equal(batches.length, 8 * 3);
      assert.equal(r.steps, 24);
      assert.deepEqual(batches.map((b) => b.step), Array.from({length: 24}, (_, i) => i + 1));
      assert.ok(batches.every((b) => b.steps === 24 && b.batches === 3 && Number.isFinite(b.loss)));
      assert.equal(yields, 24 + 8);
      assert.equal(epochs.length, 8);
      const last = epochs[epochs.length - 1];
      assert.ok(last.heldOutAccuracy! > 0.5, `${JSON.stringify(epochs.map((e) => [e.loss, e.heldOutAccuracy, e.heldOutLoss]))} held-out accuracy ${last.heldOutAccuracy} beats chance (0.5)`);
      assert.ok(last.loss < epochs[0].loss, `training loss falls: ${epochs.map((e) => e.loss.toFixed(3))}`);
      // only KArAt operators and the head changed
      assert.ok(r.trained.length > 0 && r.trained.every((n) => n.startsWith('head/') || /(^|\/)karat\//.test(n)), r.trained.join());
      for (const w of model.weights) {
        const same = before.get(w.originalName)!.every((v, i) => v === w.read().dataSync()[i]);
        assert.equal(same, !r.trained.includes(w.originalName), w.originalName);
      }
      base.dispose();
      model.dispose();
    });

    it('trains every weight with freeze: null, and stops when asked', async () => {
      const rnd = mulberry(12);
      const list = karat.imageList(Array.from({length: 8}, (_, i) => ({image: classImage(i % 2, 16, 16, rnd), label: i % 2})),
                                   {classNames: ['a', 'b'], imageSize: 16});
      const base = tinyViT();
      const model = await karat.withNewHead(base, 2, mulberry(5));
      let calls = 0;
      const r = await karat.fineTune(model, list, null, {
        epochs: 5, batchSize: 2, freeze: null, mean: MEAN, std: STD, augment: false,
        shouldStop: () => calls >= 3, onBatch: () => void calls++,
      });
      assert.equal(r.stopped, true);
      assert.equal(r.steps, 3);
      assert.equal(r.trained.length, model.trainableWeights.length);
      base.dispose();
      model.dispose();
    });

    it('reports a divergence as an error, never as an accuracy, and rejects bad options by name', async () => {
      const rnd = mulberry(13);
      const list = karat.imageList(Array.from({length: 4}, (_, i) => ({image: classImage(i % 2, 16, 16, rnd), label: i % 2})),
                                   {classNames: ['a', 'b'], imageSize: 16});
      const base = tinyViT();
      const model = await karat.withNewHead(base, 2, mulberry(6));
      await assert.rejects(karat.fineTune(model, list, list, {epochs: 3, mean: MEAN, std: STD, learningRate: 1e38, clipGrad: 0, freeze: null}),
                           (e: Error) => e.name === 'FineTuneDivergedError' && /diverged/.test(e.message));
      await assert.rejects(karat.fineTune(base, list, null, {mean: MEAN, std: STD}), /the model has 10 outputs, the images 2 classes/);
      await assert.rejects(karat.fineTune(model, list, null, {mean: MEAN, std: STD, freeze: 'all-but-bogus'}),
                           (e: Error) => e.name === 'KArAtArgumentError' && /unknown selection 'bogus'/.test(e.message));
      await assert.rejects(karat.fineTune(model, list, null, {mean: [0.5], std: STD}), /'mean' and 'std' must be 3 numbers/);
      await assert.rejects(karat.fineTune(model, list, null, {mean: MEAN, std: STD, freeze: 'block9_*'}), /freeze 'block9_\*' matches no weight/);
      const soft = karat.models.vit({dim: 16, depth: 1, heads: 2, mlpRatio: 2, imageSize: 16, patchSize: 4, numClasses: 2, attention: 'softmax'});
      await assert.rejects(karat.fineTune(soft, list, null, {mean: MEAN, std: STD}), /the selection 'karat' in freeze 'all-but-karat-and-head' matches no trainable weight/);
      soft.dispose();
      base.dispose();
      model.dispose();
    });
  });
}
