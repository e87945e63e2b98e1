// Bundles the browser demo (examples/demo/main.ts) with esbuild into examples/demo/dist/demo.js,
// and copies tfjs-backend-wasm's .wasm binaries next to it (the page's wasm fallback).
// Run by `npm run build:demo` (part of `npm run build`) and by test/demo.test.ts.
import {fileURLToPath} from 'node:url';
import {copyFileSync, mkdirSync, readdirSync} from 'node:fs';
import {createRequire} from 'node:module';
import {dirname, join} from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export async function buildDemo({minify = true} = {}) {
  const esbuild = await import('esbuild');
  const outfile = join(root, 'examples/demo/dist/demo.js');
  await esbuild.build({
    entryPoints: [join(root, 'examples/demo/main.ts')],
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: 'es2020',
    outfile,
    minify,
    sourcemap: 'linked',
    logLevel: 'warning',
    define: {'process.env.NODE_ENV': '"production"'},
    external: ['webgpu', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu'],
  });
  const wasmDir = dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm/package.json'));
  mkdirSync(dirname(outfile), {recursive: true});
  for (const f of readdirSync(join(wasmDir, 'dist')).filter((n) => n.endsWith('.wasm'))) {
    copyFileSync(join(wasmDir, 'dist', f), join(dirname(outfile), f));
  }
  return outfile;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = await buildDemo();
  console.log(`demo bundle: ${out}`);
}
