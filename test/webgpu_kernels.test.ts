/**
 * WebGPU kernels (kernels-webgpu/) against the CPU kernels, in Node on Dawn
 * (tfjs-backend-webgpu over Vulkan; SwiftShader here, a real GPU where there is one).
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

import '../src/index';
import {KARAT_FUSED_LAYERS_FLAG} from '../core/fused_layers';
import {FourierKArAt, FourierKArAtGrad} from '../core/kernel_names';
import {forwardPlan, gradCoeffsPlan, gradScoresPlan} from '../kernels-webgpu/plan';
import {normalish} from './browser/util';
import {describeOpCases, expectOpRunsLeakNothing, OpCase, opInputs, squaredHiddenGrads} from './support/op_cases';
import {maxErrorOverUnit} from './support/reference';
import {releaseWebGPUAfterAllTests, setupWebGPUNode, useWebGPUBackend} from './support/webgpu_node';
import {expectFollowsCpu, trainTinyViT} from './support/vit_steps';

const TOL = 1e-5;

releaseWebGPUAfterAllTests();

describe('webgpu kernels: registration', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

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

// The shared op cases (test/support/op_cases.ts) against the CPU kernel in this process.
describeOpCases('webgpu', {
  start: async () => {
    const status = await setupWebGPUNode();
    return status.available ? null : status.reason ?? 'unknown reason';
  },
  tolerance: () => ({rtol: 0, atolRel: TOL}),
});

describe('webgpu kernels: tf.grad and memory (Dawn)', function() {
  const c: OpCase = {B: 2, h: 2, N: 13, r: 5, G: 3};

  async function gradsOn(backend: string): Promise<Float32Array[]> {
    await tf.setBackend(backend);
    return squaredHiddenGrads(c, opInputs(c, 7));
  }

  before(async function() {
    await useWebGPUBackend(this);
  });

  it('tf.grads through fourierKArAtHidden equals cpu', async () => {
    const ref = await gradsOn('cpu');
    const got = await gradsOn('webgpu');
    const e0 = maxErrorOverUnit(got[0], ref[0]), e1 = maxErrorOverUnit(got[1], ref[1]);
    assert.ok(e0 < TOL, `dScores: relative error ${e0.toExponential(2)}`);
    assert.ok(e1 < TOL, `dCoeffs: relative error ${e1.toExponential(2)}`);
  });

  it('leaks no tensors and no backend buffers', async () => {
    await tf.setBackend('webgpu');
    await expectOpRunsLeakNothing(c, opInputs(c, 9), 3);
  });
});

describe('webgpu kernels: KArAt ViT training steps match cpu (Dawn)', function() {
  const STEPS = 3;
  const imgs = normalish(4 * 8 * 8 * 3, 1, 21);
  const labels = [0, 2, 1, 2];

  const train = (backend: string, init: Float32Array[] | null) =>
      trainTinyViT(backend, init, {imgs, labels, steps: STEPS, lr: 0.02});

  before(async function() {
    await useWebGPUBackend(this);
  });

  it(`${STEPS} SGD steps of a G3B ViT give the same losses and weights as cpu, using the fused kernels`, async () => {
    // Flag off: the layers form the scores and run FourierKArAt / FourierKArAtGrad (flag on, webgpu
    // runs the flash-style attention kernels instead: test/webgpu_flash_karat.test.ts).
    const saved = tf.env().getBool(KARAT_FUSED_LAYERS_FLAG);
    tf.env().set(KARAT_FUSED_LAYERS_FLAG, false);
    let cpu: Awaited<ReturnType<typeof train>>, gpu: Awaited<ReturnType<typeof train>>;
    try {
      cpu = await train('cpu', null);
      gpu = await train('webgpu', cpu.initial);
    } finally {
      tf.env().set(KARAT_FUSED_LAYERS_FLAG, saved);
    }
    assert.ok(gpu.kernels.has(FourierKArAt) && gpu.kernels.has(FourierKArAtGrad),
        `fused kernels not used on webgpu: ${[...gpu.kernels].filter((k) => /KArAt/.test(k)).join(', ')}`);
    expectFollowsCpu('webgpu', gpu, cpu);
  });
});
