#!/usr/bin/env node
// `npm run check:cuda` (used by CI): catches build breaks of the CUDA side without a GPU.
//   1. compiles src/karat_fourier.cu for sm_80 and for sm_90 (nvcc -c, two jobs in parallel);
//   2. builds the harness (sm_90, -cudart static) and runs it with --cpu-only on the small
//      cases, which checks its float64 reference and writes a case file;
//   3. runs harness/compare.ts on that file: the TypeScript CPU kernel must agree (<= 1e-4);
//   4. compiles the Node-API addon (C) and the TensorFlow op library (C++) when gcc/g++ and the
//      Node headers are there (no linking, no GPU needed);
//   5. builds the CPU emulation of the kernels (emu/cuda_emu.h, g++ only) and runs the exact
//      kernel code on the small cases against the float64 reference, and runs the TensorFlow op
//      library (CPU and emulated GPU kernels) against a mock of the TF C API.
// Without nvcc, steps 1-4 are skipped with a message and step 5 still runs (exit 0 if it passes). Outputs go to a temp dir, so prebuilt
// binaries in kernels-cuda/build are left alone.
import {spawn, spawnSync} from 'node:child_process';
import {existsSync, mkdtempSync, realpathSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {dirname, join, resolve} from 'node:path';
import {fileURLToPath} from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const cudaDir = resolve(here, '..');
const root = resolve(cudaDir, '..');

function findNvcc() {
  const candidates = [];
  if (process.env.NVCC) candidates.push(process.env.NVCC);
  if (process.env.CUDA_HOME) candidates.push(join(process.env.CUDA_HOME, 'bin', 'nvcc'));
  const which = spawnSync('sh', ['-c', 'command -v nvcc'], {encoding: 'utf8'});
  if (which.status === 0 && which.stdout.trim()) candidates.push(which.stdout.trim());
  candidates.push('/usr/local/cuda/bin/nvcc');
  return candidates.find((c) => existsSync(c));
}

function run(label, cmd, args, opts = {}) {
  return new Promise((res) => {
    const t0 = Date.now();
    const p = spawn(cmd, args, {cwd: opts.cwd ?? cudaDir, stdio: ['ignore', 'pipe', 'pipe']});
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('close', (code) => {
      const s = ((Date.now() - t0) / 1000).toFixed(1);
      console.log(`${code === 0 ? 'ok  ' : 'FAIL'} ${label} (${s}s)`);
      if (code !== 0 || opts.verbose) console.log(out.trim().split('\n').map((l) => '     ' + l).join('\n'));
      res(code === 0);
    });
    p.on('error', (e) => {
      console.log(`FAIL ${label}: ${e.message}`);
      res(false);
    });
  });
}

const tmp = mkdtempSync(join(tmpdir(), 'karat-cuda-check-'));
const t0 = Date.now();
const gcc = spawnSync('sh', ['-c', 'command -v gcc && command -v g++'], {encoding: 'utf8'}).status === 0;

// 5 (first, needs only g++): the kernels under CPU emulation.
async function emulation() {
  if (!gcc) {
    console.log('skip CPU emulation: g++ not found');
    return true;
  }
  const bin = join(tmp, 'karat_harness_emu');
  const mock = join(tmp, 'tf_ops_mock_test');
  const emuFlags = ['-O2', '-std=c++20', '-Wall', '-Wno-unknown-pragmas', '-Werror', '-DKARAT_EMULATE',
                    '-DKARAT_BWD_TARGET_BLOCKS=16', '-include', 'emu/cuda_emu.h'];
  const tfOk = await run('g++ TF op library + mock TF C API (emulated GPU)', 'g++',
      [...emuFlags, '-x', 'c++', 'src/karat_fourier.cu', '-x', 'c++', 'tensorflow/karat_tf_ops.cc', '-x', 'c++',
       'tensorflow/tf_ops_mock_test.cc', '-pthread', '-o', mock]) &&
      await run('tf_ops_mock_test: registration, validation, CPU and GPU kernels of libkarat_tf_ops', mock, []);
  return tfOk && await run('g++ -std=c++20 -DKARAT_EMULATE (kernels under CPU emulation)', 'g++',
      ['-O2', '-std=c++20', '-Wall', '-Wno-unknown-pragmas', '-Werror', '-DKARAT_EMULATE', '-DKARAT_BWD_TARGET_BLOCKS=16', '-include',
       'emu/cuda_emu.h', '-x', 'c++', 'src/karat_fourier.cu', '-x', 'c++', 'harness/karat_harness.cu',
       '-pthread', '-o', bin]) &&
      await run('karat_harness_emu: CUDA kernel code on the CPU vs float64 reference', bin,
          ['--cases', 'tiny-1x1,small-n17-g2,small-n33-g3,small-n65-r20-g8,small-n100-g5', '--iters', '1', '--warmup', '0'],
          {verbose: true});
}

const nvcc = findNvcc();
if (!nvcc) {
  console.log('check:cuda: nvcc not found (set NVCC or CUDA_HOME, or put nvcc on PATH): CUDA compile checks ' +
              'SKIPPED; running the CPU emulation only.');
  const emuOk = await emulation();
  rmSync(tmp, {recursive: true, force: true});
  console.log(`check:cuda: ${emuOk ? 'OK (emulation only, nvcc absent)' : 'FAILED'}`);
  process.exit(emuOk ? 0 : 1);
}
const ver = spawnSync(nvcc, ['--version'], {encoding: 'utf8'}).stdout.trim().split('\n').pop();
console.log(`check:cuda: ${nvcc} (${ver})`);
const nvflags = ['-O3', '-std=c++17', '-Xcompiler', '-fPIC'];
let ok = true;

// 1. kernels for both architectures, in parallel (2 cores).
const r1 = await Promise.all(['80', '90'].map((sm) => run(
    `nvcc -arch=sm_${sm} -c src/karat_fourier.cu`, nvcc,
    [...nvflags, `-arch=sm_${sm}`, '-c', 'src/karat_fourier.cu', '-o', join(tmp, `k${sm}.o`)])));
ok &&= r1.every(Boolean);

// 2. harness binary (sm_90 SASS, static runtime) + host compiles in parallel.
const nodeInclude = resolve(process.execPath, '../../include/node');
// nvcc may be a wrapper script: ask it where its headers are.
const dry = spawnSync(nvcc, ['--dryrun', '-x', 'cu', '-c', '/dev/null', '-o', '/dev/null'], {encoding: 'utf8'});
const incMatch = /^#\$ INCLUDES="-I([^"]+)"/m.exec(`${dry.stdout}${dry.stderr}`);
const cudaInclude = incMatch ? incMatch[1] : resolve(dirname(realpathSync(nvcc)), '../include');
const jobs = [];
if (ok) {
  jobs.push(run('nvcc -arch=sm_90 -cudart static harness/karat_harness.cu', nvcc,
      [...nvflags, '-arch=sm_90', '-cudart', 'static', 'harness/karat_harness.cu', join(tmp, 'k90.o'),
       '-o', join(tmp, 'karat_harness')]));
}
if (gcc && existsSync(join(nodeInclude, 'node_api.h'))) {
  jobs.push(run('gcc -c addon/karat_addon.c (Node-API addon)', 'gcc',
      ['-O2', '-fPIC', '-Wall', '-Wextra', '-Werror', `-I${nodeInclude}`, `-I${cudaInclude}`,
       '-DNODE_GYP_MODULE_NAME=karat_cuda', '-c', 'addon/karat_addon.c', '-o', join(tmp, 'addon.o')]));
} else {
  console.log('skip gcc -c addon/karat_addon.c: gcc or Node headers (node_api.h) not found');
}
if (gcc) {
  jobs.push(run('g++ -c tensorflow/karat_tf_ops.cc (TensorFlow op library)', 'g++',
      ['-O2', '-fPIC', '-std=c++17', '-Wall', '-Wextra', '-Werror', `-I${cudaInclude}`, '-c',
       'tensorflow/karat_tf_ops.cc', '-o', join(tmp, 'tfops.o')]));
}
ok &&= (await Promise.all(jobs)).every(Boolean);

// 3. CPU-only harness run + comparison with the TypeScript CPU kernel.
if (ok) {
  const cases = join(tmp, 'cases.bin');
  ok &&= await run('karat_harness --cpu-only --cases small (float64 reference)', join(tmp, 'karat_harness'),
      ['--cpu-only', '--cases', 'small', '--dump', cases]);
  if (ok) {
    ok &&= await run('compare.ts: harness reference vs TypeScript CPU kernel', process.execPath,
        ['--import', 'tsx', join(cudaDir, 'harness', 'compare.ts'), cases], {cwd: root, verbose: true});
  }
}
ok = (await emulation()) && ok;
rmSync(tmp, {recursive: true, force: true});
console.log(`check:cuda: ${ok ? 'OK' : 'FAILED'} in ${((Date.now() - t0) / 1000).toFixed(1)}s ` +
            '(no GPU: kernels compiled, and run only under CPU emulation)');
process.exit(ok ? 0 : 1);
