/**
 * Fused layer ops: LayerNorm, bias + GELU, softmax over the last axis, AdamW update.
 * Every backend (cpu, wasm, webgpu on Dawn; each skipped where unavailable): the shared
 * LAYER_OP_CASES (test/support/fused_layer_cases.ts) against cpu and a float64 reference, AdamW
 * against its float64 formula, layerNorm against tfjs-layers' LayerNormalization.
 * cpu: composite paths vs autodiff and tfjs-layers; argument errors; the ViT layers' path.
 * webgpu: the fused kernels dispatched, AdamW in place on variables, and a ViT whose layers take
 * the fused path matching the stock path.
 */
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

import * as karat from '../src/index';
import {describeWithBackends, onCpu} from './support/backend_suites';
import {ADAMW_HYPER as HYPER, describeLayerOpCases, lossAndGrads, rand, values} from './support/fused_layer_cases';
import {NODE_BACKENDS} from './support/node_backends';
import {maxErrorOverUnit} from './support/reference';
import {AdamW, Param} from '../src/training/adamw';
import {setTfjsVersionForTesting} from '../core/tfjs_internals';

function below(x: number, limit: number, what = 'value') {
  assert.ok(x < limit, `${what}: ${x} is not below ${limit}`);
}

describeLayerOpCases(NODE_BACKENDS);

describeWithBackends('fused layer ops: composite path', {backends: ['cpu']}, () => {
  it('analytic LayerNorm backward equals autodiff of the composite', async () => {
    const [M, C] = [9, 7];
    const x = tf.tensor2d(rand([M, C], 3, 2), [M, C]);
    const g = tf.tensor1d(rand([C], 1, 4)), b = tf.tensor1d(rand([C], 1, 5));
    const dy = tf.tensor2d(rand([M, C], 1, 6), [M, C]);
    const auto = tf.grads((xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) =>
        tf.sum(tf.mul(karat.compositeLayerNorm(xx as tf.Tensor2D, gg as tf.Tensor1D, bb as tf.Tensor1D, 1e-3), dy)))([x, g, b]);
    const ana = karat.compositeLayerNormGrad(dy, x, g, 1e-3);
    for (let i = 0; i < 3; i++) below(maxErrorOverUnit(await ana[i].data(), await auto[i].data()), 1e-4);
    tf.dispose([x, g, b, dy, ...auto, ...ana]);
  });

  it('biasGelu equals a Dense layer with activation gelu, and its analytic grad equals autodiff', async () => {
    const [M, C] = [6, 10];
    const x = tf.tensor2d(rand([M, C], 3, 8), [M, C]);
    const b = tf.tensor1d(rand([C], 1, 9));
    const stock = tfl.layers.activation({activation: 'gelu'}).apply(tf.add(x, b)) as tf.Tensor;
    const ours = karat.biasGelu(x, b);
    below(maxErrorOverUnit(await ours.data(), await stock.data()), 1e-6);
    const dy = tf.tensor2d(rand([M, C], 1, 10), [M, C]);
    const auto = tf.grads((xx: tf.Tensor, bb: tf.Tensor) =>
        tf.sum(tf.mul(karat.compositeBiasGelu(xx as tf.Tensor2D, bb as tf.Tensor1D), dy)))([x, b]);
    const ana = karat.compositeBiasGeluGrad(dy, x, b);
    // tfjs's erf is an approximation (|err| < 1.5e-7) whose autodiff uses the exact derivative.
    for (let i = 0; i < 2; i++) below(maxErrorOverUnit(await ana[i].data(), await auto[i].data()), 1e-5);
    tf.dispose([x, b, stock, ours, dy, ...auto, ...ana]);
  });

  it('adamWUpdateVariables assigns what adamWUpdate returns', async () => {
    const shape = [4, 3];
    const init = [rand(shape, 1, 21), rand(shape, 0.1, 22), rand(shape, 0.1, 23).map(Math.abs)];
    const g = tf.tensor(rand(shape, 1, 24), shape);
    const vars = init.map((a) => tf.variable(tf.tensor(a, shape)));
    const ref = karat.adamWUpdate(vars[0], vars[1], vars[2], g, HYPER);
    const refVals = await values(ref);
    karat.adamWUpdateVariables(vars[0], vars[1], vars[2], g, HYPER);
    const got = await values(vars);
    refVals.forEach((r, i) => below(maxErrorOverUnit(got[i], r), 1e-7, `output ${i}`));
    assert.throws(() => karat.adamWUpdateVariables(g as never, vars[1], vars[2], g, HYPER), /argument 'param' must be a tf.Variable/);
    tf.dispose([g, ...vars, ...ref]);
  });

  it('rejects bad arguments with messages naming them', () => {
    const x = tf.zeros([3, 4]);
    assert.throws(() => karat.layerNorm(x, tf.zeros([5]) as tf.Tensor1D, tf.zeros([4]) as tf.Tensor1D),
                  /layerNorm: argument 'gamma'.*C=4.*got \[5\]/);
    assert.throws(() => karat.layerNorm(x, tf.zeros([4]) as tf.Tensor1D, tf.zeros([4]) as tf.Tensor1D, -1),
                  /argument 'epsilon'/);
    assert.throws(() => karat.biasGelu('x' as never, tf.zeros([4]) as tf.Tensor1D), /biasGelu: argument 'x'/);
    assert.throws(() => karat.biasGelu(x, tf.zeros([3]) as tf.Tensor1D), /biasGelu: argument 'bias'/);
    assert.throws(() => karat.adamWUpdate(x, x, tf.zeros([4, 3]), x, HYPER), /adamWUpdate: argument 'v'/);
    assert.throws(() => karat.adamWUpdate(x, x, x, x, {...HYPER, step: 0}), /'step'/);
    assert.throws(() => karat.adamWUpdate(x, x, x, x, {...HYPER, beta1: 1}), /beta1/);
    assert.throws(() => karat.adamWUpdate(x, x, x, x, {...HYPER, amsgrad: true} as never), /adamWUpdate: unknown hyper-parameter 'amsgrad'/);
  });

  it('on cpu the LayerNorm layers take the composite layerNorm (no Tile-gradient Slice/Add), the stock layers when the flag is off', async () => {
    const model = karat.models.vit({preset: 'tiny', depth: 1, dim: 24, heads: 2, imageSize: 8, patchSize: 4, numClasses: 3});
    const x = tf.randomNormal([2, 8, 8, 3]);
    const y = tf.oneHot(tf.tensor1d([0, 2], 'int32'), 3);
    const stock = await lossAndGrads(model, x, y, false), lean = await lossAndGrads(model, x, y, true);
    assert.ok(stock.names.includes('FusedBatchNorm'));
    assert.ok(!lean.names.includes('FusedBatchNorm'), 'the composite layerNorm replaces tfjs-layers\' batchNorm formula');
    assert.deepEqual(lean.names.filter((n) => n.startsWith('KArAt')), [], 'no fused kernel is registered for cpu');
    const slices = (n: string[]) => n.filter((k) => k === 'Slice').length;
    assert.ok(slices(lean.names) * 10 < slices(stock.names), `Slice kernels: ${slices(lean.names)} vs ${slices(stock.names)}`);
    stock.vals.forEach((r, i) => below(maxErrorOverUnit(lean.vals[i], r), 1e-4, `loss/grad ${i}`));
    // A model loaded from its model.json takes the same path (the subclasses are registered).
    let artifacts: tf.io.ModelArtifacts | null = null;
    await model.save(tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return {modelArtifactsInfo: {dateSaved: new Date(), modelTopologyType: 'JSON'}};
    }));
    const loaded = await tfl.loadLayersModel(tf.io.fromMemory(artifacts!));
    const info = await tf.profile(() => loaded.predict(x) as tf.Tensor);
    assert.ok(!info.kernels.some((k) => k.name === 'FusedBatchNorm'), 'the reloaded model uses the layerNorm op');
    tf.dispose(info.result as tf.Tensor);
    loaded.dispose();
    tf.dispose([x, y]);
    model.dispose();
  });
});

describeWithBackends('fused layer ops: the webgpu kernels', {backends: ['webgpu']}, () => {
  it('the webgpu LayerNorm dispatches one kernel forward and the fused grad kernel backward', async () => {
    const x = tf.randomNormal([4, 8]), g = tf.ones([8]) as tf.Tensor1D, b = tf.zeros([8]) as tf.Tensor1D;
    const info = await tf.profile(() => tf.grad((xx: tf.Tensor) => tf.sum(karat.layerNorm(xx, g, b)))(x));
    const names = info.kernels.map((k) => k.name);
    assert.ok(names.includes('KArAtLayerNorm'));
    assert.ok(names.includes('KArAtLayerNormGrad'));
    assert.ok(!names.includes('FusedBatchNorm'));
    tf.dispose([x, g, b, info.result as tf.Tensor]);
  });

  it('adamWUpdate dispatches the one AdamW kernel', async () => {
    const t = tf.ones([4]);
    const info = await tf.profile(() => karat.adamWUpdate(t, t, t, t, HYPER));
    assert.deepEqual(info.kernels.map((k) => k.name), ['KArAtAdamW']);
    tf.dispose([t, ...(info.result as tf.Tensor[])]);
  });

  it('AdamW on variables: one in-place dispatch per parameter, matching cpu over two steps', async () => {
    const shape = [5, 13];
    const init = [rand(shape, 1, 31), rand(shape, 0.1, 32), rand(shape, 0.1, 33).map(Math.abs)];
    const grads = [rand(shape, 1, 34), rand(shape, 1, 35)];
    const run = async () => {
      const vars = init.map((a) => tf.tidy(() => tf.variable(tf.tensor(a, shape))));
      const ids = vars.map((v) => v.dataId);
      await vars[0].data();  // a cached CPU copy must not survive the in-place update
      const names: string[] = [];
      for (let s = 0; s < 2; s++) {
        const g = tf.tensor(grads[s], shape);
        const info = await tf.profile(() => karat.adamWUpdateVariables(vars[0], vars[1], vars[2], g, {...HYPER, step: s + 1}));
        names.push(...info.kernels.map((k) => k.name));
        g.dispose();
      }
      const out = await values(vars);
      const same = vars.map((v, i) => v.dataId === ids[i]);
      tf.dispose(vars);
      return {out, names, same};
    };
    const ref = await onCpu(run);
    const before = tf.memory().numTensors;
    const got = await run();
    assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
    ref.out.forEach((r, i) => below(maxErrorOverUnit(got.out[i], r), 1e-5, `output ${i}`));
    assert.deepEqual(got.names, ['KArAtAdamWInPlace', 'KArAtAdamWInPlace']);
    assert.deepEqual(got.same, [true, true, true], 'updated in place (same buffers)');
  });

  it('AdamW on variables whose buffer is shared falls back to new buffers and leaves the other tensor intact', async () => {
    const shape = [6];
    const shared = tf.tensor(rand(shape, 1, 41), shape);
    const p = tf.variable(shared);  // shares the buffer of 'shared' (2 references)
    const m = tf.tidy(() => tf.variable(tf.zeros(shape))), v = tf.tidy(() => tf.variable(tf.zeros(shape)));
    const g = tf.tensor(rand(shape, 1, 42), shape);
    const ref = await values(karat.compositeAdamW(p, m, v, g, HYPER));
    const sharedBefore = Float32Array.from(await shared.data() as Float32Array);
    karat.adamWUpdateVariables(p, m, v, g, HYPER);
    below(maxErrorOverUnit(await p.data() as Float32Array, ref[0]), 1e-6, 'param');
    below(maxErrorOverUnit(await m.data() as Float32Array, ref[1]), 1e-6, 'm');
    assert.deepEqual(Array.from(await shared.data() as Float32Array), Array.from(sharedBefore));
    tf.dispose([shared, p, m, v, g]);
  });

  it('on a tfjs version outside the supported internals, AdamW on variables writes new buffers with the same result', async () => {
    const shape = [7];
    const make = () => [rand(shape, 1, 71), rand(shape, 0.1, 72), rand(shape, 0.1, 73).map(Math.abs)]
        .map((a) => tf.tidy(() => tf.variable(tf.tensor(a, shape))));
    const g = tf.tensor(rand(shape, 1, 74), shape);
    const inPlace = make(), outOfPlace = make();
    const ids = outOfPlace.map((x) => x.dataId);
    karat.adamWUpdateVariables(inPlace[0], inPlace[1], inPlace[2], g, HYPER);
    setTfjsVersionForTesting('4.23.0');
    try {
      karat.adamWUpdateVariables(outOfPlace[0], outOfPlace[1], outOfPlace[2], g, HYPER);
    } finally {
      setTfjsVersionForTesting(null);
    }
    assert.deepEqual(outOfPlace.map((x, i) => x.dataId === ids[i]), [false, false, false], 'not written in place');
    const [a, b] = [await values(inPlace), await values(outOfPlace)];
    a.forEach((r, i) => below(maxErrorOverUnit(b[i], r), 1e-6, `output ${i}`));
    tf.dispose([...inPlace, ...outOfPlace, g]);
  });

  it('the training AdamW (decay groups, lrScale) uses the in-place kernel on webgpu and matches cpu', async () => {
    const shapes = [[4, 6], [6], [2, 3, 5]];
    const rules = [{decay: true, lrScale: 1, group: 'decay'}, {decay: false, lrScale: 1, group: 'no_decay'},
                   {decay: true, lrScale: 0.5, group: 'karat'}];
    const run = async () => {
      const params: Param[] = shapes.map((s, i) => ({
        name: `p${i}`, variable: tf.tidy(() => tf.variable(tf.tensor(rand(s, 1, 50 + i), s))), rule: rules[i]}));
      const opt = new AdamW(params, {weightDecay: 0.1});
      const names: string[] = [];
      for (let step = 0; step < 3; step++) {
        const g = shapes.map((s, i) => tf.tensor(rand(s, 1, 60 + 10 * step + i), s));
        const info = await tf.profile(() => opt.apply(g, 0.01 * (step + 1)));
        names.push(...new Set(info.kernels.map((k) => k.name)));
        tf.dispose(g);
      }
      const out = await values(params.map((p) => p.variable));
      const state = await opt.getState();
      opt.dispose();
      tf.dispose(params.map((p) => p.variable));
      return {out, names, state: state.data};
    };
    const ref = await onCpu(run);
    const got = await run();
    ref.out.forEach((r, i) => below(maxErrorOverUnit(got.out[i], r), 1e-5, `param ${i}`));
    below(maxErrorOverUnit(got.state, ref.state), 1e-5, 'm and v');
    assert.deepEqual([...new Set(got.names)], ['KArAtAdamWInPlace']);
  });

  for (const att of ['karat', 'softmax'] as const) {
  it(`a ${att} ViT on webgpu: fused layers give the stock loss and gradients, with fewer dispatches`, async () => {
    const model = karat.models.vit({
      preset: 'tiny', depth: 1, dim: 24, heads: 2, imageSize: 8, patchSize: 4, numClasses: 3,
      attention: att === 'softmax' ? 'softmax' : {type: 'fourier', grid: 2, rank: 3, mode: 'blockwise'},
    });
    const x = tf.randomNormal([2, 8, 8, 3]);
    const y = tf.oneHot(tf.tensor1d([0, 2], 'int32'), 3);
    const stock = await lossAndGrads(model, x, y, false);
    const fused = await lossAndGrads(model, x, y, true);
    assert.equal(stock.names.some((n) => n.startsWith('KArAtLayerNorm')), false);
    // flag off: the stock attention composition too (no fused softmax attention)
    assert.equal(stock.names.some((n) => n.startsWith('KArAtSoftmaxAttention')), false);
    const expected = ['KArAtLayerNorm', 'KArAtLayerNormGrad', 'KArAtBiasGelu', 'KArAtBiasGeluGrad'];
    if (att === 'softmax') expected.push('KArAtSoftmaxAttention', 'KArAtSoftmaxAttentionProbs', 'KArAtSoftmaxAttentionGradScores');
    // flag on, KArAt: the flash-style attention kernels (no N x N scores); off: the materialising path
    if (att === 'karat') expected.push(karat.KArAtFourierAttention, karat.KArAtFourierAttentionGradCoeffs);
    assert.equal(stock.names.some((n) => n.startsWith('KArAtFourierAttention')), false);
    for (const k of expected) {
      assert.ok(fused.names.includes(k), k);
    }
    below(fused.names.length, stock.names.length / 2, 'kernel calls fused vs stock');
    stock.vals.forEach((r, i) => below(maxErrorOverUnit(fused.vals[i], r), 2e-4, `grad ${i}`));
    tf.dispose([x, y]);
    model.dispose();
  });
  }
});
