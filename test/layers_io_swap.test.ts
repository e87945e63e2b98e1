/**
 * Save/load (memory and our file:// handler), universal sharing after reload and by explicit
 * links, swapAttention (from a stock Keras-style ViT, KArAt -> softmax, KArAt -> KArAt) and
 * argument errors.
 * cpu backend, small shapes (16x16 images, patch 4, dim 32, depth 2).
 */
import '@tensorflow/tfjs-backend-cpu';

import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {strict as assert} from 'assert';
import {spawnSync} from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import * as karat from '../src/node';

const SMALL = {dim: 32, depth: 2, heads: 2, imageSize: 16, patchSize: 4, numClasses: 5};
const G3B: karat.KArAtAttentionConfig = {type: 'fourier', grid: 3, rank: 4, mode: 'blockwise'};
const G3U: karat.KArAtAttentionConfig = {type: 'fourier', grid: 3, rank: 4, mode: 'universal'};

function attentionLayers(m: tfl.LayersModel): karat.KArAtMultiHeadAttention[] {
  // By class name: other suites may load a second copy of the package (the built bundles).
  return m.layers.filter(l => l.getClassName() === 'KArAtMultiHeadAttention') as karat.KArAtMultiHeadAttention[];
}

function bitIdentical(a: tf.Tensor, b: tf.Tensor): boolean {
  if (a.shape.join() !== b.shape.join()) return false;
  const x = new Uint32Array((a.dataSync() as Float32Array).slice().buffer);
  const y = new Uint32Array((b.dataSync() as Float32Array).slice().buffer);
  return x.every((v, i) => v === y[i]);
}

function tmpDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `karat-${tag}-`));
}

function images(n: number, seed: number): tf.Tensor4D {
  return tf.randomNormal([n, 16, 16, 3], 0, 1, 'float32', seed) as tf.Tensor4D;
}

function labels(n: number, classes: number, seed: number): tf.Tensor2D {
  return tf.oneHot(tf.randomUniform([n], 0, classes, 'int32', seed) as tf.Tensor1D, classes) as tf.Tensor2D;
}

async function fitLosses(m: tfl.LayersModel, x: tf.Tensor, y: tf.Tensor, epochs: number): Promise<number[]> {
  m.compile({optimizer: tf.train.adam(3e-3), loss: 'categoricalCrossentropy'});
  const h = await m.fit(x, y, {epochs, batchSize: x.shape[0], verbose: 0, shuffle: false});
  return h.history.loss as number[];
}

describe('layers: save/load round trips', function() {
  before(async () => {
    await tf.setBackend('cpu');
  });

  for (const [label, attention] of [['softmax', 'softmax'], ['G3B', G3B], ['G3U', G3U]] as const) {
    it(`${label}: identical predictions after tf.io memory and file:// round trips`, async () => {
      const m = karat.models.vit({...SMALL, attention});
      const x = images(3, 7);
      const y0 = m.predict(x) as tf.Tensor;
      const fromMemory = await karat.io.loadFromMemory(await karat.io.saveToMemory(m));
      const dir = tmpDir(label);
      await m.save(`file://${dir}`);
      assert.ok(fs.existsSync(path.join(dir, 'model.json')) && fs.existsSync(path.join(dir, 'weights.bin')));
      const fromFile = await tfl.loadLayersModel(`file://${path.join(dir, 'model.json')}`);
      for (const m2 of [fromMemory, fromFile]) {
        assert.equal(m2.countParams(), m.countParams());
        const y2 = m2.predict(x) as tf.Tensor;
        assert.ok(bitIdentical(y0, y2), `${label}: predictions differ after reload`);
        y2.dispose();
      }
      if (label === 'G3U') {
        // Universal: ONE set of operator variables, shared by every block, after reload.
        for (const m2 of [m, fromMemory, fromFile]) {
          const att = attentionLayers(m2);
          assert.equal(att.length, 2);
          assert.ok(att[0].operator != null && att[1].operator === att[0].operator);
          assert.ok(att[0].ownsOperator && !att[1].ownsOperator);
          const opWeights = m2.weights.filter(w => w.originalName.includes('/karat/'));
          assert.deepEqual(opWeights.map(w => w.originalName), ['block0_attn/karat/coeffs', 'block0_attn/karat/proj']);
          assert.equal(att[1].operator!.variables.coeffs, opWeights[0]);
        }
        // ... and training moves that one set for both blocks.
        const before = fromFile.weights.find(w => w.originalName === 'block0_attn/karat/coeffs')!.read().clone();
        await fitLosses(fromFile, x, labels(3, 5, 1), 1);
        const op = attentionLayers(fromFile)[1].operator!;
        assert.ok(!bitIdentical(before, op.variables.coeffs.read()), 'shared coeffs must train');
        before.dispose();
      }
      tf.dispose([x, y0]);
      for (const mm of [m, fromMemory, fromFile]) mm.dispose();
      fs.rmSync(dir, {recursive: true, force: true});
    });
  }

  it('a model.json with KArAt layers loads in a fresh process after a plain import of the package', async function() {
    const m = karat.models.vit({...SMALL, attention: G3U});
    const dir = tmpDir('plain');
    await m.save(`file://${dir}`);
    const x = images(1, 3);
    const y = Array.from((m.predict(x) as tf.Tensor).dataSync());
    const script = `
      import '@tensorflow/tfjs-backend-cpu';
      import * as tf from '@tensorflow/tfjs-core';
      import * as tfl from '@tensorflow/tfjs-layers';
      import '${path.resolve(__dirname, '../src/node.ts').replace(/\\/g, '/')}';
      await tf.setBackend('cpu');
      const m = await tfl.loadLayersModel('file://${dir}/model.json');
      const x = tf.randomNormal([1, 16, 16, 3], 0, 1, 'float32', 3);
      console.log(JSON.stringify(Array.from(m.predict(x).dataSync())));`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script],
                        {cwd: path.resolve(__dirname, '..'), encoding: 'utf8', timeout: 90000});
    assert.equal(r.status, 0, `child failed: ${r.stderr}`);
    const got = JSON.parse(r.stdout.trim().split('\n').pop()!) as number[];
    assert.deepEqual(got, y);
    m.dispose();
    x.dispose();
    fs.rmSync(dir, {recursive: true, force: true});
  });
});

describe('universal sharing by explicit links (UniversalOperatorSharing, shareOperatorWith)', function() {
  before(async () => {
    await tf.setBackend('cpu');
  });

  const act: karat.KArAtAttentionConfig = {type: 'fourier', grid: 2, rank: 2, mode: 'universal'};
  const mha = (name: string, extra: Partial<karat.KArAtMultiHeadAttentionArgs> = {}) =>
    new karat.KArAtMultiHeadAttention({numHeads: 2, keyDim: 4, attentionActivation: act, name, ...extra});

  it('hand-built layers attached to one UniversalOperatorSharing share one operator, through save/load', async () => {
    const sharing = new karat.UniversalOperatorSharing();
    const input = tfl.input({shape: [6, 8]});
    const layers = [mha('s0'), mha('s1'), mha('s2')];
    let h = input;
    for (const l of layers) {
      sharing.attach(l);
      h = l.apply(h) as tfl.SymbolicTensor;
    }
    const m = tfl.model({inputs: input, outputs: h});
    const x = tf.randomNormal([2, 6, 8], 0, 1, 'float32', 5);
    const y0 = m.predict(x) as tf.Tensor;
    const loaded = await karat.io.loadFromMemory(await karat.io.saveToMemory(m));
    for (const m2 of [m, loaded]) {
      const att = attentionLayers(m2);
      assert.ok(att[0].ownsOperator && att.slice(1).every(l => l.operator === att[0].operator && !l.ownsOperator));
      assert.deepEqual(m2.weights.filter(w => w.originalName.includes('/karat/')).map(w => w.originalName),
                       ['s0/karat/coeffs', 's0/karat/proj']);
    }
    assert.equal(loaded.countParams(), m.countParams());
    const y2 = loaded.predict(x) as tf.Tensor;
    assert.ok(bitIdentical(y0, y2));
    for (const mm of [m, loaded]) mm.dispose();
    tf.dispose([x, y0, y2]);
  });

  it('shareOperatorWith links eager layers too: one set of variables', () => {
    const [a, b] = [mha('e0'), mha('e1')];
    assert.equal(b.shareOperatorWith(a), b);
    const x = tf.randomNormal([1, 5, 8], 0, 1, 'float32', 6);
    const ya = a.apply(x) as tf.Tensor, yb = b.apply(ya) as tf.Tensor;
    assert.ok(a.ownsOperator && b.operator === a.operator && !b.ownsOperator);
    assert.ok(!b.weights.some(w => w.originalName.includes('/karat/')));
    tf.dispose([x, ya, yb]);
  });

  it('links that cannot share are named errors', () => {
    const blockwise = mha('n0', {attentionActivation: {...act, mode: 'blockwise'}});
    assert.throws(() => blockwise.shareOperatorWith(mha('n1')), /'n0'\.shareOperatorWith: only a layer with attentionActivation\.mode 'universal' shares an operator/);
    assert.throws(() => mha('n2').shareOperatorWith(mha('n3', {attentionActivation: {...act, shareName: 'other'}})),
                  /'n3' is not a universal-mode layer of shareName 'universal'/);
    assert.throws(() => mha('n4').shareOperatorWith(mha('n5', {numHeads: 4, keyDim: 2})), /same numHeads in every block; this layer has 2, 'n5' has 4/);
    assert.throws(() => mha('n6').shareOperatorWith(tfl.layers.dense({units: 2}) as never), /argument 'holder' must be another KArAtMultiHeadAttention layer/);
    const self = mha('n7');
    assert.throws(() => self.shareOperatorWith(self), /argument 'holder' must be another KArAtMultiHeadAttention layer/);
    const input = tfl.input({shape: [6, 8]});
    const built = mha('n8');
    built.apply(input);
    assert.throws(() => built.shareOperatorWith(mha('n9')), /'n8'\.shareOperatorWith: this layer is already built/);
    // The holder must be built first ...
    const [h0, h1] = [mha('o0'), mha('o1')];
    h1.shareOperatorWith(h0);
    assert.throws(() => h1.apply(input), /'o1': it shares the universal operator 'universal' of 'o0', which is not built yet/);
    // ... and upstream in the graph, where tf.loadLayersModel finds it again.
    const [p0, p1] = [mha('p0'), mha('p1')];
    p1.shareOperatorWith(p0);
    p0.apply(input);
    assert.throws(() => p1.apply(input), /'p1': it shares the universal operator of 'p0', but the graph upstream of this layer reaches no holder/);
    assert.throws(() => karat.transformerEncoderBlock(input, {dim: 8, heads: 2, operatorSharing: {} as never}),
                  /argument 'operatorSharing' must be a UniversalOperatorSharing/);
  });
});

describe('swapAttention', function() {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('our softmax attention equals tfjs-layers 4.22 MultiHeadAttention on the same weights', function() {
    const layer = new karat.KArAtMultiHeadAttention({numHeads: 2, keyDim: 3, name: 'ref_mha'});
    const q = tf.randomNormal([2, 5, 8], 0, 1, 'float32', 11);
    const [out, scores] = layer.callAndReturnAttentionScores(q);
    const arr = (t: tf.Tensor) => ({shape: t.shape, data: Array.from(t.dataSync())});
    const input = JSON.stringify({numHeads: 2, keyDim: 3, query: arr(q), weights: layer.getWeights().map(arr)});
    const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(__dirname, 'support/stock_mha_reference.ts')],
                        {input, encoding: 'utf8', timeout: 90000, cwd: path.resolve(__dirname, '..')});
    assert.equal(r.status, 0, `stock reference failed: ${r.stderr}`);
    const ref = JSON.parse(r.stdout);
    // Same weight layout as the stock EinsumDense sublayers ...
    assert.deepEqual(ref.weightShapes, layer.getWeights().map(w => w.shape));
    // ... and the same numbers.
    const d = (a: number[], b: tf.Tensor) => Math.max(...a.map((v, i) => Math.abs(v - (b.dataSync()[i]))));
    assert.deepEqual(ref.output.shape, out.shape);
    assert.ok(d(ref.output.data, out) < 1e-5, `output differs by ${d(ref.output.data, out)}`);
    assert.ok(d(ref.scores.data, scores) < 1e-6, `scores differ by ${d(ref.scores.data, scores)}`);
    tf.dispose([q, out, scores]);
  });

  it('KArAt -> softmax drops the operator; KArAt -> KArAt regrids G and converts blockwise/universal', async () => {
    const m = karat.models.vit({...SMALL, attention: G3B});
    const x = images(2, 4);
    const toSoftmax = await karat.swapAttentionWithReport(m, 'softmax');
    assert.deepEqual(toSoftmax.dropped.sort(), ['block0_attn/karat/coeffs', 'block0_attn/karat/proj', 'block1_attn/karat/coeffs', 'block1_attn/karat/proj']);
    assert.equal(toSoftmax.model.countParams(), karat.models.vit({...SMALL}).countParams());

    // Growing G keeps the learned function exactly (new harmonics start at 0).
    const g5 = await karat.swapAttentionWithReport(m, {...G3B, grid: 5});
    assert.equal(g5.partiallyCopied.length, 2);
    const a = m.predict(x) as tf.Tensor, b = g5.model.predict(x) as tf.Tensor;
    assert.ok(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] < 1e-5);
    const c5 = g5.model.weights.find(w => w.originalName === 'block1_attn/karat/coeffs')!.read();
    const c3 = m.weights.find(w => w.originalName === 'block1_attn/karat/coeffs')!.read();
    assert.ok(bitIdentical(tf.slice(c5, [0, 0, 0, 0, 0], [-1, -1, -1, -1, 3]), c3));
    assert.equal(tf.sum(tf.abs(tf.slice(c5, [0, 0, 0, 0, 3], [-1, -1, -1, -1, 2]))).dataSync()[0], 0);

    // blockwise -> universal: the first block's operator becomes the shared one.
    const u = await karat.swapAttention(m, G3U);
    const att = attentionLayers(u);
    assert.ok(att[1].operator === att[0].operator);
    assert.ok(bitIdentical(att[0].operator!.variables.coeffs.read(), m.weights.find(w => w.originalName === 'block0_attn/karat/coeffs')!.read()));
    // universal -> blockwise: every block gets a copy of the shared operator.
    const bw = await karat.swapAttention(u, G3B);
    const b1 = bw.weights.find(w => w.originalName === 'block1_attn/karat/coeffs')!.read();
    assert.ok(bitIdentical(b1, att[0].operator!.variables.coeffs.read()));
    for (const mm of [m, toSoftmax.model, g5.model, u, bw]) mm.dispose();
    tf.dispose([x, a, b]);
  });
});

describe('layers: bad input gives clear errors naming the argument', function() {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('image size not divisible by patch size', () => {
    assert.throws(() => karat.models.vit({...SMALL, imageSize: 18}), /'imageSize' \(18x18\) must be divisible by 'patchSize' \(4\)/);
  });

  it('numHeads not dividing dims', () => {
    assert.throws(() => karat.models.vit({...SMALL, dim: 30, heads: 4}), /argument 'heads' \(4\) must divide the embedding dimension dim \(30\)/);
  });

  it('unknown basis or mode', () => {
    assert.throws(() => karat.models.vit({...SMALL, attention: {basis: 'chebyshev' as never}}), /attention\.basis must be one of/);
    assert.throws(() => new karat.KArAtMultiHeadAttention({numHeads: 2, keyDim: 4, attentionActivation: {mode: 'global' as never}}),
                  /attentionActivation\.mode must be one of blockwise, universal, got "global"/);
    assert.throws(() => new karat.KArAtMultiHeadAttention({numHeads: 2, keyDim: 4, attentionActivation: 'relu' as never}),
                  /attentionActivation must be 'softmax' or a KArAt config/);
  });

  it('rank > N', () => {
    assert.throws(() => karat.models.vit({...SMALL, attention: {type: 'fourier', rank: 18}}), /'attention\.rank' \(18\) must be <= the number of tokens N = 17/);
    const layer = new karat.KArAtMultiHeadAttention({numHeads: 2, keyDim: 4, attentionActivation: {rank: 9}});
    assert.throws(() => layer.apply(tfl.input({shape: [8, 8]})), /attentionActivation\.rank must be <= the number of tokens N = 8, got 9/);
  });

  it('universal mode across blocks with different token counts', () => {
    const x = tfl.input({shape: [8, 16]});
    const act: karat.KArAtAttentionConfig = {grid: 2, rank: 2, mode: 'universal'};
    let h = new karat.KArAtMultiHeadAttention({numHeads: 2, keyDim: 4, attentionActivation: act, name: 'u0'}).apply(x) as tfl.SymbolicTensor;
    h = tfl.layers.reshape({targetShape: [4, 32]}).apply(h) as tfl.SymbolicTensor;
    const second = new karat.KArAtMultiHeadAttention({numHeads: 2, keyDim: 4, attentionActivation: act, name: 'u1'});
    assert.throws(() => second.apply(h), /mode 'universal' shares one operator across blocks, but this layer attends over N = 4 tokens while 'u0'.*N = 8/);
  });

  it('a model with no attention layer passed to swapAttention', async () => {
    const m = tfl.sequential({layers: [tfl.layers.dense({units: 2, inputShape: [3]})]});
    await assert.rejects(karat.swapAttention(m, 'softmax'), /swapAttention: argument 'model' has no attention layer/);
    await assert.rejects(karat.swapAttention(m, {mode: 'sideways'} as never), /attentionConfig\.mode must be one of/);
    m.dispose();
  });
});
