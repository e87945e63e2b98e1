// Bundles: ESM and CommonJS for bundlers and Node, and a UMD (plain and minified) for a
// <script> tag: global `karat`, every @tensorflow/* import mapped to the global `tf`.
import resolve from '@rollup/plugin-node-resolve';
import terser from '@rollup/plugin-terser';
import typescript from '@rollup/plugin-typescript';

const isExternal = (id) => id.startsWith('@tensorflow/') || id.startsWith('node:') || id === 'webgpu';
const globals = (id) => (id.startsWith('@tensorflow/') ? 'tf' : id);
const ts = () => typescript({
  tsconfig: './tsconfig.build.json',
  noEmitOnError: true,
});
const banner = `/** tfjs-karat: Kolmogorov-Arnold Attention for TensorFlow.js. Apache-2.0. */`;

export default [
  // The `karat` command for the published package (bin/karat.cjs runs it when there are no sources).
  {
    input: 'src/cli/run.ts',
    external: (id) => isExternal(id) || ['pngjs', 'jpeg-js'].includes(id),
    plugins: [resolve({browser: false, preferBuiltins: true}), ts()],
    output: [{file: 'dist/karat-cli.cjs', format: 'cjs', sourcemap: true, banner: `${banner}`, inlineDynamicImports: true}],
  },
  {
    input: 'src/index.ts',
    external: isExternal,
    plugins: [resolve({browser: false, preferBuiltins: true}), ts()],
    output: [
      {file: 'dist/tfjs-karat.esm.js', format: 'es', sourcemap: true, banner},
      {file: 'dist/tfjs-karat.cjs', format: 'cjs', sourcemap: true, banner, exports: 'named'},
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
