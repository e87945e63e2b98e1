import * as assert from 'node:assert/strict';
import {execFileSync} from 'node:child_process';
import {existsSync, readFileSync} from 'node:fs';
import {builtinModules} from 'node:module';
import {dirname, join} from 'node:path';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

import * as karat from '../src/index';

const root = join(__dirname, '..');
const dist = join(root, 'dist');

interface Probe {resolved: string | null; exports: string[]; hasLayer: boolean; hasVit: boolean; hasFileSystem: boolean;
                 shape: number[]; values: number[]; wasmKernels: {path: string, reason: string | null}}

/** Runs one bundle in a fresh process (test/support/bundle_probe.mjs). */
function probe(mode: 'cjs' | 'esm' | 'umd' | 'node-cjs' | 'node-esm'): Probe {
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

  it('require("tfjs-karat/node") gives the Node entry: the root API plus io.fileSystem, data, training and cli', () => {
    const root = probe('cjs'), node = probe('node-cjs'), nodeEsm = probe('node-esm');
    assert.equal(node.resolved, join(dist, 'tfjs-karat-node.cjs'));
    assert.deepEqual(node.values, expected);
    for (const name of root.exports) assert.ok(node.exports.includes(name), `tfjs-karat/node re-exports ${name}`);
    for (const name of ['training', 'data', 'cli', 'loadTensorFlowKernels', 'loadCudaAddon']) {
      assert.ok(node.exports.includes(name), `tfjs-karat/node has ${name}`);
      assert.ok(!root.exports.includes(name), `tfjs-karat (browser-safe) does not have ${name}`);
    }
    assert.deepEqual(nodeEsm.exports, node.exports);
    assert.ok(node.hasFileSystem && nodeEsm.hasFileSystem && !root.hasFileSystem);
  });

  it('the browser bundles and the root ESM entry reference no Node built-in module', () => {
    const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
    // Every module specifier a bundle loads: require(...), import(...), `from '...'`, bare imports.
    const specifiers = (code: string) => [...code.matchAll(
        /\brequire\(\s*(["'`])([^"'`]+)\1\s*\)|\bimport\(\s*(["'`])([^"'`]+)\3\s*\)|\bfrom\s*(["'])([^"']+)\5|\bimport\s*(["'])([^"']+)\7/g)]
        .map((m) => m[2] ?? m[4] ?? m[6] ?? m[8]);
    // The root ESM entry and every chunk it imports, transitively.
    const esmGraph = (file: string, seen = new Set<string>()): Set<string> => {
      if (seen.has(file)) return seen;
      seen.add(file);
      for (const s of specifiers(readFileSync(file, 'utf8'))) {
        if (s.startsWith('.')) esmGraph(join(dirname(file), s), seen);
      }
      return seen;
    };
    const files = [join(dist, 'tfjs-karat.min.js'), join(dist, 'tfjs-karat.umd.js'), ...esmGraph(join(dist, 'tfjs-karat.mjs'))];
    for (const file of files) {
      const code = readFileSync(file, 'utf8');
      const loaded = specifiers(code);
      assert.ok(loaded.some((s) => s.startsWith('@tensorflow/')), `${file}: the specifier scan finds the tfjs imports`);
      assert.deepEqual(loaded.filter((s) => builtins.has(s)), [], `${file} loads Node built-ins`);
      assert.doesNotMatch(code, /["'`]node:[a-z_/]+["'`]|getBuiltinModule|createRequire/, `${file} reaches Node built-ins indirectly`);
    }
    // The Node entry does use them: the scan would see them.
    assert.ok(specifiers(readFileSync(join(dist, 'tfjs-karat-node.cjs'), 'utf8')).concat(
        ...[...esmGraph(join(dist, 'tfjs-karat-node.mjs'))].map((f) => specifiers(readFileSync(f, 'utf8'))))
        .some((s) => builtins.has(s)));
  });

  it('ships type declarations for the package entry', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    const types = join(root, pkg.types);
    assert.ok(existsSync(types), `${pkg.types} exists`);
    assert.match(readFileSync(types, 'utf8'), /export/);
    const nodeTypes = join(root, pkg.exports['./node'].types);
    assert.ok(existsSync(nodeTypes), `${pkg.exports['./node'].types} exists`);
    assert.match(readFileSync(nodeTypes, 'utf8'), /training/);
  });
});
