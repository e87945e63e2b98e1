import * as assert from 'node:assert/strict';
import {spawn, spawnSync} from 'node:child_process';
import {existsSync, mkdtempSync, rmSync, statSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';

// CI's guard against CUDA build breaks: every .cu source compiles with nvcc for sm_80 and
// sm_90 (compile only; no GPU needed). Skipped, loudly, where nvcc is not installed.
const cudaDir = join(__dirname, '..', 'kernels-cuda');
const SOURCES = ['src/karat_fourier.cu', 'harness/karat_harness.cu'];

function nvccPath(): string | null {
  const r = spawnSync('sh', ['-c', 'command -v nvcc || ls /usr/local/cuda/bin/nvcc'], {encoding: 'utf8'});
  const p = r.stdout.trim().split('\n')[0];
  return r.status === 0 && p ? p : null;
}

function compile(nvcc: string, src: string, arch: string, out: string): Promise<{code: number | null, log: string}> {
  return new Promise((resolve) => {
    const p = spawn(nvcc, ['-O3', '-std=c++17', `-arch=${arch}`, '-Iinclude', '-c', src, '-o', out], {cwd: cudaDir});
    let log = '';
    p.stdout.on('data', (d) => (log += d));
    p.stderr.on('data', (d) => (log += d));
    p.on('close', (code) => resolve({code, log}));
  });
}

describe('kernels-cuda: sources compile with nvcc (sm_80, sm_90)', function() {
  this.timeout(600000);
  const nvcc = nvccPath();
  before(function() {
    if (nvcc == null) {
      console.warn('    nvcc not found: CUDA compile check skipped (install the CUDA toolkit to run it)');
      this.skip();
    }
  });

  for (const arch of ['sm_80', 'sm_90']) {
    it(`compiles ${SOURCES.join(', ')} for ${arch}`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'karat-nvcc-'));
      try {
        const results = await Promise.all(SOURCES.map((src, i) =>
            compile(nvcc as string, src, arch, join(dir, `${i}.o`))));
        results.forEach((r, i) => {
          assert.equal(r.code, 0, `nvcc ${arch} ${SOURCES[i]} failed:\n${r.log}`);
          assert.ok(statSync(join(dir, `${i}.o`)).size > 0);
        });
      } finally {
        rmSync(dir, {recursive: true, force: true});
      }
    });
  }

  it('rejects broken CUDA code (the check can fail)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'karat-nvcc-'));
    try {
      const bad = join(dir, 'bad.cu');
      writeFileSync(bad, '__global__ void k(float* x) { x[0] = undefined_symbol; }\n');
      const r = await compile(nvcc as string, bad, 'sm_90', join(dir, 'bad.o'));
      assert.notEqual(r.code, 0);
      assert.ok(!existsSync(join(dir, 'bad.o')) || statSync(join(dir, 'bad.o')).size === 0);
    } finally {
      rmSync(dir, {recursive: true, force: true});
    }
  });
});
