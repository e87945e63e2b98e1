/**
 * `npm run bench [-- --backend cpu|wasm] [--json FILE] [--quick]`
 * Op-level benchmark of Fourier-KArAt: fused kernel vs composite, forward and
 * forward+backward, at ViT-Tiny-like sizes (B=8, h=3, N=65 and 197, r=12, G=3): median ms,
 * peak bytes tfjs allocated during the call, and the ratios, side by side in one run.
 * (WebGPU: bench/webgpu.ts; WebGL: the browser harness; CUDA: kernels-cuda/harness.)
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';

import {parseFlags} from '../src/cli/flags';
import {BenchRecord} from './common';
import {benchOpCase, OpCase} from './ops';
import {reportOpRecords} from './report';

async function main() {
  const args = parseFlags(process.argv.slice(2), new Set(['quick'])).flags;
  const backend = String(args.backend ?? 'cpu');
  if (!['cpu', 'wasm'].includes(backend)) {
    throw new Error(`--backend must be cpu or wasm here (got '${backend}'); ` +
        'WebGPU: npx tsx bench/webgpu.ts, WebGL: npm run bench:browser');
  }
  if (!(await tf.setBackend(backend))) throw new Error(`backend '${backend}' failed to initialise`);
  await tf.ready();
  const quick = Boolean(args.quick);
  const cases: OpCase[] = quick ? [{B: 2, h: 3, N: 17, r: 12, G: 3}] :
      [{B: 8, h: 3, N: 65, r: 12, G: 3}, {B: 8, h: 3, N: 197, r: 12, G: 3}];
  const opts = quick ? {warmup: 1, iters: 3} : {warmup: 1, iters: 5};
  const records: BenchRecord[] = [];
  for (const c of cases) {
    console.log(`running ${JSON.stringify(c)} on ${backend} ...`);
    records.push(...await benchOpCase(c, opts));
  }
  reportOpRecords(records, args.json);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
