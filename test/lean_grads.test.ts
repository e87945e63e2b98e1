/**
 * leanGradients / leanVariableGrads: the memory-lean backward pass gives bitwise the
 * gradients of tf.engine().gradients / tf.variableGrads, leaks nothing, peaks lower (tf.profile
 * bookkeeping, deterministic), handles gradients that pass tensors through unchanged, nested
 * (higher-order) use, and rejects bad arguments by name.
 */
import '@tensorflow/tfjs-backend-cpu';

import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {strict as assert} from 'assert';

import * as karat from '../src/index';
import {enableLeanGradients, LEAN_GRADIENTS_TFJS_VERSIONS, leanGradients, leanGradientsAvailable, leanGradientsEnabled, leanGradientsSupportsVersion, leanVariableGrads, setTfjsVersionForTesting} from '../core/lean_grads';

async function sameValues(a: tf.Tensor, b: tf.Tensor, what: string) {
  assert.deepEqual(a.shape, b.shape, `${what}: shape`);
  const [x, y] = [await a.data(), await b.data()];
  for (let i = 0; i < x.length; i++) assert.equal(x[i], y[i], `${what}[${i}]: ${x[i]} vs ${y[i]}`);
}

describe('leanGradients / leanVariableGrads', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  for (const attention of ['softmax', {type: 'fourier', grid: 3, rank: 4, mode: 'blockwise'}] as const) {
    const name = typeof attention === 'string' ? attention : 'G3B';
    it(`a ${name} ViT: bitwise the tf.variableGrads gradients, no leak, lower peak memory`, async () => {
      const model = karat.models.vit({
        preset: 'tiny', depth: 2, imageSize: 16, patchSize: 8, channels: 3, numClasses: 5,
        dim: 32, heads: 2, attention: attention as never,
      });
      const x = tf.randomNormal([3, 16, 16, 3], 0, 1, 'float32', 7);
      const y = tf.oneHot(tf.tensor1d([0, 3, 4], 'int32'), 5);
      const vars = model.trainableWeights.map((w) => (w as unknown as {val: tf.Variable}).val);
      const loss = () => tf.mean(tfl.metrics.categoricalCrossentropy(y, model.apply(x, {training: true}) as tf.Tensor)) as tf.Scalar;
      const run = async (fn: typeof tf.variableGrads) => {
        const n0 = tf.memory().numTensors, before = tf.memory().numBytes;
        let out: {value: tf.Scalar, grads: tf.NamedTensorMap} | null = null;
        const prof = await tf.profile(() => {
          out = fn(loss, vars);
          return [];
        });
        // the peak above what was allocated before (the model's weights, the batch)
        return {out: out!, peak: prof.peakBytes - before, n0};
      };
      const stock = await run(tf.variableGrads);
      const lean = await run(leanVariableGrads);
      await sameValues(lean.out.value, stock.out.value, 'loss');
      assert.deepEqual(Object.keys(lean.out.grads).sort(), Object.keys(stock.out.grads).sort());
      for (const v of vars) await sameValues(lean.out.grads[v.name], stock.out.grads[v.name], v.name);
      assert.ok(lean.peak < 0.8 * stock.peak, `peak bytes: lean ${lean.peak} vs stock ${stock.peak}`);
      tf.dispose([lean.out.value, ...Object.values(lean.out.grads)]);
      assert.equal(tf.memory().numTensors, lean.n0, 'lean leaks no tensor');
      tf.dispose([stock.out.value, ...Object.values(stock.out.grads), x, y]);
      model.dispose();
    });
  }

  it('gradients that return a dy or one tensor for two inputs, shared subexpressions, a caller dy', async () => {
    // customGrad that hands dy through unchanged for both inputs (the same tensor object twice).
    const passThrough = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
      (args[2] as tf.GradSaveFunc)([]);
      return {value: tf.add(args[0] as tf.Tensor, args[1] as tf.Tensor), gradFunc: (dy: tf.Tensor) => [dy, dy]};
    }) as (a: tf.Tensor, b: tf.Tensor) => tf.Tensor;
    const a = tf.tensor1d([0.5, -1.5, 2]), b = tf.tensor1d([1, 2, -3]);
    const f = () => {
      const s = tf.mul(a, b);
      const t = passThrough(s, tf.sin(a));
      return tf.mul(tf.add(t, s), tf.exp(b));
    };
    const dy = tf.tensor1d([1, -2, 0.25]);
    const n0 = tf.memory().numTensors;
    const ref = tf.engine().gradients(f, [a, b], dy);
    const got = leanGradients(f, [a, b], dy);
    await sameValues(got.value, ref.value, 'value');
    await sameValues(got.grads[0]!, ref.grads[0], 'da');
    await sameValues(got.grads[1]!, ref.grads[1], 'db');
    assert.equal(dy.isDisposed, false, 'the caller dy is not disposed');
    tf.dispose([got.value, ...got.grads as tf.Tensor[], ref.value, ...ref.grads]);
    assert.equal(tf.memory().numTensors, n0);
  });

  it('inside another gradient (higher order) it falls back to tfjs and stays correct', async () => {
    const x = tf.scalar(0.7);
    // d/dx of (d/dx x^3) = 6x
    const d2 = tf.grad((t: tf.Tensor) => leanGradients(() => tf.pow(t, 3), [t]).grads[0]!)(x);
    assert.ok(Math.abs((await d2.data())[0] - 6 * 0.7) < 1e-5);
  });

  it('enableLeanGradients routes model.fit through the lean pass: bitwise the same weights, lower peak', async () => {
    const model = karat.models.vit({
      preset: 'tiny', depth: 1, imageSize: 16, patchSize: 8, channels: 3, numClasses: 4, dim: 16, heads: 2,
      attention: {type: 'fourier', grid: 2, rank: 3, mode: 'blockwise'},
    });
    const x = tf.randomNormal([8, 16, 16, 3], 0, 1, 'float32', 11);
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 3, 2, 1, 0], 'int32'), 4);
    const init = model.getWeights().map((w) => w.clone());
    const fit = async () => {
      model.setWeights(init);
      model.compile({optimizer: tf.train.adam(1e-2), loss: 'categoricalCrossentropy'});
      const prof = await tf.profile(async () => {
        await model.fit(x, y, {epochs: 2, batchSize: 4, shuffle: false, verbose: 0});
      });
      return {weights: await Promise.all(model.getWeights().map((w) => w.data())), peak: prof.peakBytes};
    };
    const stock = await fit();
    assert.equal(leanGradientsAvailable(), true, 'tfjs 4.22 exposes the engine internals the lean pass needs');
    assert.equal(enableLeanGradients(), true);
    assert.equal(leanGradientsEnabled(), true);
    let lean: Awaited<ReturnType<typeof fit>>;
    let d2: number;
    try {
      lean = await fit();
      // higher-order gradients still work while enabled (d²/dx² x³ = 6x)
      d2 = (await tf.grad((t: tf.Tensor) => tf.grad((u: tf.Tensor) => tf.pow(u, 3))(t))(tf.scalar(0.5)).data())[0];
    } finally {
      enableLeanGradients(false);
    }
    assert.equal(leanGradientsEnabled(), false);
    assert.ok(!Object.prototype.hasOwnProperty.call(tf.engine(), 'gradients'), 'the engine method is restored');
    assert.ok(Math.abs(d2 - 3) < 1e-5);
    stock.weights.forEach((w, i) => assert.deepEqual(Array.from(lean.weights[i]), Array.from(w), `weight ${i}`));
    assert.ok(lean.peak < stock.peak, `fit peak bytes: lean ${lean.peak} vs stock ${stock.peak}`);
    tf.dispose([x, y, ...init]);
    model.dispose();
  });

  it('is pinned to the installed tfjs-core: written for 4.22.x, available on it', () => {
    // tslint:disable-next-line:no-require-imports
    const installed = (require('@tensorflow/tfjs-core/package.json') as {version: string}).version;
    assert.equal(tf.version_core, installed);
    assert.equal(LEAN_GRADIENTS_TFJS_VERSIONS, '4.22.x');
    assert.ok(/^4\.22\.\d+$/.test(installed),
              `tfjs-core ${installed} is installed, but the lean backward pass was written for 4.22.x: check ` +
              `core/lean_grads.ts against this version's engine, then update LEAN_GRADIENTS_TFJS_VERSIONS and this test`);
    assert.equal(leanGradientsSupportsVersion(installed), true);
    assert.equal(leanGradientsAvailable(), true);
    for (const [v, ok] of [['4.22.0', true], ['4.22.13', true], ['4.21.0', false], ['4.23.0', false], ['5.0.0', false], ['4.22', false]] as const) {
      assert.equal(leanGradientsSupportsVersion(v), ok, v);
    }
    assert.equal(leanGradientsEnabled(), false, 'opt-in: nothing is routed through it by default');
  });

  it('on any other tfjs-core version it runs tfjs\'s own backward pass, with a one-time console note', async () => {
    const warn = console.warn;
    const notes: string[] = [];
    console.warn = (...args: unknown[]) => notes.push(args.join(' '));
    const x = tf.variable(tf.tensor1d([0.5, -1, 2]));
    try {
      setTfjsVersionForTesting('4.23.0');
      assert.equal(leanGradientsAvailable(), false);
      assert.equal(enableLeanGradients(), false, 'not enabled on another version');
      assert.ok(!Object.prototype.hasOwnProperty.call(tf.engine(), 'gradients'), 'tfjs untouched');
      const f = () => tf.sum(tf.mul(tf.sin(x), x)) as tf.Scalar;
      const ref = tf.engine().gradients(f, [x]);
      const got = leanGradients(f, [x]);
      await sameValues(got.grads[0]!, ref.grads[0], 'grad');
      const vg = leanVariableGrads(f, [x]);
      await sameValues(vg.grads[x.name], ref.grads[0], 'variable grad');
      tf.dispose([ref.value, ...ref.grads, got.value, ...got.grads as tf.Tensor[], vg.value, ...Object.values(vg.grads)]);
    } finally {
      setTfjsVersionForTesting(null);
      console.warn = warn;
      x.dispose();
    }
    const mine = notes.filter((n) => n.includes('lean backward pass was written for tfjs-core 4.22.x'));
    assert.equal(mine.length, 1, notes.join('\n'));
    assert.ok(mine[0].includes('this is tfjs-core 4.23.0'));
    assert.equal(leanGradientsAvailable(), true, 'the real version again');
  });

  it('rejects bad arguments by name', () => {
    const v = tf.variable(tf.scalar(1));
    assert.throws(() => leanGradients(null as never, [v]), /argument 'f'/);
    assert.throws(() => leanGradients(() => v, []), /argument 'xs'/);
    assert.throws(() => leanGradients(() => v, [v], tf.scalar(1, 'int32')), /argument 'dy'/);
    assert.throws(() => leanVariableGrads(() => tf.scalar(1) as tf.Scalar, [v]), /no variable is connected/);
    assert.throws(() => leanVariableGrads(() => tf.mul(v, tf.ones([2])) as never, [v]), /must return a scalar/);
    assert.throws(() => leanVariableGrads(() => v as never, [tf.scalar(1)] as never), /argument 'varList'/);
    const frozen = tf.variable(tf.scalar(2), false);
    assert.throws(() => leanVariableGrads(() => frozen as never, [frozen]), /at least one variable must be trainable/);
    assert.throws(() => enableLeanGradients('yes' as never), /enableLeanGradients: argument 'enable' must be a boolean/);
  });
});
