// Loads one built bundle of tfjs-karat in a fresh Node process (so the test process's
// kernel, gradient and layer registries stay untouched) and prints, as JSON, what the
// bundle exports and the result of fourierKArAtHidden on a fixed input.
//   node test/support/bundle_probe.mjs cjs|esm|umd|node-cjs|node-esm
import {readFileSync} from 'node:fs';
import {createRequire} from 'node:module';
import {dirname, join} from 'node:path';
import {fileURLToPath, pathToFileURL} from 'node:url';
import * as vm from 'node:vm';

const require = createRequire(import.meta.url);
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const tf = require('@tensorflow/tfjs-core');
const tfl = require('@tensorflow/tfjs-layers');
require('@tensorflow/tfjs-backend-cpu');

const mode = process.argv[2];
let karat;
let resolved = null;
if (mode === 'cjs') {
  resolved = require.resolve('tfjs-karat');
  karat = require('tfjs-karat');
} else if (mode === 'node-cjs') {
  resolved = require.resolve('tfjs-karat/node');
  karat = require('tfjs-karat/node');
} else if (mode === 'node-esm') {
  karat = await import(pathToFileURL(join(root, 'dist', 'tfjs-karat-node.mjs')).href);
} else if (mode === 'esm') {
  karat = await import(pathToFileURL(join(root, 'dist', 'tfjs-karat.mjs')).href);
} else if (mode === 'umd') {
  // A <script>-like context: only the global `tf` (tfjs-core + tfjs-layers, as the union bundle)
  // and what a browser has (WebAssembly and atob: the wasm kernels' embedded SIMD module).
  const context = {tf: {...tfl, ...tf}, console, Math, Float32Array, Float64Array, Uint8Array, ArrayBuffer,
                   WebAssembly, atob};
  context.self = context;
  context.globalThis = context;
  vm.createContext(context);
  vm.runInContext(readFileSync(join(root, 'dist', 'tfjs-karat.min.js'), 'utf8'), context);
  karat = context.karat;
} else {
  throw new Error(`mode must be cjs, esm, umd, node-cjs or node-esm, got ${mode}`);
}
await tf.setBackend('cpu');
const scores = tf.tensor4d(Array.from({length: 18}, (_, i) => Math.sin(i)), [1, 2, 3, 3]);
const coeffs = tf.tensor5d(Array.from({length: 48}, (_, i) => Math.cos(i) / 3), [2, 2, 2, 3, 2]);
const out = karat.fourierKArAtHidden(scores, coeffs);
process.stdout.write(JSON.stringify({
  resolved,
  exports: Object.keys(karat).sort(),
  hasLayer: typeof karat.KArAtMultiHeadAttention === 'function',
  hasVit: typeof karat.models?.vit === 'function',
  hasFileSystem: typeof karat.io?.fileSystem === 'function',
  shape: out.shape,
  values: Array.from(out.dataSync()),
  wasmKernels: karat.wasmKernelStatus(),
}));
