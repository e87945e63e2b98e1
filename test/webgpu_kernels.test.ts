/**
 * WebGPU kernels (kernels-webgpu/) against the CPU kernels and the float64 reference, in Node
 * on Dawn (tfjs-backend-webgpu over Vulkan; SwiftShader here, a real GPU where there is one):
 * the shared op cases (test/support/op_cases.ts, describeOpCases on the 'webgpu' test backend),
 * tf.grads, leaks, and training steps of a tiny G3B ViT against cpu.
 *
 * Tolerance: max |webgpu − cpu| ≤ TOL · max |cpu| per output, TOL = 1e-5. The
 * CPU kernel accumulates in float64; the shaders in float32 with their own range-reduced
 * sin/cos (not the WGSL builtins, which may be off by 2^-11) and the angle-addition
 * recurrence. Measured on SwiftShader: at most 3.1e-7 over the shared op cases, so TOL
 * leaves a 30x margin for other GPUs' rounding, while an indexing mistake gives O(1).
 */
import * as assert from 'node:assert/strict';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

import {FourierKArAt, FourierKArAtGrad, KARAT_FUSED_LAYERS_FLAG} from '../src/index';
import {forwardPlan, gradCoeffsPlan, gradScoresPlan} from '../kernels-webgpu/plan';
import {normalish} from './browser/util';
import {describeWithBackends, withFlags} from './support/backend_suites';
import './support/node_backends';
import {describeOpCases} from './support/op_cases';
import {expectFollowsCpu, trainTinyViT} from './support/vit_steps';

const TOL = 1e-5;

describeWithBackends('webgpu kernels: registration', {backends: ['cpu']}, () => {
  it('registers FourierKArAt and FourierKArAtGrad for backend webgpu', () => {
    assert.ok(tf.getKernel(FourierKArAt, 'webgpu') != null, 'FourierKArAt not registered');
    assert.ok(tf.getKernel(FourierKArAtGrad, 'webgpu') != null, 'FourierKArAtGrad not registered');
  });

  it('tiling plans stay within 16 KiB of workgroup memory and cover every p, m and row', () => {
    const LIMIT = 16384 / 4;  // floats every WebGPU adapter guarantees
    for (const G of [1, 2, 3, 5, 8, 9, 16, 33]) {
      for (const r of [1, 3, 12, 16, 17, 40, 64]) {
        const d = {batch: 3, heads: 2, tokens: 197, rank: r, grid: G};
        const f = forwardPlan(d), s = gradScoresPlan(d), c = gradCoeffsPlan(d);
        const where = `r=${r} G=${G}`;
        assert.ok(2 * f.pt * f.mb * f.qt + f.lanes * f.rows <= LIMIT, `forward ${where}`);
        assert.ok(s.rt * s.pc + 2 * s.pc * s.mb * s.qLanes <= LIMIT, `dScores ${where}`);
        assert.ok(2 * c.pt * c.mb <= 96, `dCoeffs accumulators ${where}`);
        assert.ok(f.mb <= 8 && f.mb * f.blocks >= G, `harmonic blocks ${where}`);
        assert.ok(f.pt * f.pTiles >= r && s.pc * s.pChunks >= r && c.pt * c.pTiles >= r, `p cover ${where}`);
        assert.ok(c.chunks * c.chunkRows >= 3 * 197 && (c.chunks - 1) * c.chunkRows < 3 * 197, `chunks ${where}`);
        assert.ok(c.chunks <= 64, `partial buffer bound ${where}`);
      }
    }
  });
});

// The shared op cases (test/support/op_cases.ts) against the float64 reference and the CPU
// kernel in this process, tf.grads of a non-linear loss, and leaks.
describeOpCases(['webgpu'], {
  tolerance: () => ({rtol: 0, atolRel: TOL}),
  fusedKernels: () => true,
  gradTol: TOL,
});

describeWithBackends('webgpu kernels: KArAt ViT training steps match cpu', {backends: ['webgpu']}, () => {
  const STEPS = 3;
  const imgs = normalish(4 * 8 * 8 * 3, 1, 21);
  const labels = [0, 2, 1, 2];

  const train = (backend: string, init: Float32Array[] | null) =>
      trainTinyViT(backend, init, {imgs, labels, steps: STEPS, lr: 0.02});

  it(`${STEPS} SGD steps of a G3B ViT give the same losses and weights as cpu, using the fused kernels`, async () => {
    // Flag off: the layers form the scores and run FourierKArAt / FourierKArAtGrad (flag on, webgpu
    // runs the flash-style attention kernels instead: test/webgpu_flash_karat.test.ts).
    const [cpu, gpu] = await withFlags({[KARAT_FUSED_LAYERS_FLAG]: false}, async () => {
      const ref = await train('cpu', null);
      return [ref, await train('webgpu', ref.initial)];
    });
    assert.ok(gpu.kernels.has(FourierKArAt) && gpu.kernels.has(FourierKArAtGrad),
        `fused kernels not used on webgpu: ${[...gpu.kernels].filter((k) => /KArAt/.test(k)).join(', ')}`);
    expectFollowsCpu('webgpu', gpu, cpu);
  });
});
