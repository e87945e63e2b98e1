/**
 * Flash-style Fourier-KArAt attention on webgpu (kernels-webgpu/fourier_attention*.ts, used by
 * fourierAttention in core/attention.ts): the shared cases (test/support/fourier_attention_cases.ts)
 * on cpu, wasm and webgpu (Dawn) against the materialised fused op on the same backend and the
 * composite on cpu, forward and all five gradients; the explicit limits (beyond them the
 * materialising path runs, and is tested) and the tiling plans; on webgpu no kernel output of
 * N x N in either pass, bitwise determinism, no leaked tensors or GPU buffers, and training steps
 * of a tiny G3B ViT following cpu.
 */
import * as assert from 'node:assert/strict';

import * as tf from '@tensorflow/tfjs-core';

import {fourierAttentionPath, FOURIER_ATTENTION_LIMITS, FourierKArAt, KARAT_FUSED_FLAG} from '../src/index';
import {fourierAttentionPlan} from '../kernels-webgpu/plan';
import {describeWithBackends, withFlags} from './support/backend_suites';
import {Case, describeFourierAttentionCases, FLASH_KERNELS, makeData, NAMES, randn, run} from './support/fourier_attention_cases';
import {NODE_BACKENDS} from './support/node_backends';
import {expectFollowsCpu, trainTinyViT} from './support/vit_steps';

describeWithBackends('flash Fourier-KArAt attention: plan, limits, registration (no GPU)', {backends: ['cpu']}, () => {
  it('registers the six kernels for webgpu only', () => {
    for (const k of FLASH_KERNELS) {
      assert.ok(tf.getKernel(k, 'webgpu') != null, `${k} not registered for webgpu`);
      assert.equal(tf.getKernel(k, 'cpu'), undefined, `${k} unexpectedly registered for cpu`);
    }
  });

  it('every plan within the limits fits 16 KiB of workgroup memory and covers r, G and the head dim', () => {
    const L = FOURIER_ATTENTION_LIMITS;
    for (const r of [1, 2, 12, 21, 32, 63, L.rank]) {
      for (const G of [1, 3, 5, L.grid]) {
        for (const headDim of [1, 64, 65, 200, L.headDim]) {
          const p = fourierAttentionPlan({rank: r, grid: G, headDim});
          const where = `r=${r} G=${G} d=${headDim}`;
          for (const [prog, floats] of Object.entries(p.floats)) assert.ok(floats <= 4096, `${prog} ${where}: ${floats} floats`);
          assert.ok(p.split * r <= p.wg && p.split >= 1, `split ${where}`);
          assert.ok(p.dAcc * p.wg >= headDim && p.dAcc <= 4, `dAcc ${where}`);
          assert.ok(p.coeffAcc * p.wg >= 2 * r * G && (p.coeffAcc - 1) * p.wg < 2 * r * G, `coeffAcc ${where}`);
        }
      }
    }
  });

  it('takes the flash path for webgpu within the limits, the materialising path beyond each limit and on cpu', async () => {
    const ok = {B: 2, h: 3, N: 65, d: 64, r: 12, G: 3};
    assert.equal(fourierAttentionPath(ok, 'webgpu'), 'flash');
    assert.equal(fourierAttentionPath(ok, 'cpu'), 'materialise', 'cpu has no flash kernels');
    const L = FOURIER_ATTENTION_LIMITS;
    const edge = {B: 1, h: L.batchHeads, N: L.tokens, d: L.headDim, r: L.rank, G: L.grid};
    assert.equal(fourierAttentionPath(edge, 'webgpu'), 'flash', 'at every limit');
    for (const over of [{r: L.rank + 1}, {G: L.grid + 1}, {d: L.headDim + 1}, {N: L.tokens + 1}, {B: 2}]) {
      assert.equal(fourierAttentionPath({...edge, ...over}, 'webgpu'), 'materialise', JSON.stringify(over));
    }
    await withFlags({[KARAT_FUSED_FLAG]: false}, () => {
      assert.equal(fourierAttentionPath(ok, 'webgpu'), 'materialise', 'KARAT_FUSED off');
    });
  });
});

describeFourierAttentionCases(NODE_BACKENDS);

describeWithBackends('flash Fourier-KArAt attention: no N x N tensor, determinism, no leaks', {backends: ['webgpu']}, () => {
  const c: Case = {B: 2, h: 2, N: 13, d: 8, dv: 8, r: 5, G: 3};

  it('forward and backward run only the flash kernels and never create an N x N (or larger per-head) tensor', async () => {
    const data = makeData(c, 3);
    const info = await tf.profile(async () => {
      await run(c, data, 'op');
    });
    for (const k of FLASH_KERNELS) assert.ok(info.kernelNames.includes(k), `${k} did not run`);
    assert.ok(!info.kernelNames.includes(FourierKArAt), 'the materialising FourierKArAt ran');
    // Every tensor is O(B·h·N·(r + d)) or parameter-sized (dCoeffs [h,2,r,N,G]); N x N per head
    // would be B·h·N² elements with two axes of size N.
    const coeffsShape = [c.h, 2, c.r, c.N, c.G];
    let checked = 0;
    for (const k of info.kernels) {
      for (const shape of k.outputShapes) {
        checked++;
        if (shape.join() === coeffsShape.join()) continue;
        const size = shape.reduce((a, b) => a * b, 1);
        assert.ok(size < c.B * c.h * c.N * c.N, `${k.name} produced [${shape}]`);
        assert.ok(shape.filter((n) => n === c.N).length < 2, `${k.name} produced [${shape}]`);
      }
    }
    assert.ok(checked > 10, `only ${checked} kernel outputs seen`);
  });

  it('is deterministic: two runs give the same bits', async () => {
    const data = makeData(c, 4);
    const a = await run(c, data, 'op');
    const b = await run(c, data, 'op');
    for (let i = 0; i < a.length; i++) assert.deepEqual(b[i], a[i], `${NAMES[i]} differs between runs`);
  });

  it('leaks no tensors and no backend buffers', async () => {
    const data = makeData(c, 5);
    await run(c, data, 'op');  // compile pipelines first
    const tensors = tf.memory().numTensors;
    const dataIds = tf.backend().numDataIds();
    for (let i = 0; i < 3; i++) await run(c, data, 'op');
    assert.equal(tf.memory().numTensors, tensors, 'engine tensors leaked');
    assert.equal(tf.backend().numDataIds(), dataIds, 'backend buffers leaked');
  });
});

describeWithBackends('flash Fourier-KArAt attention: ViT training steps on webgpu follow cpu', {backends: ['webgpu']}, () => {
  const STEPS = 3;
  const imgs = randn(4 * 8 * 8 * 3, 31);
  const labels = [1, 0, 2, 1];

  const train = (backend: string, init: Float32Array[] | null) =>
      trainTinyViT(backend, init, {imgs, labels, steps: STEPS, lr: 0.05});

  it(`${STEPS} SGD steps of a G3B ViT give the same losses and weights as cpu, through the flash kernels`, async () => {
    const cpu = await train('cpu', null);
    const gpu = await train('webgpu', cpu.initial);
    for (const k of FLASH_KERNELS) assert.ok(gpu.kernels.has(k), `${k} not used on webgpu`);
    assert.ok(!gpu.kernels.has(FourierKArAt), 'the materialising FourierKArAt ran on webgpu');
    expectFollowsCpu('webgpu', gpu, cpu);
  });
});
