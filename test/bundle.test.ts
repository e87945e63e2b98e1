import * as assert from 'node:assert/strict';
import {execFileSync} from 'node:child_process';
import {existsSync, readFileSync} from 'node:fs';
import {join} from 'node:path';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

import * as karat from '../src/index';

const root = join(__dirname, '..');
const dist = join(root, 'dist');

interface Probe {resolved: string | null; exports: string[]; hasLayer: boolean; hasVit: boolean;
                 shape: number[]; values: number[]; wasmKernels: {path: string, reason: string | null}}

/** Runs one bundle in a fresh process (test/support/bundle_probe.mjs). */
function probe(mode: 'cjs' | 'esm' | 'umd'): Probe {
  const out = execFileSync(process.execPath, [join(root, 'test/support/bundle_probe.mjs'), mode],
                           {cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']});
  return JSON.parse(out.slice(out.indexOf('{"resolved"')));
}

describe('built bundles (npm run build)', function() {
  this.timeout(120000);
  let expected: number[];
  before(async function() {
    if (!existsSync(join(dist, 'tfjs-karat.cjs'))) {
      console.warn('    dist/ is missing: run `npm run build` (npm test does it first)');
      this.skip();
    }
    await tf.setBackend('cpu');
    const scores = tf.tensor4d(Array.from({length: 18}, (_, i) => Math.sin(i)), [1, 2, 3, 3]);
    const coeffs = tf.tensor5d(Array.from({length: 48}, (_, i) => Math.cos(i) / 3), [2, 2, 2, 3, 2]);
    expected = Array.from(karat.fourierKArAtHidden(scores, coeffs).dataSync());
  });

  it('require("tfjs-karat") resolves to the CommonJS bundle, which runs the op and has the layers', () => {
    const p = probe('cjs');
    assert.equal(p.resolved, join(dist, 'tfjs-karat.cjs'));
    assert.deepEqual(p.shape, [1, 2, 3, 2]);
    assert.deepEqual(p.values, expected);
    assert.ok(p.hasLayer && p.hasVit);
  });

  it('import("tfjs-karat") gives the ESM bundle with the same API as the CommonJS one', () => {
    const esm = probe('esm'), cjs = probe('cjs');
    assert.deepEqual(esm.exports, cjs.exports);
    for (const name of ['fourierKArAtHidden', 'karatActivation', 'karatAttention', 'resolveOperatorConfig']) {
      assert.ok(esm.exports.includes(name), name);
    }
    assert.deepEqual(esm.values, expected);
  });

  it('the minified UMD bundle works from a <script>-like context with only the global tf', () => {
    const umd = probe('umd');
    assert.deepEqual(umd.values, expected);
    assert.ok(umd.hasLayer && umd.hasVit);
    // the wasm kernels' SIMD module, embedded in the bundle, decodes and compiles there
    assert.deepEqual(umd.wasmKernels, {path: 'simd', reason: null});
  });

  it('ships type declarations for the package entry', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    const types = join(root, pkg.types);
    assert.ok(existsSync(types), `${pkg.types} exists`);
    assert.match(readFileSync(types, 'utf8'), /export/);
  });
});
