/**
 * Browser side of `npm run bench:browser`: bundled by bench/browser/run.ts with esbuild
 * and loaded in headless Chromium. Exposes `window.karatBench(request)`, which runs the
 * shared op cases of bench/ops.ts (fused vs composite, fwd and fwd+bwd) on the requested
 * backend and returns records in the bench/common.ts format.
 */
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-webgl';
import '@tensorflow/tfjs-backend-webgpu';

import * as tf from '@tensorflow/tfjs-core';

import {BenchRecord, MeasureOptions} from '../common';
import {benchOpCase, OpCase} from '../ops';

export interface BrowserBenchRequest {
  backend: string;
  cases: OpCase[];
  opts: MeasureOptions;
}

export interface BrowserBenchResult {
  records: BenchRecord[];
  info: Record<string, unknown>;
}

function backendInfo(backend: string): Record<string, unknown> {
  const info: Record<string, unknown> = {backend, userAgent: navigator.userAgent};
  if (backend === 'webgl') {
    info.WEBGL_VERSION = tf.env().getNumber('WEBGL_VERSION');
    info.WEBGL_RENDER_FLOAT32_ENABLED = tf.env().getBool('WEBGL_RENDER_FLOAT32_ENABLED');
    const gl = (tf.backend() as unknown as {gpgpu?: {gl?: WebGLRenderingContext}}).gpgpu?.gl;
    if (gl != null) {
      const ext = gl.getExtension('WEBGL_debug_renderer_info');
      info.renderer = String(gl.getParameter(ext != null ? ext.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
    }
  }
  return info;
}

async function karatBench(req: BrowserBenchRequest): Promise<BrowserBenchResult> {
  if (!(await tf.setBackend(req.backend))) {
    throw new Error(`backend '${req.backend}' did not initialise in this browser`);
  }
  await tf.ready();
  const records: BenchRecord[] = [];
  for (const c of req.cases) {
    console.log(`running ${JSON.stringify(c)} on ${req.backend} ...`);
    records.push(...await benchOpCase(c, req.opts));
  }
  return {records, info: backendInfo(req.backend)};
}

(window as unknown as {karatBench: typeof karatBench}).karatBench = karatBench;
