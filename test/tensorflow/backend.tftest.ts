/**
 * The `tensorflow` backend (tfjs-node, the TensorFlow C library) running the Fourier-KArAt ops,
 * first through their composite path, then through the fused op library loaded into TensorFlow
 * (kernels-cuda/tensorflow: CPU kernels, `make -C kernels-cuda tfops-cpu`), as the test backends
 * 'tensorflow' and 'tensorflow-fused-op' (test/support/tensorflow_node.ts): the shared OP_CASES
 * against the float64 reference and the cpu kernel, tf.grads, leaks (describeOpCases), and a few
 * training steps of a tiny G3B ViT against cpu; backend selection picks it; the CLI trains on
 * it. The suites run in file order: the composite ones before the op library is loaded
 * (loading is once per process).
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

import {loadTensorFlowKernels} from '../../kernels-cuda/tensorflow/loader';
import * as karat from '../../src/index';
import {FourierKArAt, FourierKArAtGrad, KARAT_FUSED_FLAG} from '../../src/index';
import {selectBackend} from '../../src/training/backend';
import {describeWithBackends} from '../support/backend_suites';
import {describeOpCases} from '../support/op_cases';
import {randomArray} from '../support/reference';
import {skipWithoutTensorFlow, TENSORFLOW, TENSORFLOW_FUSED_OP} from '../support/tensorflow_node';
import {expectFollowsCpu, trainTinyViT} from '../support/vit_steps';

// Composite path first (before the op library is loaded), then the fused op.
describeOpCases([TENSORFLOW.id], {fusedKernels: () => false});

describeWithBackends('tensorflow backend: composite path', {backends: [TENSORFLOW.id]}, () => {
  it('runs the composite path (no fused FourierKArAt kernel is registered for tensorflow)', () => {
    assert.equal(tf.getKernel(FourierKArAt, 'tensorflow'), undefined);
  });
});

describeWithBackends('tensorflow backend: the op library', {backends: [TENSORFLOW.id], flags: {[KARAT_FUSED_FLAG]: true}}, () => {
  it('loads into the TensorFlow that tfjs-node mapped, registers both kernels and passes its probe', () => {
    const st = loadTensorFlowKernels();
    assert.ok(st.loaded, `${st.step}: ${st.reason}`);
    assert.deepEqual([...st.kernels].sort(), [FourierKArAt, FourierKArAtGrad].sort());
    assert.ok(tf.getKernel(FourierKArAt, 'tensorflow') != null);
    assert.equal(karat.hasFusedKernel('FourierKArAt', 'tensorflow'), true);
    assert.equal(st.probe, 'passed');
  });
});

describeOpCases([TENSORFLOW_FUSED_OP.id], {fusedKernels: () => true});

describeWithBackends('tensorflow backend: fused op errors', {backends: [TENSORFLOW_FUSED_OP.id]}, () => {
  it('a bad shape is a TensorFlow error naming the op, not a crash', () => {
    const b = tf.backend() as unknown as {executeSingleOutput(n: string, a: unknown[], i: tf.Tensor[]): tf.TensorInfo};
    const s = tf.zeros([1, 1, 2, 3]), k = tf.zeros([1, 2, 1, 2, 1]);
    try {
      assert.throws(() => b.executeSingleOutput('KaratFourierKArAt', [], [s, k]), /KaratFourierKArAt: 'scores' must have shape/);
    } finally {
      tf.dispose([s, k]);
    }
  });
});

describeWithBackends('tensorflow backend: KArAt ViT training steps match cpu', {backends: [TENSORFLOW.id, TENSORFLOW_FUSED_OP.id]}, (env) => {
  const fused = env.id === TENSORFLOW_FUSED_OP.id;
  it(`3 SGD steps of a G3B ViT${fused ? ' on the fused kernels' : ''} give the same losses and weights as cpu`, async () => {
    const o = {imgs: randomArray(4 * 8 * 8 * 3, 21), labels: [0, 2, 1, 2], steps: 3, lr: 0.02};
    const cpu = await trainTinyViT('cpu', null, o);
    const got = await trainTinyViT(env.backend, cpu.initial, o);
    if (fused) {
      assert.ok(got.kernels.has(FourierKArAt) && got.kernels.has(FourierKArAtGrad),
          `fused kernels not used: ${[...got.kernels].filter((k) => /KArAt/.test(k)).join(', ')}`);
    }
    expectFollowsCpu(env.id, got, cpu);
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
