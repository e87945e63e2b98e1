import * as assert from 'node:assert/strict';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

import * as karat from '../src/index';
import {describeWithBackends} from './support/backend_suites';
import {caseLabel, describeOpCases, OP_CASES, opInputs} from './support/op_cases';
import {maxRelError, randomArray, refHidden, RefDims} from './support/reference';

function inputs(d: RefDims, seed: number, scoreScale = 2) {
  const S = randomArray(d.B * d.h * d.N * d.N, seed, scoreScale);
  const C = randomArray(d.h * 2 * d.r * d.N * d.G, seed + 1, 1 / Math.sqrt(d.N * d.G));
  return {
    S, C,
    scores: tf.tensor4d(S, [d.B, d.h, d.N, d.N]),
    coeffs: tf.tensor5d(C, [d.h, 2, d.r, d.N, d.G]),
  };
}

function withComposite<T>(fn: () => T): T {
  tf.env().set(karat.KARAT_FUSED_FLAG, false);
  try {
    return fn();
  } finally {
    tf.env().set(karat.KARAT_FUSED_FLAG, true);
  }
}

describeWithBackends('Fourier-KArAt op contract', {backends: ['cpu']}, () => {

  it('registers fused CPU kernels for both contract kernels', () => {
    assert.ok(tf.getKernel(karat.FourierKArAt, 'cpu'));
    assert.ok(tf.getKernel(karat.FourierKArAtGrad, 'cpu'));
    assert.equal(karat.hasFusedKernel(karat.FourierKArAt, 'cpu'), true);
    assert.equal(withComposite(() => karat.hasFusedKernel(karat.FourierKArAt, 'cpu')), false);
  });

  // The shared op cases (test/support/op_cases.ts), here against the float64 reference; the
  // GPU suites run the same cases against this CPU kernel.
  OP_CASES.forEach((c, i) => {
    it(`forward equals the float64 reference and the composite path, ${caseLabel(c)}`, () => {
      const {scores: S, coeffs: C} = opInputs(c, 1000 + 17 * i);
      const scores = tf.tensor4d(S, [c.B, c.h, c.N, c.N]);
      const coeffs = tf.tensor5d(C, [c.h, 2, c.r, c.N, c.G]);
      const ref = refHidden(S, C, c);
      const fused = karat.fourierKArAtHidden(scores, coeffs);
      assert.deepEqual(fused.shape, [c.B, c.h, c.N, c.r]);
      const composite = karat.compositeFourierKArAtHidden(scores, coeffs);
      const viaOpComposite = withComposite(() => karat.fourierKArAtHidden(scores, coeffs));
      // relative to max(1, max|ref|); the composite's float32 sin/cos of |S| up to 40 costs ~1e-5
      const tol = (c.smax ?? 3) > 10 ? 1e-4 : 1e-5;
      assert.ok(maxRelError(fused.dataSync(), ref) <= 1e-5, `fused vs ref ${maxRelError(fused.dataSync(), ref)}`);
      assert.ok(maxRelError(composite.dataSync(), ref) <= tol,
          `composite vs ref ${maxRelError(composite.dataSync(), ref)}`);
      assert.deepEqual(viaOpComposite.dataSync(), composite.dataSync());
      tf.dispose([scores, coeffs, fused, composite, viaOpComposite]);
    });
  });

  it('fails the reference check when a coefficient is perturbed (the check can fail)', () => {
    const d = {B: 1, h: 2, N: 5, r: 3, G: 2};
    const {S, C, scores} = inputs(d, 3);
    const C2 = Float32Array.from(C);
    C2[7] += 0.01;
    const out = karat.fourierKArAtHidden(scores, tf.tensor5d(C2, [2, 2, 3, 5, 2]));
    assert.ok(maxRelError(out.dataSync(), refHidden(S, C, d)) > 1e-5);
  });

  for (const d of [{B: 2, h: 2, N: 6, r: 3, G: 3}, {B: 1, h: 1, N: 1, r: 2, G: 1},
                   {B: 1, h: 3, N: 11, r: 5, G: 5}]) {
    it(`gradients match float64 central differences and composite autodiff, ${JSON.stringify(d)}`, () => {
      const {S, C, scores, coeffs} = inputs(d, 100 + d.N);
      const W = randomArray(d.B * d.h * d.N * d.r, 7);
      const w = tf.tensor4d(W, [d.B, d.h, d.N, d.r]);
      const loss = (s: tf.Tensor, c: tf.Tensor) =>
          tf.sum(tf.mul(karat.fourierKArAtHidden(s as tf.Tensor4D, c as tf.Tensor5D), w));
      const [dS, dC] = tf.grads(loss)([scores, coeffs]);
      const [dS2, dC2] = withComposite(() => tf.grads(loss)([scores, coeffs]));
      const refLoss = (s: ArrayLike<number>, c: ArrayLike<number>) =>
          refHidden(s, c, d).reduce((acc, v, i) => acc + v * W[i], 0);
      const eps = 1e-6;
      const fd = (arr: Float32Array, other: Float32Array, isS: boolean) => {
        const x = Float64Array.from(arr);
        const out = new Float64Array(x.length);
        for (let i = 0; i < x.length; i++) {
          const v = x[i];
          x[i] = v + eps;
          const up = isS ? refLoss(x, other) : refLoss(other, x);
          x[i] = v - eps;
          const dn = isS ? refLoss(x, other) : refLoss(other, x);
          x[i] = v;
          out[i] = (up - dn) / (2 * eps);
        }
        return out;
      };
      const fdS = fd(S, C, true), fdC = fd(C, S, false);
      assert.ok(maxRelError(dS.dataSync(), fdS) < 1e-4, `dS vs FD ${maxRelError(dS.dataSync(), fdS)}`);
      assert.ok(maxRelError(dC.dataSync(), fdC) < 1e-4, `dC vs FD ${maxRelError(dC.dataSync(), fdC)}`);
      assert.ok(maxRelError(dS.dataSync(), dS2.dataSync()) < 1e-5);
      assert.ok(maxRelError(dC.dataSync(), dC2.dataSync()) < 1e-5);
      // The composite analytic backward (used for backends with a forward kernel only).
      const [dS3, dC3] = karat.compositeFourierKArAtGrad(w, scores, coeffs);
      assert.ok(maxRelError(dS3.dataSync(), fdS) < 1e-4);
      assert.ok(maxRelError(dC3.dataSync(), fdC) < 1e-4);
      tf.dispose([scores, coeffs, w, dS, dC, dS2, dC2, dS3, dC3]);
    });
  }

  it('fold identity: karatAttention = karatActivation · V', () => {
    const d = {B: 2, h: 3, N: 9, r: 4, G: 3};
    const {scores, coeffs} = inputs(d, 5);
    const proj = tf.tensor3d(randomArray(d.h * d.N * d.r, 9, 0.5), [d.h, d.N, d.r]);
    const values = tf.tensor4d(randomArray(d.B * d.h * d.N * 6, 11), [d.B, d.h, d.N, 6]);
    const act = karat.karatActivation(scores, coeffs, proj);
    assert.deepEqual(act.shape, [2, 3, 9, 9]);
    const viaAct = tf.matMul(act, values);
    const folded = karat.karatAttention(scores, coeffs, proj, values);
    assert.deepEqual(folded.shape, [2, 3, 9, 6]);
    assert.ok(maxRelError(folded.dataSync(), viaAct.dataSync()) < 1e-5);
    // σ̂[i, j] = Σ_p W[j, p] ĥ[i, p], checked element-wise for one entry.
    const hid = karat.fourierKArAtHidden(scores, coeffs).arraySync() as number[][][][];
    const W = proj.arraySync() as number[][][];
    const expected = hid[1][2][3].reduce((acc, v, p) => acc + W[2][4][p] * v, 0);
    assert.ok(Math.abs((act.arraySync() as number[][][][])[1][2][3][4] - expected) < 1e-5);
  });

  it('karatAttention gradients flow to scores, coeffs, proj and values', () => {
    const d = {B: 1, h: 2, N: 5, r: 3, G: 2};
    const {scores, coeffs} = inputs(d, 21);
    const proj = tf.tensor3d(randomArray(d.h * d.N * d.r, 22), [d.h, d.N, d.r]);
    const values = tf.tensor4d(randomArray(d.h * d.N * 4, 23), [1, d.h, d.N, 4]);
    const f = (s: tf.Tensor, c: tf.Tensor, p: tf.Tensor, v: tf.Tensor) => tf.sum(tf.square(
        karat.karatAttention(s as tf.Tensor4D, c as tf.Tensor5D, p as tf.Tensor3D, v as tf.Tensor4D)));
    const g = tf.grads(f)([scores, coeffs, proj, values]);
    const gRef = tf.grads((s: tf.Tensor, c: tf.Tensor, p: tf.Tensor, v: tf.Tensor) => tf.sum(tf.square(
        tf.matMul(karat.karatActivation(s as tf.Tensor4D, c as tf.Tensor5D, p as tf.Tensor3D), v))))(
        [scores, coeffs, proj, values]);
    g.forEach((x, i) => assert.ok(maxRelError(x.dataSync(), gRef[i].dataSync()) < 1e-4, `grad ${i}`));
  });

  it('trains with a tfjs optimizer (loss decreases)', () => {
    const d = {B: 2, h: 2, N: 6, r: 3, G: 2};
    const {scores} = inputs(d, 31);
    const coeffs = tf.variable(tf.tensor5d(randomArray(2 * 2 * 3 * 6 * 2, 32, 0.2), [2, 2, 3, 6, 2]));
    const target = tf.tensor4d(randomArray(2 * 2 * 6 * 3, 33), [2, 2, 6, 3]);
    const opt = tf.train.adam(0.05);
    const lossFn = () => tf.mean(tf.square(tf.sub(karat.fourierKArAtHidden(scores, coeffs as unknown as tf.Tensor5D), target))) as tf.Scalar;
    const first = lossFn().dataSync()[0];
    for (let i = 0; i < 30; i++) opt.minimize(lossFn);
    const last = lossFn().dataSync()[0];
    assert.ok(last < first * 0.5, `loss ${first} -> ${last}`);
  });

  it('leaks no tensors on success or on error', () => {
    const d = {B: 1, h: 2, N: 4, r: 2, G: 2};
    const {scores, coeffs} = inputs(d, 41);
    const proj = tf.tensor3d(randomArray(2 * 4 * 2, 42), [2, 4, 2]);
    const values = tf.tensor4d(randomArray(2 * 4 * 3, 43), [1, 2, 4, 3]);
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      karat.karatAttention(scores, coeffs, proj, values);
      karat.karatActivation(scores, coeffs, proj);
      tf.grads((s: tf.Tensor, c: tf.Tensor) => tf.sum(karat.fourierKArAtHidden(s as tf.Tensor4D, c as tf.Tensor5D)))([scores, coeffs]);
      withComposite(() => karat.karatAttention(scores, coeffs, proj, values));
    });
    assert.equal(tf.memory().numTensors, before);
    const out = karat.karatAttention(scores, coeffs, proj, values);
    assert.equal(tf.memory().numTensors, before + 1);
    out.dispose();
    assert.throws(() => karat.karatAttention(scores, coeffs, proj, tf.zeros([1, 2, 5, 3]) as tf.Tensor4D));
    assert.equal(tf.memory().numTensors, before + 1);  // only the zeros tensor made for the call
  });
});

// The shared op cases (every backend runs them): forward and both gradients against the float64
// reference, tf.grads, leaks.
describeOpCases(['cpu']);

describeWithBackends('Fourier-KArAt bad input', {backends: ['cpu']}, () => {
  const S = () => tf.zeros([2, 3, 5, 5]) as tf.Tensor4D;
  const C = (shape: number[] = [3, 2, 4, 5, 2]) => tf.zeros(shape) as unknown as tf.Tensor5D;
  const cases: Array<[string, () => unknown, RegExp]> = [
    ['scores of rank 3', () => karat.fourierKArAtHidden(tf.zeros([3, 5, 5]) as unknown as tf.Tensor4D, C()),
     /fourierKArAtHidden: argument 'scores' must have rank 4 .*got rank 3 with shape \[3, 5, 5\]/],
    ['non-square scores', () => karat.fourierKArAtHidden(tf.zeros([2, 3, 5, 4]) as tf.Tensor4D, C()),
     /argument 'scores' must be square/],
    ['coeffs of rank 4', () => karat.fourierKArAtHidden(S(), tf.zeros([3, 2, 4, 5]) as unknown as tf.Tensor5D),
     /argument 'coeffs' must have rank 5/],
    ['coeffs with wrong heads', () => karat.fourierKArAtHidden(S(), C([2, 2, 4, 5, 2])),
     /argument 'coeffs' must have shape \[h=3, 2=2, r, N=5, G\], got \[2, 2, 4, 5, 2\]/],
    ['coeffs with wrong N', () => karat.fourierKArAtHidden(S(), C([3, 2, 4, 6, 2])),
     /argument 'coeffs' .*axis 3 'N' is 6, expected 5/],
    ['coeffs axis 1 not 2', () => karat.fourierKArAtHidden(S(), C([3, 3, 4, 5, 2])), /axis 1 '2' is 3, expected 2/],
    ['G = 0', () => karat.fourierKArAtHidden(S(), C([3, 2, 4, 5, 0])), /grid G .* must be >= 1, got 0/],
    ['r = 0', () => karat.fourierKArAtHidden(S(), C([3, 2, 0, 5, 2])), /rank r .* must be >= 1, got 0/],
    ['int32 scores', () => karat.fourierKArAtHidden(tf.zeros([2, 3, 5, 5], 'int32') as tf.Tensor4D, C()),
     /argument 'scores' must have dtype float32, got int32/],
    ['int32 coeffs', () => karat.fourierKArAtHidden(S(), tf.zeros([3, 2, 4, 5, 2], 'int32') as tf.Tensor5D),
     /argument 'coeffs' must have dtype float32, got int32/],
    ['not a tensor', () => karat.fourierKArAtHidden([[1]] as unknown as tf.Tensor4D, C()),
     /argument 'scores' must be a tf.Tensor/],
    ['proj with wrong r', () => karat.karatActivation(S(), C(), tf.zeros([3, 5, 3]) as tf.Tensor3D),
     /karatActivation: argument 'proj' must have shape \[h=3, N=5, r=4\], got \[3, 5, 3\]/],
    ['proj with wrong N', () => karat.karatAttention(S(), C(), tf.zeros([3, 6, 4]) as tf.Tensor3D, tf.zeros([2, 3, 5, 8]) as tf.Tensor4D),
     /karatAttention: argument 'proj' .*expected 5/],
    ['values with wrong N', () => karat.karatAttention(S(), C(), tf.zeros([3, 5, 4]) as tf.Tensor3D, tf.zeros([2, 3, 6, 8]) as tf.Tensor4D),
     /karatAttention: argument 'values' must have shape \[B=2, h=3, N=5, dv\]/],
    ['values with wrong heads', () => karat.karatAttention(S(), C(), tf.zeros([3, 5, 4]) as tf.Tensor3D, tf.zeros([2, 2, 5, 8]) as tf.Tensor4D),
     /argument 'values' .*axis 1 'h' is 2, expected 3/],
    ['disposed input', () => { const s = S(); s.dispose(); return karat.fourierKArAtHidden(s, C()); },
     /argument 'scores' has been disposed/],
  ];
  for (const [name, fn, re] of cases) {
    it(`rejects ${name} with a clear error`, () => {
      assert.throws(() => tf.tidy(() => { fn(); }), (e: Error) => {
        assert.ok(e instanceof karat.KArAtArgumentError, `got ${e.name}: ${e.message}`);
        assert.match(e.message, re);
        return true;
      });
    });
  }
});
