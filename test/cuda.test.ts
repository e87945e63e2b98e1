/**
 * kernels-cuda on a machine without a GPU: the lazy loaders must skip cleanly and say why,
 * the harness file format and the compare tool must work, and the built addon (when
 * `npm run build:cuda` was run) must load and report the device state. GPU execution itself is
 * checked by kernels-cuda/device-run.sh on the GPU machine; the addon test below also runs
 * the kernels when a CUDA device is present.
 */
import * as assert from 'node:assert/strict';
import {spawnSync} from 'node:child_process';
import {existsSync, mkdtempSync, readFileSync, rmSync} from 'node:fs';
import {createRequire} from 'node:module';
import {tmpdir} from 'node:os';
import {join, resolve} from 'node:path';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

import {
  compositeFourierKArAtHidden, FourierKArAt, FourierKArAtGrad, hasFusedKernel, loadCudaAddon, loadTensorFlowKernels,
  tensorFlowKernelStatus,
} from '../src/node';
import {fourierKArAtGradImpl, fourierKArAtImpl} from '../kernels-cpu/fourier_karat_impl';
import {compareCases, KaratCase, normalisedError, readCases, writeCases} from '../kernels-cuda/harness/compare';
import {tensorFlowKernelConfigs} from '../kernels-cuda/tensorflow/loader';
import {TF_BACKEND} from '../kernels-cuda/tensorflow/util';
import type {FourierKArAtDims} from '../core/kernel_names';

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

function syntheticCase(name: string, dims: FourierKArAtDims, seed: number): KaratCase {
  const {batch: B, heads: h, tokens: N, rank: r, grid: G} = dims;
  const rand = rng(seed);
  const fill = (n: number, scale: number) => Float32Array.from({length: n}, () => rand() * scale);
  const scores = fill(B * h * N * N, 4), coeffs = fill(h * 2 * r * N * G, 0.5), dy = fill(B * h * N * r, 2);
  const hidden = fourierKArAtImpl(scores, coeffs, dims);
  const [dscores, dcoeffs] = fourierKArAtGradImpl(dy, scores, coeffs, dims);
  return {name, dims, scores, coeffs, dy, hidden, dscores, dcoeffs};
}

function installed(name: string): boolean {
  try {
    createRequire(resolve('package.json')).resolve(`${name}/package.json`);
    return true;
  } catch {
    return false;
  }
}

describe('kernels-cuda: tfjs-node-gpu (tensorflow backend) lazy loader', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('skips and reports why when @tensorflow/tfjs-node(-gpu) is absent', function() {
    if (installed('@tensorflow/tfjs-node-gpu') || installed('@tensorflow/tfjs-node')) {
      console.log('    (tfjs-node is installed here: the absent-binding case cannot be observed)');
      this.skip();
    }
    const status = loadTensorFlowKernels();
    assert.equal(status.loaded, false);
    assert.equal(status.step, 'package');
    assert.match(status.reason, /tfjs-node-gpu.*not installed/);
    assert.deepEqual(status.kernels, []);
    assert.equal(tensorFlowKernelStatus(), status);
    assert.equal(tf.getKernel(FourierKArAt, TF_BACKEND), undefined);
    assert.equal(tf.getKernel(FourierKArAtGrad, TF_BACKEND), undefined);
    // So the ops stay on the composite path for that backend.
    assert.equal(hasFusedKernel(FourierKArAt, TF_BACKEND), false);
  });

  it('names the missing step when the package exists but its backend was never imported', () => {
    // tfjs-core stands in for an installed package; no 'tensorflow' backend is registered.
    assert.equal(tf.findBackendFactory(TF_BACKEND), null);
    const status = loadTensorFlowKernels({packages: ['@tensorflow/tfjs-core']});
    assert.equal(status.loaded, false);
    assert.equal(status.step, 'backend');
    assert.equal(status.package, '@tensorflow/tfjs-core');
    assert.ok(status.reason.includes("no 'tensorflow' backend registered"), status.reason);
  });

  it('stops before registering anything when the addon or op library cannot be used', () => {
    // A stand-in 'tensorflow' backend factory (never initialised: low priority, cpu stays active).
    tf.registerBackend(TF_BACKEND, () => null as unknown as tf.KernelBackend, -100);
    try {
      const status = loadTensorFlowKernels({packages: ['@tensorflow/tfjs-core'], addonPath: '/nonexistent/karat_cuda.node'});
      assert.equal(status.loaded, false);
      // Without a build: 'addon'. With `npm run build:cuda` done: libtensorflow is not loaded in
      // this process, so TF_LoadLibrary cannot even be found: 'load'.
      assert.ok(['addon', 'op-library', 'load'].includes(status.step), status.step);
      assert.ok(status.reason.length > 10, status.reason);
      assert.deepEqual(status.kernels, []);
      assert.equal(tf.getKernel(FourierKArAt, TF_BACKEND), undefined);
    } finally {
      tf.removeBackend(TF_BACKEND);
    }
    assert.equal(tf.getBackend(), 'cpu');
  });

  it('kernel configs call the TensorFlow ops of the op library', () => {
    const calls: Array<{name: string, n: number, outs?: number}> = [];
    const fake = {
      executeSingleOutput: (name: string, _a: unknown[], inputs: tf.TensorInfo[]) => {
        calls.push({name, n: inputs.length});
        return inputs[0];
      },
      executeMultipleOutputs: (name: string, _a: unknown[], inputs: tf.TensorInfo[], outs: number) => {
        calls.push({name, n: inputs.length, outs});
        return inputs.slice(0, outs);
      },
    };
    const t = {dataId: {}, shape: [1], dtype: 'float32'} as tf.TensorInfo;
    const [fwd, grad] = tensorFlowKernelConfigs;
    fwd.kernelFunc({inputs: {scores: t, coeffs: t}, backend: fake as unknown as tf.KernelBackend, attrs: {}});
    grad.kernelFunc({inputs: {dy: t, scores: t, coeffs: t}, backend: fake as unknown as tf.KernelBackend, attrs: {}});
    assert.deepEqual(calls, [
      {name: 'KaratFourierKArAt', n: 2},
      {name: 'KaratFourierKArAtGrad', n: 3, outs: 2},
    ]);
    assert.throws(() => fwd.kernelFunc({inputs: {scores: t, coeffs: t}, backend: {} as tf.KernelBackend, attrs: {}}),
        /not tfjs-node/);
  });
});

describe('kernels-cuda: Node-API addon loader', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('reports a clear reason when the addon is not built', () => {
    const status = loadCudaAddon({path: '/nonexistent/dir/karat_cuda.node', searchDefaults: false});
    assert.equal(status.available, false);
    assert.equal(status.addon, undefined);
    assert.deepEqual(status.tried, ['/nonexistent/dir/karat_cuda.node']);
    assert.match(status.reason, /not built.*npm run build:cuda/);
  });

  it('the built addon loads, reports the device, validates arguments (and runs on a GPU if any)', function() {
    const path = resolve('kernels-cuda/build/karat_cuda.node');
    if (!existsSync(path)) {
      console.log('    (skipped: kernels-cuda/build/karat_cuda.node not built; run npm run build:cuda)');
      this.skip();
    }
    const status = loadCudaAddon({path, searchDefaults: false});
    assert.equal(status.available, true, status.reason);
    const addon = status.addon!;
    assert.equal(addon.abiVersion(), 1);
    assert.throws(() => addon.fourierForward(new Float32Array(3), new Float32Array(4), [1, 1, 2, 1, 1]),
        /'scores' has 3 elements, expected 4/);
    assert.throws(() => addon.fourierForward(new Float32Array(4), new Float32Array(4), [1, 1, 2, 1, 9]),
        /out of range/);
    const info = addon.deviceInfo();
    if (!info.ok) {
      assert.match(info.error ?? '', /\w+/, 'a device-less run must say why');
      console.log(`    (no CUDA device here: ${info.error}; kernels not executed)`);
      return;
    }
    const dims: FourierKArAtDims = {batch: 2, heads: 2, tokens: 37, rank: 13, grid: 3};
    const c = syntheticCase('addon', dims, 7);
    const d = [dims.batch, dims.heads, dims.tokens, dims.rank, dims.grid];
    const hidden = addon.fourierForward(c.scores, c.coeffs, d);
    const [dS, dC] = addon.fourierBackward(c.dy, c.scores, c.coeffs, d);
    assert.ok(normalisedError(hidden, c.hidden).normErr < 1e-4);
    assert.ok(normalisedError(dS, c.dscores).normErr < 1e-4);
    assert.ok(normalisedError(dC, c.dcoeffs).normErr < 1e-4);
  });
});

describe('kernels-cuda: harness case files and compare tool', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  const cases = [
    syntheticCase('a', {batch: 1, heads: 2, tokens: 5, rank: 3, grid: 2}, 1),
    syntheticCase('bb-odd-name', {batch: 2, heads: 1, tokens: 7, rank: 4, grid: 8}, 2),
  ];

  it('round-trips the binary format and finds zero error for identical outputs', () => {
    const back = readCases(writeCases(cases));
    assert.deepEqual(back.map((c) => c.name), ['a', 'bb-odd-name']);
    assert.deepEqual(back[1].dims, cases[1].dims);
    assert.deepEqual(Array.from(back[1].dcoeffs), Array.from(cases[1].dcoeffs));
    const reports = compareCases(back);
    assert.equal(reports.every((r) => r.pass), true);
    assert.equal(Math.max(...reports.map((r) => r.maxNormErr)), 0);
  });

  it('flags a wrong output and points at it', () => {
    const bad = readCases(writeCases(cases));
    bad[0].dscores[17] += 0.01 * normalisedError(bad[0].dscores, bad[0].dscores).maxAbsRef + 0.01;
    bad[1].hidden[3] = NaN;
    const [r0, r1] = compareCases(bad);
    assert.equal(r0.pass, false);
    assert.equal(r0.dscores.worstIndex, 17);
    assert.equal(r0.hidden.normErr, 0);
    assert.equal(r1.pass, false);
    assert.equal(r1.hidden.normErr, Infinity);
  });

  it('rejects truncated or foreign files with a clear message', () => {
    const buf = writeCases(cases);
    assert.throws(() => readCases(buf.subarray(0, buf.length - 4)), /truncated.*bb-odd-name\.dcoeffs/);
    const foreign = buf.slice();
    foreign[0] = 'X'.charCodeAt(0);
    assert.throws(() => readCases(foreign), /bad magic 'XARATCAS' at byte 0/);
  });

  it('matches the composite tfjs implementation on the synthetic case (the reference itself is right)', () => {
    const c = cases[0];
    const {batch: B, heads: h, tokens: N, rank: r, grid: G} = c.dims;
    const got = tf.tidy(() => {
      const scores = tf.tensor4d(c.scores, [B, h, N, N]);
      const coeffs = tf.tensor5d(c.coeffs, [h, 2, r, N, G]);
      return compositeFourierKArAtHidden(scores, coeffs);
    });
    const err = normalisedError(got.dataSync(), c.hidden).normErr;
    assert.ok(err < 1e-5, `composite vs CPU kernel: ${err}`);
    got.dispose();
  });
});

describe('kernels-cuda: the CUDA kernel code under CPU emulation (emu/cuda_emu.h)', function() {
  this.timeout(300000);
  let dir = '';

  before(async function() {
    await tf.setBackend('cpu');
    if (spawnSync('sh', ['-c', 'command -v g++'], {encoding: 'utf8'}).status !== 0) {
      console.log('    (skipped: g++ not found, the emulation cannot be built)');
      this.skip();
    }
    dir = mkdtempSync(join(tmpdir(), 'karat-emu-'));
  });

  after(() => {
    if (dir) rmSync(dir, {recursive: true, force: true});
  });

  it('forward, backward (rank chunks, G = 8, several groups) match the float64 reference and are deterministic', () => {
    const bin = join(dir, 'karat_harness_emu');
    const build = spawnSync('g++', [
      '-O2', '-std=c++20', '-DKARAT_EMULATE', '-DKARAT_BWD_TARGET_BLOCKS=16', '-include', 'emu/cuda_emu.h', '-x', 'c++', 'src/karat_fourier.cu',
      '-x', 'c++', 'harness/karat_harness.cu', '-pthread', '-o', bin,
    ], {cwd: resolve('kernels-cuda'), encoding: 'utf8'});
    assert.equal(build.status, 0, `emulation build failed:\n${build.stderr}`);
    const cases = join(dir, 'cases.bin');
    const run = spawnSync(bin, [
      '--cases', 'tiny-1x1,small-n17-g2,small-n33-g3,small-n65-r20-g8,small-n100-g5', '--iters', '1', '--warmup', '0',
      '--dump', cases,
    ], {encoding: 'utf8'});
    assert.equal(run.status, 0, `emulated kernels failed:\n${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /5 case\(s\), 0 failed/);
    // The emulated CUDA outputs also agree with the TypeScript CPU kernel.
    const reports = compareCases(readCases(readFileSync(cases)));
    assert.equal(reports.length, 5);
    for (const r of reports) assert.ok(r.pass && r.maxNormErr < 1e-5, `${r.name}: ${r.maxNormErr}`);
  });

  it('the TensorFlow op library registers its ops and runs its CPU and (emulated) GPU kernels against a mock TF C API', () => {
    const bin = join(dir, 'tf_ops_mock_test');
    const build = spawnSync('g++', [
      '-O2', '-std=c++20', '-DKARAT_EMULATE', '-DKARAT_BWD_TARGET_BLOCKS=16', '-include', 'emu/cuda_emu.h',
      '-x', 'c++', 'src/karat_fourier.cu', '-x', 'c++', 'tensorflow/karat_tf_ops.cc',
      '-x', 'c++', 'tensorflow/tf_ops_mock_test.cc', '-pthread', '-o', bin,
    ], {cwd: resolve('kernels-cuda'), encoding: 'utf8'});
    assert.equal(build.status, 0, `mock build failed:\n${build.stderr}`);
    const run = spawnSync(bin, [], {encoding: 'utf8'});
    assert.equal(run.status, 0, `op library checks failed:\n${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /GPU backward matches float64 reference/);
    assert.match(run.stdout, /^0 failure\(s\)$/m);
  });
});
