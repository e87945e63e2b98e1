// Bundles the browser demo (examples/demo/main.ts) with esbuild into examples/demo/dist/demo.js.
// Run by `npm run build:demo` (part of `npm run build`) and by test/demo.test.ts.
import {fileURLToPath} from 'node:url';
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
  return outfile;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = await buildDemo();
  console.log(`demo bundle: ${out}`);
}
