import * as assert from 'node:assert/strict';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

import * as karat from '../src/index';
import {maxRelError, randomArray} from './support/reference';

const BASES = ['fourier', 'rational', 'mexican_hat', 'morlet', 'dog', 'meyer', 'shannon', 'bspline'] as const;
const BASE_ACTS = ['zero', 'silu', 'identity'] as const;

function makeParams(cfg: karat.ResolvedOperatorConfig, h: number, N: number) {
  const specs = karat.operatorParamSpecs(cfg, h, N);
  const params: Record<string, tf.Tensor> = {};
  specs.forEach((s, i) => {
    // Perturb the deterministic initial values (translation 0 / scale 1 / weight 1) so that
    // every parameter's gradient is exercised away from a special point.
    const init = s.initializer.apply(s.shape);
    const n = init.size;
    params[s.name] = tf.add(init, tf.tensor(randomArray(n, 50 + i, 0.2), s.shape));
  });
  return {specs, params};
}

describe('General KArAt operators (cpu, composite)', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  for (const basis of BASES) {
    for (const baseActivation of BASE_ACTS) {
      it(`${basis} + ${baseActivation}: finite forward, gradients match finite differences`, () => {
        const B = 1, h = 2, N = 4, r = 2;
        const cfg = karat.resolveOperatorConfig({basis, baseActivation, rank: r, grid: 2, seed: 3,
                                                 rationalOrder: [2, 2], splineOrder: 2, gridRange: [-1.5, 1.5]});
        const {specs, params} = makeParams(cfg, h, N);
        const scores = tf.tensor4d(randomArray(B * h * N * N, 61, 1.2), [B, h, N, N]);
        const values = tf.tensor4d(randomArray(B * h * N * 3, 62), [B, h, N, 3]);
        const w = tf.tensor4d(randomArray(B * h * N * 3, 63), [B, h, N, 3]);
        const names = specs.map((s) => s.name);
        const loss = (s: tf.Tensor, ...ps: tf.Tensor[]) => {
          const p: Record<string, tf.Tensor> = {};
          names.forEach((n, i) => (p[n] = ps[i]));
          return tf.sum(tf.mul(karat.operatorAttention(s as tf.Tensor4D, p, cfg, values), w)) as tf.Scalar;
        };
        const out = karat.operatorAttention(scores, params, cfg, values);
        assert.deepEqual(out.shape, [B, h, N, 3]);
        assert.ok(out.dataSync().every(Number.isFinite));
        const all = [scores, ...names.map((n) => params[n])];
        const grads = tf.grads(loss)(all);
        // Central differences in float32 on a few entries of every input.
        const eps = 1e-2;
        all.forEach((x, xi) => {
          const g = grads[xi].dataSync();
          assert.ok(g.every(Number.isFinite), `gradient ${xi} finite`);
          const base = x.dataSync();
          const idx = [0, Math.floor(x.size / 2), x.size - 1];
          const scale = Math.max(1e-3, ...Array.from(g).map(Math.abs));
          for (const i of idx) {
            const plus = Float32Array.from(base), minus = Float32Array.from(base);
            plus[i] += eps;
            minus[i] -= eps;
            const args = (arr: Float32Array) => all.map((t, ti) => (ti === xi ? tf.tensor(arr, t.shape) : t));
            const up = loss(...(args(plus) as [tf.Tensor])).dataSync()[0];
            const dn = loss(...(args(minus) as [tf.Tensor])).dataSync()[0];
            const fd = (up - dn) / (2 * eps);
            assert.ok(Math.abs(fd - g[i]) <= 2e-2 * scale + 1e-3,
                `${xi === 0 ? 'scores' : names[xi - 1]}[${i}]: autodiff ${g[i]} vs FD ${fd}`);
          }
        });
      });
    }
  }

  it('the Fourier basis equals the fused op and the activation it documents', () => {
    const cfg = karat.resolveOperatorConfig({rank: 3, grid: 2});
    const {params} = makeParams(cfg, 2, 5);
    const scores = tf.tensor4d(randomArray(2 * 2 * 25, 71), [2, 2, 5, 5]);
    const a = karat.operatorActivation(scores, params, cfg);
    const b = karat.karatActivation(scores, params.coeffs as tf.Tensor5D, params.proj as tf.Tensor3D);
    assert.ok(maxRelError(a.dataSync(), b.dataSync()) < 1e-6);
  });

  it('rank "full" has no projection and returns the N x N operator directly', () => {
    const cfg = karat.resolveOperatorConfig({rank: 'full', grid: 1});
    const specs = karat.operatorParamSpecs(cfg, 2, 5);
    assert.deepEqual(specs.map((s) => [s.name, s.shape]), [['coeffs', [2, 2, 5, 5, 1]]]);
    const {params} = makeParams(cfg, 2, 5);
    const scores = tf.tensor4d(randomArray(50, 72), [1, 2, 5, 5]);
    const act = karat.operatorActivation(scores, params, cfg);
    const hid = karat.fourierKArAtHidden(scores, params.coeffs as tf.Tensor5D);
    assert.deepEqual(act.dataSync(), hid.dataSync());
  });

  it('B-spline basis functions form a partition of unity inside the grid', () => {
    const cfg = karat.resolveOperatorConfig({basis: 'bspline', grid: 4, splineOrder: 3, gridRange: [-1, 1]});
    const x = tf.tensor1d([-0.99, -0.5, 0.1, 0.77, 0.99]);
    const vals = karat.splineBasisValues(x, cfg);
    assert.equal(vals.length, 7);
    const sum = tf.addN(vals).dataSync();
    sum.forEach((v) => assert.ok(Math.abs(v - 1) < 1e-5, `sum ${v}`));
  });

  it('parameter counts: Fourier zero-base is h·N·r·(2G+1); layouts as documented', () => {
    const cfg = karat.resolveOperatorConfig({grid: 3, rank: 12});
    assert.equal(karat.operatorParamCount(cfg, 3, 197), 3 * 197 * 12 * 7);
    const shapes = (c: karat.KArAtOperatorConfig) => Object.fromEntries(
        karat.operatorParamSpecs(karat.resolveOperatorConfig(c), 2, 6).map((s) => [s.name, s.shape]));
    assert.deepEqual(shapes({rank: 4, grid: 2}), {coeffs: [2, 2, 4, 6, 2], proj: [2, 6, 4]});
    assert.deepEqual(shapes({basis: 'rational', rank: 4, rationalOrder: [3, 2]}),
        {numerator: [2, 4, 6, 4], denominator: [2, 4, 6, 2], proj: [2, 6, 4]});
    assert.deepEqual(shapes({basis: 'morlet', rank: 4, baseActivation: 'silu'}),
        {waveletWeight: [2, 4, 6], translation: [2, 4, 6], scale: [2, 4, 6], proj: [2, 6, 4], baseWeight: [2, 4, 6]});
    assert.deepEqual(shapes({basis: 'bspline', rank: 4, grid: 5, splineOrder: 3}),
        {splineCoeffs: [2, 4, 6, 8], proj: [2, 6, 4]});
  });

  it('init "scaled" and "normal" give the documented coefficient spread', () => {
    const N = 50, G = 4;
    const std = (init: 'scaled' | 'normal') => {
      const cfg = karat.resolveOperatorConfig({init, grid: G, rank: 8, seed: 5});
      const s = karat.operatorParamSpecs(cfg, 2, N)[0];
      const v = Array.from(s.initializer.apply(s.shape).dataSync());
      const mean = v.reduce((a, b) => a + b, 0) / v.length;
      return Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
    };
    assert.ok(Math.abs(std('scaled') - 1 / Math.sqrt(N * G)) < 0.1 / Math.sqrt(N * G));
    assert.ok(Math.abs(std('normal') - 1) < 0.1);
  });

  const bad: Array<[karat.KArAtOperatorConfig, RegExp]> = [
    [{basis: 'chebyshev' as never}, /attentionActivation.basis must be one of fourier, rational/],
    [{grid: 0}, /attentionActivation.grid must be an integer >= 1, got 0/],
    [{rank: 2.5}, /attentionActivation.rank must be an integer >= 1 or 'full', got 2.5/],
    [{baseActivation: 'relu' as never}, /attentionActivation.baseActivation must be one of zero, silu, identity/],
    [{rationalOrder: [2, -1]}, /attentionActivation.rationalOrder must be/],
    [{gridRange: [1, -1]}, /attentionActivation.gridRange must be \[lo, hi\] with finite lo < hi/],
    [{init: 'xavier' as never}, /attentionActivation.init must be 'scaled' or 'normal'/],
    [{grdi: 3} as never, /attentionActivation has an unknown key 'grdi'/],
  ];
  for (const [cfg, re] of bad) {
    it(`rejects operator config ${JSON.stringify(cfg)}`, () => {
      assert.throws(() => karat.resolveOperatorConfig(cfg), re);
    });
  }

  it('rejects rank > N and wrongly shaped parameters', () => {
    const cfg = karat.resolveOperatorConfig({rank: 8});
    assert.throws(() => karat.operatorParamSpecs(cfg, 2, 5),
        /attentionActivation.rank must be <= the number of tokens N = 5, got 8/);
    const cfg2 = karat.resolveOperatorConfig({rank: 2, grid: 1});
    const scores = tf.zeros([1, 2, 5, 5]) as tf.Tensor4D;
    assert.throws(() => karat.operatorHidden(scores, {coeffs: tf.zeros([2, 2, 2, 5, 2]), proj: tf.zeros([2, 5, 2])}, cfg2),
        /operatorHidden: argument 'params.coeffs' must have shape/);
    assert.throws(() => karat.operatorHidden(scores, {coeffs: tf.zeros([2, 2, 2, 5, 1])}, cfg2),
        /argument 'params.proj' must be a tf.Tensor/);
  });
});
