/**
 * wasm kernels (kernels-wasm/) of FourierKArAt and FourierKArAtGrad, in Node on
 * tfjs-backend-wasm: against the float64 reference of the spec's formulas
 * (test/support/reference.ts) and the cpu kernels, through tf.grads, for leaks, and in a
 * few training steps of a tiny G3B ViT.
 *
 * Both paths of the kernels run: the WebAssembly SIMD module (default) and the cpu kernels'
 * TypeScript implementation on the wasm heap (KARAT_WASM_SIMD=false, the fallback where
 * SIMD is unavailable). The cases are the shared OP_CASES (test/support/op_cases.ts) that every
 * backend runs. Tolerance: max |err| ≤ 1e-5 · max(1, max |ref|). The TypeScript path
 * accumulates in float64 and equals the cpu kernels exactly; the SIMD module accumulates
 * ĥ and the per-slice dCoeffs in float32 (f32x4): each case logs its error, at most 3.8e-7
 * on these cases, so TOL leaves a 26x margin, while an indexing mistake gives O(1).
 */
import * as assert from 'node:assert/strict';
import {spawnSync} from 'node:child_process';
import {createRequire} from 'node:module';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';

import * as karat from '../src/index';
import {fourierKArAtGrad, fourierKArAtHidden} from '../src/index';
import {FourierKArAt, FourierKArAtGrad} from '../core/kernel_names';
import {maxErrorOverUnit as relErr, randomArray, refGrads, refHidden} from './support/reference';
import {caseLabel, expectOpRunsLeakNothing, OP_CASES, OpCase, OpInputs, opInputs, squaredHiddenGrads} from './support/op_cases';
import {expectFollowsCpu, trainTinyViT} from './support/vit_steps';

const TOL = 1e-5;

/** Runs `fn` with the wasm kernels' SIMD module on or off. */
async function withSimd<T>(on: boolean, fn: () => Promise<T>): Promise<T> {
  tf.env().set(karat.KARAT_WASM_SIMD_FLAG, on);
  try {
    return await fn();
  } finally {
    tf.env().set(karat.KARAT_WASM_SIMD_FLAG, true);
  }
}

/** ĥ, dScores, dCoeffs of the ops on `backend`, and the kernels that ran. */
async function runOp(backend: string, c: OpCase, d: OpInputs): Promise<{values: Float32Array[], kernels: string[]}> {
  await tf.setBackend(backend);
  let outs: tf.Tensor[] = [];
  const info = await tf.profile(() => {
    outs = tf.tidy(() => {
      const s = tf.tensor4d(d.scores, [c.B, c.h, c.N, c.N]);
      const k = tf.tensor5d(d.coeffs, [c.h, 2, c.r, c.N, c.G]);
      const g = tf.tensor4d(d.weight, [c.B, c.h, c.N, c.r]);
      return [fourierKArAtHidden(s, k), ...fourierKArAtGrad(g, s, k)];
    });
    return outs;
  });
  const values = await Promise.all(outs.map((t) => t.data() as Promise<Float32Array>));
  tf.dispose(outs);
  return {values, kernels: info.kernelNames};
}

describe('wasm kernels: registration', () => {
  before(async () => {
    await tf.setBackend('wasm');
  });
  after(async () => {
    await tf.setBackend('cpu');
  });

  it('registers FourierKArAt and FourierKArAtGrad for backend wasm; hasFusedKernel follows the KARAT_FUSED flag', () => {
    assert.ok(tf.getKernel(FourierKArAt, 'wasm') != null, 'FourierKArAt not registered');
    assert.ok(tf.getKernel(FourierKArAtGrad, 'wasm') != null, 'FourierKArAtGrad not registered');
    assert.equal(karat.hasFusedKernel('FourierKArAt', 'wasm'), true);
    assert.equal(karat.hasFusedKernel('FourierKArAtGrad', 'wasm'), true);
    tf.env().set(karat.KARAT_FUSED_FLAG, false);
    try {
      assert.equal(karat.hasFusedKernel('FourierKArAt', 'wasm'), false);
    } finally {
      tf.env().set(karat.KARAT_FUSED_FLAG, true);
    }
  });

  it('the embedded SIMD module is the build of its AssemblyScript source', function() {
    try {
      createRequire(__filename).resolve('assemblyscript/package.json');
    } catch {
      console.log('      [skip] assemblyscript is not installed (npm install builds it)');
      this.skip();
    }
    this.timeout(120000);
    const r = spawnSync(process.execPath, ['scripts/build-wasm.mjs', '--check'], {encoding: 'utf8'});
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  });

  it('runs the SIMD module in Node, and the TypeScript path when KARAT_WASM_SIMD is false', async () => {
    assert.deepEqual(karat.wasmKernelStatus(), {path: 'simd', reason: null});
    await withSimd(false, async () => {
      assert.deepEqual(karat.wasmKernelStatus(), {path: 'typescript', reason: 'KARAT_WASM_SIMD is false'});
    });
  });
});

describe('wasm kernels vs the float64 reference and the cpu kernels', () => {
  after(async () => {
    await tf.setBackend('cpu');
  });

  for (const [i, c] of OP_CASES.entries()) {
    it(`${caseLabel(c)}: forward, dScores, dCoeffs (SIMD module and TypeScript path)`, async () => {
      const d = opInputs(c, 100 + 17 * i);
      const cpu = await runOp('cpu', c, d);
      const simd = await runOp('wasm', c, d);
      const ts = await withSimd(false, () => runOp('wasm', c, d));
      for (const wasm of [simd, ts]) {
        assert.ok(wasm.kernels.includes(FourierKArAt) && wasm.kernels.includes(FourierKArAtGrad),
            `fused kernels did not run on wasm: ${wasm.kernels.join(', ')}`);
      }
      const ref = refGrads(d.weight, d.scores, d.coeffs, c);
      const refs = [refHidden(d.scores, d.coeffs, c), ref.dS, ref.dC];
      const names = ['hidden', 'dScores', 'dCoeffs'];
      const simdErrors: number[] = [];
      for (let k = 0; k < 3; k++) {
        for (const [path, wasm] of [['simd', simd], ['typescript', ts]] as const) {
          const err = relErr(wasm.values[k], refs[k]);
          assert.ok(err < TOL, `${path} ${names[k]} vs float64 reference: relative error ${err.toExponential(2)} >= ${TOL}`);
          if (path === 'simd') simdErrors.push(err);
        }
        const errCpu = relErr(simd.values[k], cpu.values[k]);
        assert.ok(errCpu < TOL, `simd ${names[k]} vs cpu kernel: relative error ${errCpu.toExponential(2)} >= ${TOL}`);
        assert.deepEqual(ts.values[k], cpu.values[k], `typescript ${names[k]}: differs from the cpu kernel`);
      }
      console.log(`      simd ${caseLabel(c)}: max error / max(1, max|ref|) = ` +
                  simdErrors.map((e) => e.toExponential(2)).join(', ') + ' (hidden, dScores, dCoeffs)');
    });
  }

  it('the reference check fails when an input is perturbed (the check can fail)', async () => {
    const c: OpCase = {B: 1, h: 2, N: 5, r: 3, G: 2};
    const d = opInputs(c, 3);
    const wasm = await runOp('wasm', c, d);
    assert.ok(relErr(wasm.values[0], refHidden(d.scores, d.coeffs, c)) < TOL);
    const C2 = Float32Array.from(d.coeffs);
    C2[7] += 0.01;
    assert.ok(relErr(wasm.values[0], refHidden(d.scores, C2, c)) > TOL);
    const dy2 = Float32Array.from(d.weight);
    dy2[2] += 0.01;
    assert.ok(relErr(wasm.values[2], refGrads(dy2, d.scores, d.coeffs, c).dC) > TOL);
  });
});

describe('wasm kernels: tf.grads and memory', () => {
  const c: OpCase = {B: 2, h: 2, N: 13, r: 5, G: 3};

  after(async () => {
    await tf.setBackend('cpu');
  });

  async function gradsOn(backend: string): Promise<Float32Array[]> {
    await tf.setBackend(backend);
    return squaredHiddenGrads(c, opInputs(c, 7));
  }

  it('tf.grads through fourierKArAtHidden equals cpu (SIMD module and TypeScript path)', async () => {
    const ref = await gradsOn('cpu');
    for (const on of [true, false]) {
      const got = await withSimd(on, () => gradsOn('wasm'));
      const e0 = relErr(got[0], ref[0]), e1 = relErr(got[1], ref[1]);
      assert.ok(e0 < TOL, `simd ${on}: dScores: relative error ${e0.toExponential(2)}`);
      assert.ok(e1 < TOL, `simd ${on}: dCoeffs: relative error ${e1.toExponential(2)}`);
    }
  });

  it('leaks no tensors and no wasm heap buffers', async () => {
    await tf.setBackend('wasm');
    await expectOpRunsLeakNothing(c, opInputs(c, 9), 2, [(run) => withSimd(false, run)]);
  });
});

describe('wasm kernels: KArAt ViT training steps match cpu', function() {
  this.timeout(120000);
  const STEPS = 3;
  const imgs = randomArray(4 * 8 * 8 * 3, 21);
  const labels = [0, 2, 1, 2];

  after(async () => {
    await tf.setBackend('cpu');
  });

  const train = (backend: string, init: Float32Array[] | null) =>
      trainTinyViT(backend, init, {imgs, labels, steps: STEPS, lr: 0.02});

  it(`${STEPS} SGD steps of a G3B ViT give the same losses and weights as cpu, using the fused kernels`, async () => {
    const cpu = await train('cpu', null);
    const wasm = await train('wasm', cpu.initial);
    assert.ok(wasm.kernels.has(FourierKArAt) && wasm.kernels.has(FourierKArAtGrad),
        `fused kernels not used on wasm: ${[...wasm.kernels].filter((k) => /KArAt/.test(k)).join(', ')}`);
    expectFollowsCpu('wasm', wasm, cpu);
  });
});
