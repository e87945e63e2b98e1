/**
 * wasm kernels (kernels-wasm/) of FourierKArAt and FourierKArAtGrad, in Node on
 * tfjs-backend-wasm: against the float64 reference of the spec's formulas
 * (test/support/reference.ts) and the cpu kernels, through tf.grads, for leaks, and in a
 * few training steps of a tiny G3B ViT.
 *
 * Both paths of the kernels run, as two test backends (test/support/node_backends.ts): 'wasm',
 * the WebAssembly SIMD module (default), and 'wasm-typescript', the cpu kernels' TypeScript
 * implementation on the wasm heap (KARAT_WASM_SIMD=false, the fallback where SIMD is
 * unavailable). The cases are the shared OP_CASES (test/support/op_cases.ts, describeOpCases)
 * that every backend runs. Tolerance: max |err| ≤ 1e-5 · max |ref|. The TypeScript path
 * accumulates in float64 and equals the cpu kernels exactly; the SIMD module accumulates
 * ĥ and the per-slice dCoeffs in float32 (f32x4): each case logs its error, at most 3.8e-7
 * on these cases, so TOL leaves a 26x margin, while an indexing mistake gives O(1).
 */
import * as assert from 'node:assert/strict';
import {spawnSync} from 'node:child_process';
import {createRequire} from 'node:module';

import * as tf from '@tensorflow/tfjs-core';

import * as karat from '../src/index';
import {FourierKArAt, FourierKArAtGrad, fourierKArAtGrad, fourierKArAtHidden} from '../src/index';
import {describeWithBackends, valuesOf, withFlags} from './support/backend_suites';
import {WASM, WASM_TYPESCRIPT} from './support/node_backends';
import {describeOpCases, OpCase, OpInputs, opInputs} from './support/op_cases';
import {maxErrorOverUnit as relErr, randomArray, refGrads, refHidden} from './support/reference';
import {expectFollowsCpu, trainTinyViT} from './support/vit_steps';

const TOL = 1e-5;

/** ĥ, dScores, dCoeffs of the ops on the active backend. */
async function opValues(c: OpCase, d: OpInputs): Promise<Float32Array[]> {
  return valuesOf(() => {
    const s = tf.tensor4d(d.scores, [c.B, c.h, c.N, c.N]);
    const k = tf.tensor5d(d.coeffs, [c.h, 2, c.r, c.N, c.G]);
    const g = tf.tensor4d(d.weight, [c.B, c.h, c.N, c.r]);
    return [fourierKArAtHidden(s, k), ...fourierKArAtGrad(g, s, k)];
  });
}

describeWithBackends('wasm kernels: registration', {backends: ['wasm']}, () => {
  it('registers FourierKArAt and FourierKArAtGrad for backend wasm; hasFusedKernel follows the KARAT_FUSED flag', async () => {
    assert.ok(tf.getKernel(FourierKArAt, 'wasm') != null, 'FourierKArAt not registered');
    assert.ok(tf.getKernel(FourierKArAtGrad, 'wasm') != null, 'FourierKArAtGrad not registered');
    assert.equal(karat.hasFusedKernel('FourierKArAt', 'wasm'), true);
    assert.equal(karat.hasFusedKernel('FourierKArAtGrad', 'wasm'), true);
    await withFlags({[karat.KARAT_FUSED_FLAG]: false}, () => {
      assert.equal(karat.hasFusedKernel('FourierKArAt', 'wasm'), false);
    });
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
    await withFlags({[karat.KARAT_WASM_SIMD_FLAG]: false}, () => {
      assert.deepEqual(karat.wasmKernelStatus(), {path: 'typescript', reason: 'KARAT_WASM_SIMD is false'});
    });
  });
});

// The shared op cases against the float64 reference and the cpu kernel, tf.grads, leaks: on the
// SIMD module ('wasm') and the TypeScript path ('wasm-typescript', equal to the cpu kernel).
describeOpCases([WASM.id, WASM_TYPESCRIPT.id], {
  tolerance: () => ({rtol: 0, atolRel: TOL}),
  fusedKernels: () => true,
  exact: (env) => env.id === WASM_TYPESCRIPT.id,
  gradTol: TOL,
});

describeWithBackends('wasm kernels: the reference check', {backends: [WASM.id]}, () => {
  it('the reference check fails when an input is perturbed (the check can fail)', async () => {
    const c: OpCase = {B: 1, h: 2, N: 5, r: 3, G: 2};
    const d = opInputs(c, 3);
    const wasm = {values: await opValues(c, d)};
    assert.ok(relErr(wasm.values[0], refHidden(d.scores, d.coeffs, c)) < TOL);
    const C2 = Float32Array.from(d.coeffs);
    C2[7] += 0.01;
    assert.ok(relErr(wasm.values[0], refHidden(d.scores, C2, c)) > TOL);
    const dy2 = Float32Array.from(d.weight);
    dy2[2] += 0.01;
    assert.ok(relErr(wasm.values[2], refGrads(dy2, d.scores, d.coeffs, c).dC) > TOL);
  });
});

describeWithBackends('wasm kernels: KArAt ViT training steps match cpu', {backends: [WASM.id, WASM_TYPESCRIPT.id]}, function(env) {
  this.timeout(120000);
  const STEPS = 3;
  const imgs = randomArray(4 * 8 * 8 * 3, 21);
  const labels = [0, 2, 1, 2];

  const train = (backend: string, init: Float32Array[] | null) =>
      trainTinyViT(backend, init, {imgs, labels, steps: STEPS, lr: 0.02});

  it(`${STEPS} SGD steps of a G3B ViT give the same losses and weights as cpu, using the fused kernels`, async () => {
    const cpu = await train('cpu', null);
    const wasm = await train('wasm', cpu.initial);
    assert.ok(wasm.kernels.has(FourierKArAt) && wasm.kernels.has(FourierKArAtGrad),
        `fused kernels not used on ${env.id}: ${[...wasm.kernels].filter((k) => /KArAt/.test(k)).join(', ')}`);
    expectFollowsCpu(env.id, wasm, cpu);
  });
});
