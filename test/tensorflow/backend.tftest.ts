/**
 * The `tensorflow` backend (tfjs-node, the TensorFlow C library) running the Fourier-KArAt ops,
 * first through their composite path, then through the fused op library loaded into TensorFlow
 * (kernels-cuda/tensorflow: CPU kernels, `make -C kernels-cuda tfops-cpu`): the shared OP_CASES
 * against the cpu kernel, tf.grads, leaks, and a few training steps of a tiny G3B ViT against
 * cpu; backend selection picks it; the CLI trains on it. The suites run in file order: the
 * composite ones before the op library is loaded (loading is once per process).
 *
 * These files are not in mocha's default spec: importing tfjs-node registers its backend at a
 * higher priority and its file:// IO handlers, which must not reach the other suites. `npm test`
 * runs them in a mocha process of their own (scripts/test.mjs). tfjs-node is an optional peer:
 * scripts/tfjs-node-from-wheel.sh builds it here from the tensorflow-cpu wheel; without it the
 * suites skip with the reason.
 */
import {strict as assert} from 'node:assert';
import {spawnSync} from 'node:child_process';
import {mkdtempSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

import {loadTensorFlowKernels, TensorFlowKernelStatus} from '../../kernels-cuda/tensorflow/loader';
import * as karat from '../../src/index';
import {FourierKArAt, FourierKArAtGrad} from '../../core/kernel_names';
import {selectBackend} from '../../src/training/backend';
import {describeOpCases, expectOpRunsLeakNothing, OpCase, opInputs, squaredHiddenGrads} from '../support/op_cases';
import {maxErrorOverUnit as relErr, randomArray} from '../support/reference';
import {skipWithoutTensorFlow, startTensorFlow} from '../support/tensorflow_node';
import {expectFollowsCpu, trainTinyViT} from '../support/vit_steps';

describe('tensorflow backend, composite path (before the op library is loaded)', () => {
  describeOpCases('tensorflow', {start: startTensorFlow});
});

describe('tensorflow backend: composite path', () => {
  const c: OpCase = {B: 2, h: 2, N: 13, r: 5, G: 3};

  before(async function() {
    await skipWithoutTensorFlow(this);
  });
  after(async () => {
    await tf.setBackend('cpu');
  });

  it('runs the composite path (no fused FourierKArAt kernel is registered for tensorflow)', async () => {
    await tf.setBackend('tensorflow');
    assert.equal(tf.getKernel(FourierKArAt, 'tensorflow'), undefined);
  });

  it('tf.grads of a non-linear loss through fourierKArAtHidden equals cpu', async () => {
    await tf.setBackend('cpu');
    const ref = await squaredHiddenGrads(c, opInputs(c, 7));
    await tf.setBackend('tensorflow');
    const got = await squaredHiddenGrads(c, opInputs(c, 7));
    for (let i = 0; i < 2; i++) {
      const e = relErr(got[i], ref[i]);
      assert.ok(e < 2e-5, `grad ${i}: relative error ${e.toExponential(2)}`);
    }
  });

  it('leaks no tensors and no TensorFlow handles', async () => {
    await tf.setBackend('tensorflow');
    await expectOpRunsLeakNothing(c, opInputs(c, 9), 2);
  });
});

describe('tensorflow backend: KArAt ViT training steps match cpu', function() {
  this.timeout(120000);
  const imgs = randomArray(4 * 8 * 8 * 3, 21);
  const labels = [0, 2, 1, 2];

  before(async function() {
    await skipWithoutTensorFlow(this);
  });
  after(async () => {
    await tf.setBackend('cpu');
  });

  it('3 SGD steps of a G3B ViT give the same losses and weights as cpu', async () => {
    const o = {imgs, labels, steps: 3, lr: 0.02};
    const cpu = await trainTinyViT('cpu', null, o);
    const got = await trainTinyViT('tensorflow', cpu.initial, o);
    expectFollowsCpu('tensorflow', got, cpu);
  });
});

describe('tensorflow backend, fused op (libkarat_tf_ops_cpu.so loaded with TF_LoadLibrary)', () => {
  let status: TensorFlowKernelStatus | undefined;
  const startFused = async (): Promise<string | null> => {
    const why = await startTensorFlow();
    if (why != null) return why;
    await tf.setBackend('tensorflow');
    status = loadTensorFlowKernels();
    await tf.setBackend('cpu');
    return status.loaded ? null : `the op library did not load (${status.step}: ${status.reason}); ` +
        'scripts/tfjs-node-from-wheel.sh builds it (make -C kernels-cuda tfops-cpu)';
  };

  describe('loading', () => {
    before(async function() {
      await skipWithoutTensorFlow(this);
    });
    after(async () => {
      await tf.setBackend('cpu');
    });

    it('loads into the TensorFlow that tfjs-node mapped, registers both kernels and passes its probe', async () => {
      await tf.setBackend('tensorflow');
      const st = loadTensorFlowKernels();
      assert.ok(st.loaded, `${st.step}: ${st.reason}`);
      assert.deepEqual([...st.kernels].sort(), [FourierKArAt, FourierKArAtGrad].sort());
      assert.ok(tf.getKernel(FourierKArAt, 'tensorflow') != null);
      assert.equal(karat.hasFusedKernel('FourierKArAt', 'tensorflow'), true);
      assert.equal(st.probe, 'passed');
    });
  });

  describeOpCases('tensorflow', {start: startFused});

  describe('gradients, leaks, training', function() {
    this.timeout(120000);
    const c: OpCase = {B: 2, h: 2, N: 13, r: 5, G: 3};
    before(async function() {
      const why = await startFused();
      if (why != null) {
        console.warn(`!!! SKIPPED: fused op on tensorflow: ${why}`);
        this.skip();
      }
    });
    after(async () => {
      await tf.setBackend('cpu');
    });

    it('tf.grads of a non-linear loss runs the fused kernels and equals cpu', async () => {
      await tf.setBackend('cpu');
      const ref = await squaredHiddenGrads(c, opInputs(c, 7));
      await tf.setBackend('tensorflow');
      let got: Float32Array[] = [];
      const info = await tf.profile(async () => {
        got = await squaredHiddenGrads(c, opInputs(c, 7));
      });
      assert.ok(info.kernelNames.includes(FourierKArAt) && info.kernelNames.includes(FourierKArAtGrad),
          `fused kernels not used: ${info.kernelNames.join(', ')}`);
      for (let i = 0; i < 2; i++) {
        const e = relErr(got[i], ref[i]);
        assert.ok(e < 2e-5, `grad ${i}: relative error ${e.toExponential(2)}`);
      }
    });

    it('leaks no tensors and no TensorFlow handles', async () => {
      await tf.setBackend('tensorflow');
      await expectOpRunsLeakNothing(c, opInputs(c, 9), 2);
    });

    it('a bad shape is a TensorFlow error naming the op, not a crash', async () => {
      await tf.setBackend('tensorflow');
      const b = tf.backend() as unknown as {executeSingleOutput(n: string, a: unknown[], i: tf.Tensor[]): tf.TensorInfo};
      const s = tf.zeros([1, 1, 2, 3]), k = tf.zeros([1, 2, 1, 2, 1]);
      try {
        assert.throws(() => b.executeSingleOutput('KaratFourierKArAt', [], [s, k]), /KaratFourierKArAt: 'scores' must have shape/);
      } finally {
        tf.dispose([s, k]);
      }
    });

    it('3 SGD steps of a G3B ViT on the fused kernels give the same losses and weights as cpu', async () => {
      const o = {imgs: randomArray(4 * 8 * 8 * 3, 21), labels: [0, 2, 1, 2], steps: 3, lr: 0.02};
      const cpu = await trainTinyViT('cpu', null, o);
      const got = await trainTinyViT('tensorflow', cpu.initial, o);
      assert.ok(got.kernels.has(FourierKArAt) && got.kernels.has(FourierKArAtGrad),
          `fused kernels not used: ${[...got.kernels].filter((k) => /KArAt/.test(k)).join(', ')}`);
      expectFollowsCpu('tensorflow', got, cpu);
    });
  });
});

describe('tensorflow backend: selection', () => {
  before(async function() {
    await skipWithoutTensorFlow(this);
  });
  after(async () => {
    await tf.setBackend('cpu');
  });

  it("'auto' picks tensorflow when tfjs-node is installed, and says so", async () => {
    const info = await selectBackend('auto');
    assert.equal(info.name, 'tensorflow');
    assert.equal(tf.getBackend(), 'tensorflow');
    assert.match(info.detail, /tfjs-node/);
    assert.match(info.detail, /Fourier-KArAt (fused op|composite path)/);
  });
});

describe('karat CLI on tensorflow (child process)', function() {
  this.timeout(240000);
  before(async function() {
    await skipWithoutTensorFlow(this);
  });

  it('karat info --probe reports tensorflow working; karat train --backend tensorflow trains', () => {
    const cli = (args: string[]) => spawnSync(process.execPath, ['bin/karat.cjs', ...args], {encoding: 'utf8'});
    const out = mkdtempSync(join(tmpdir(), 'karat-tf-'));
    const probe = cli(['info', '--probe']);
    assert.equal(probe.status, 0, probe.stderr);
    assert.match(probe.stdout, /tensorflow\s*\|?\s*available[^\n]*tfjs-node/, probe.stdout);
    const run = cli(['train', '--backend', 'tensorflow', '--train-limit', '32', '--test-limit', '16', '--epochs', '1',
      '--dim', '16', '--depth', '1', '--heads', '2', '--mlp-ratio', '1', '--patch-size', '8', '--grid', '1', '--rank', '4',
      '--batch-size', '16', '--eval-batch-size', '16', '--mixup', '0', '--cutmix', '0', '--out-dir', out]);
    rmSync(out, {recursive: true, force: true});
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout + run.stderr, /tensorflow/);
  });
});
