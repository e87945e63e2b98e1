// Bundles. The package has two entries: `tfjs-karat` (src/index.ts, browser-safe) and
// `tfjs-karat/node` (src/node.ts, Node only: data on disk, training, file IO, CUDA, the CLI).
// - ESM and CommonJS: both entries in one build, so the code they share lives in one chunk
//   per format and importing both never registers a kernel or layer class twice.
// - UMD (plain and minified) of the browser entry for a <script> tag: global `karat`, every
//   @tensorflow/* import mapped to the global `tf`.
import {rmSync} from 'node:fs';

import resolve from '@rollup/plugin-node-resolve';
import terser from '@rollup/plugin-terser';
import typescript from '@rollup/plugin-typescript';

const isExternal = (id) => id.startsWith('@tensorflow/') || id.startsWith('node:') || id === 'webgpu';
const globals = (id) => (id.startsWith('@tensorflow/') ? 'tf' : id);
const ts = () => typescript({
  tsconfig: './tsconfig.build.json',
  noEmitOnError: true,
});
// The hashed chunks and the declarations of an earlier build would otherwise stay in dist/ and
// be packed: the first build removes them (tsc writes dist/types again after rollup).
const cleanOutputs = () => ({
  name: 'clean-outputs',
  buildStart() {
    for (const d of ['dist/chunks', 'dist/types']) rmSync(d, {recursive: true, force: true});
  },
});
const banner = `/** tfjs-karat: Kolmogorov-Arnold Attention for TensorFlow.js. Apache-2.0. */`;

export default [
  {
    input: {'tfjs-karat': 'src/index.ts', 'tfjs-karat-node': 'src/node.ts'},
    external: isExternal,
    plugins: [cleanOutputs(), resolve({browser: false, preferBuiltins: true}), ts()],
    output: [
      {dir: 'dist', format: 'es', entryFileNames: '[name].mjs', chunkFileNames: 'chunks/tfjs-karat-[hash].mjs',
       sourcemap: true, banner},
      {dir: 'dist', format: 'cjs', entryFileNames: '[name].cjs', chunkFileNames: 'chunks/tfjs-karat-[hash].cjs',
       sourcemap: true, banner, exports: 'named'},
    ],
  },
  {
    input: 'src/index.ts',
    external: isExternal,
    plugins: [resolve({browser: true}), ts()],
    output: [
      {file: 'dist/tfjs-karat.umd.js', format: 'umd', name: 'karat', globals, sourcemap: true, banner},
      {file: 'dist/tfjs-karat.min.js', format: 'umd', name: 'karat', globals, sourcemap: true, banner,
       plugins: [terser()]},
    ],
  },
];
