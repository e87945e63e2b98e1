import * as assert from 'node:assert/strict';
import {existsSync, readFileSync} from 'node:fs';
import {createRequire} from 'node:module';
import {join} from 'node:path';
import {pathToFileURL} from 'node:url';
import * as vm from 'node:vm';

import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';

const root = join(__dirname, '..');
const dist = join(root, 'dist');
const nodeRequire = createRequire(__filename);

function sample() {
  const scores = tf.tensor4d(Array.from({length: 2 * 3 * 3}, (_, i) => Math.sin(i)), [1, 2, 3, 3]);
  const coeffs = tf.tensor5d(Array.from({length: 2 * 2 * 2 * 3 * 2}, (_, i) => Math.cos(i) / 3), [2, 2, 2, 3, 2]);
  return {scores, coeffs};
}

describe('built bundles (npm run build)', function() {
  // Loading a bundle re-registers the kernels and the gradient (the UMD one from another JS
  // realm): keep the originals and put them back afterwards for the other suites.
  const kernelNames = ['FourierKArAt', 'FourierKArAtGrad'];
  const backends = ['cpu', 'webgl', 'webgpu', 'wasm', 'tensorflow'];
  const savedKernels = kernelNames.flatMap((k) => backends.map((b) => ({k, b, config: tf.getKernel(k, b)})));
  const savedGradient = tf.getGradient('FourierKArAt');
  after(() => {
    for (const {k, b, config} of savedKernels) {
      if (tf.getKernel(k, b) != null) tf.unregisterKernel(k, b);
      if (config != null) tf.registerKernel(config);
    }
    if (savedGradient != null) tf.registerGradient(savedGradient);
  });

  before(async function() {
    if (!existsSync(join(dist, 'tfjs-karat.cjs'))) {
      console.warn('    dist/ is missing: run `npm run build` (npm test does it first)');
      this.skip();
    }
    await tf.setBackend('cpu');
  });

  it('require("tfjs-karat") resolves to the CommonJS bundle and runs the op', () => {
    const karat = nodeRequire('tfjs-karat');
    assert.equal(nodeRequire.resolve('tfjs-karat'), join(dist, 'tfjs-karat.cjs'));
    const {scores, coeffs} = sample();
    const out = karat.fourierKArAtHidden(scores, coeffs);
    assert.deepEqual(out.shape, [1, 2, 3, 2]);
    assert.ok(tf.getKernel('FourierKArAt', 'cpu'));
  });

  it('import("tfjs-karat") gives the ESM bundle with the same API', async () => {
    const esm = await import(pathToFileURL(join(dist, 'tfjs-karat.esm.js')).href);
    const cjs = nodeRequire('tfjs-karat');
    for (const name of ['fourierKArAtHidden', 'karatActivation', 'karatAttention', 'resolveOperatorConfig']) {
      assert.equal(typeof esm[name], 'function', name);
      assert.equal(typeof cjs[name], 'function', name);
    }
  });

  it('the minified UMD bundle works from a <script>-like context with the global tf', () => {
    const code = readFileSync(join(dist, 'tfjs-karat.min.js'), 'utf8');
    const tfGlobal = {...tfl, ...tf};
    const context: Record<string, unknown> = {tf: tfGlobal, console, Math, Float32Array, Float64Array};
    context.self = context;
    context.globalThis = context;
    vm.createContext(context);
    vm.runInContext(code, context);
    const karat = context.karat as {fourierKArAtHidden: Function, version: string};
    assert.equal(typeof karat.fourierKArAtHidden, 'function');
    const {scores, coeffs} = sample();
    const viaUmd = (karat.fourierKArAtHidden(scores, coeffs) as tf.Tensor).arraySync();
    const viaCjs = nodeRequire('tfjs-karat').fourierKArAtHidden(scores, coeffs).arraySync();
    assert.deepEqual(viaUmd, viaCjs);
  });

  it('ships type declarations for the package entry', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    const types = join(root, pkg.types);
    assert.ok(existsSync(types), `${pkg.types} exists`);
    assert.match(readFileSync(types, 'utf8'), /export/);
  });
});
