/**
 * WebGPU in Node for tests and benchmarks: tfjs-backend-webgpu on Dawn (the `webgpu` npm
 * package), over Vulkan. Reusable by any suite:
 *
 *   import {useWebGPUBackend} from './support/webgpu_node';
 *   describe('...', function() {
 *     before(async function() { await useWebGPUBackend(this); });  // skips when unavailable
 *   });
 *
 * setupWebGPUNode() gives Node a navigator.gpu once per process (src/training/dawn.ts: the
 * Vulkan driver and loader, Dawn), THEN imports '@tensorflow/tfjs-backend-webgpu' and
 * initialises the backend once.
 * releaseWebGPUNode() disposes the backend and drops the Dawn instance so that Node can
 * exit; releaseWebGPUAfterAllTests() (top level of a test file) does it after all suites.
 */
import * as tf from '@tensorflow/tfjs-core';

import {installDawnGpu} from '../../src/training/dawn';

export interface WebGPUNodeStatus {
  available: boolean;
  /** Why WebGPU is unavailable (for the skip message). */
  reason?: string;
  /** Adapter description, e.g. "google swiftshader" or "nvidia hopper". */
  adapter?: string;
}

let setupPromise: Promise<WebGPUNodeStatus> | null = null;
let gpuInstance: unknown = null;

async function setup(): Promise<WebGPUNodeStatus> {
  try {
    const created = await installDawnGpu();
    if (created != null) gpuInstance = created;
  } catch (e) {
    return {available: false, reason: (e as Error).message};
  }
  await import('@tensorflow/tfjs-backend-webgpu');
  if (tf.findBackendFactory('webgpu') == null) {
    return {available: false, reason: "'webgpu' backend was not registered (tfjs-backend-webgpu loaded before navigator.gpu existed?)"};
  }
  // Initialise without changing the active backend.
  const previous = safeGetBackend();
  const log = console.warn, err = console.error;
  const messages: string[] = [];
  console.warn = console.error = (...a: unknown[]) => { messages.push(a.map(String).join(' ')); };
  let ok = false;
  try {
    ok = await tf.setBackend('webgpu');
  } finally {
    console.warn = log;
    console.error = err;
  }
  if (!ok) {
    tf.removeBackend('webgpu');
    return {available: false, reason: `WebGPU adapter/device could not be created (${messages.slice(0, 2).join('; ') || 'no adapter'})`};
  }
  const backend = tf.backend() as unknown as {adapterInfo?: {vendor?: string, architecture?: string}};
  const adapter = `${backend.adapterInfo?.vendor ?? '?'} ${backend.adapterInfo?.architecture ?? ''}`.trim();
  if (previous != null && previous !== 'webgpu') await tf.setBackend(previous);
  return {available: true, adapter};
}

function safeGetBackend(): string | null {
  try {
    return tf.engine().backendName ?? null;
  } catch {
    return null;
  }
}

/** Sets up Dawn + tfjs-backend-webgpu once per process; never throws. */
export function setupWebGPUNode(): Promise<WebGPUNodeStatus> {
  if (setupPromise == null) {
    setupPromise = setup().catch((e) => ({available: false, reason: String((e as Error)?.message ?? e)}));
  }
  return setupPromise;
}

/**
 * For a mocha `before` hook: makes 'webgpu' the active backend, or prints why WebGPU is
 * unavailable and skips the suite.
 */
export async function useWebGPUBackend(ctx: Mocha.Context): Promise<WebGPUNodeStatus> {
  const status = await setupWebGPUNode();
  if (!status.available) {
    console.log(`      [skip] WebGPU unavailable: ${status.reason}`);
    ctx.skip();
  }
  await tf.setBackend('webgpu');
  return status;
}

/** Disposes the tfjs 'webgpu' backend and drops the Dawn instance (lets Node exit). */
export function releaseWebGPUNode(): void {
  if (tf.findBackend('webgpu') != null) {
    if (safeGetBackend() === 'webgpu') tf.setBackend('cpu');
    tf.removeBackend('webgpu');
  }
  const g = globalThis as unknown as {navigator?: {gpu?: unknown}};
  if (gpuInstance != null && g.navigator?.gpu === gpuInstance) delete g.navigator.gpu;
  gpuInstance = null;
  setupPromise = null;
}

/**
 * Call at the top level of a test file (outside any describe): adds a root-level mocha
 * `after` hook that releases WebGPU once every suite of the run has finished.
 */
export function releaseWebGPUAfterAllTests(): void {
  const g = globalThis as unknown as {after?: (fn: () => void) => void, __karatWebGPUCleanup?: boolean};
  if (typeof g.after !== 'function' || g.__karatWebGPUCleanup) return;
  g.__karatWebGPUCleanup = true;
  g.after(() => releaseWebGPUNode());
}
