/**
 * The test backends of the browser suites (karma, headless Chromium), registered for
 * describeWithBackends (test/support/backend_suites.ts) on import: webgl (WebGL2 via
 * ANGLE+SwiftShader here) and webgpu (SwiftShader Vulkan here), each skipped, saying why, where
 * tf.setBackend fails in the page. cpu is registered by backend_suites itself.
 */
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-webgl';
import '@tensorflow/tfjs-backend-webgpu';

import * as tf from '@tensorflow/tfjs-core';

import {registerTestBackend, TestBackend} from '../support/backend_suites';
import {tryBackend} from './util';

/** Starts `backend` once in this page (cpu active after); null, or why it cannot run. */
function starter(backend: string): () => Promise<string | null> {
  let why: Promise<string | null> | null = null;
  return () => {
    if (why == null) {
      why = (async () => {
        const ok = await tryBackend(backend);
        await tf.setBackend('cpu');
        return ok ? null : `tf.setBackend('${backend}') failed in this page`;
      })();
    }
    return why;
  };
}

export const WEBGL: TestBackend = {id: 'webgl', backend: 'webgl', start: starter('webgl')};
export const WEBGPU_BROWSER: TestBackend = {id: 'webgpu', backend: 'webgpu', start: starter('webgpu')};

registerTestBackend(WEBGL);
registerTestBackend(WEBGPU_BROWSER);

/** The GPU backends every browser suite runs on. */
export const BROWSER_GPU_BACKENDS = ['webgl', 'webgpu'];
