/**
 * The test backends of the Node mocha suites, registered for describeWithBackends
 * (test/support/backend_suites.ts) on import: cpu, wasm (tfjs-backend-wasm, its SIMD module),
 * wasm with KARAT_WASM_SIMD off (the kernels' TypeScript path on the wasm heap), and webgpu
 * (tfjs-backend-webgpu on Dawn, test/support/webgpu_node.ts; skipped without an adapter).
 * Importing this file also releases WebGPU after all suites, so that Node can exit.
 */
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';

import {KARAT_WASM_SIMD_FLAG} from '../../src/index';
import {registerTestBackend, TestBackend} from './backend_suites';
import {releaseWebGPUAfterAllTests, setupWebGPUNode} from './webgpu_node';

export const WASM: TestBackend = {id: 'wasm', backend: 'wasm', flags: {[KARAT_WASM_SIMD_FLAG]: true}, start: async () => null};

export const WASM_TYPESCRIPT: TestBackend = {
  id: 'wasm-typescript', backend: 'wasm', flags: {[KARAT_WASM_SIMD_FLAG]: false}, start: async () => null,
};

export const WEBGPU: TestBackend = {
  id: 'webgpu', backend: 'webgpu', timeout: 300000,
  start: async () => {
    const status = await setupWebGPUNode();
    return status.available ? null : status.reason ?? 'unknown reason';
  },
};

registerTestBackend(WASM);
registerTestBackend(WASM_TYPESCRIPT);
registerTestBackend(WEBGPU);
releaseWebGPUAfterAllTests();

/** The backends every Node layer-op and attention-op suite runs on. */
export const NODE_BACKENDS = ['cpu', 'wasm', 'webgpu'];
