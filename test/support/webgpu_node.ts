/**
 * WebGPU in Node for tests and benchmarks: tfjs-backend-webgpu on Dawn (the `webgpu` npm
 * package), over Vulkan. Reusable by any suite:
 *
 *   import {useWebGPUBackend} from './support/webgpu_node';
 *   describe('...', function() {
 *     before(async function() { await useWebGPUBackend(this); });  // skips when unavailable
 *   });
 *
 * What setupWebGPUNode() does, once per process:
 * - VK_ICD_FILENAMES: when neither it nor VK_DRIVER_FILES is set and Chromium's
 *   SwiftShader ICD exists, points Vulkan at SwiftShader (CPU). On the GPU machine
 *   .device/env.sh sets the NVIDIA ICD first, so that one is used.
 * - libvulkan.so.1: when the system has no Vulkan loader, loads the one Chromium ships
 *   (/usr/lib/chromium) into the process so Dawn finds it.
 * - navigator.gpu = create(['backend=vulkan']) and the WebGPU globals, THEN imports
 *   '@tensorflow/tfjs-backend-webgpu' (it registers 'webgpu' only if navigator.gpu exists
 *   when it is loaded), then initialises the backend once.
 * releaseWebGPUNode() disposes the backend and drops the Dawn instance so that Node can
 * exit; releaseWebGPUAfterAllTests() (top level of a test file) does it after all suites.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';

import * as tf from '@tensorflow/tfjs-core';

export interface WebGPUNodeStatus {
  available: boolean;
  /** Why WebGPU is unavailable (for the skip message). */
  reason?: string;
  /** Adapter description, e.g. "google swiftshader" or "nvidia hopper". */
  adapter?: string;
}

const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
const VULKAN_LOADER_FALLBACKS = ['/usr/lib/chromium/libvulkan.so.1'];
const RTLD_NODELETE = 0x1000;  // glibc; not in os.constants.dlopen

let setupPromise: Promise<WebGPUNodeStatus> | null = null;
let gpuInstance: unknown = null;

/** Makes libvulkan.so.1 loadable by Dawn; returns a note when it could not. */
function ensureVulkanLoader(): string | null {
  if (process.platform !== 'linux') return null;
  const flags = os.constants.dlopen.RTLD_NOW | os.constants.dlopen.RTLD_GLOBAL | RTLD_NODELETE;
  const tryLoad = (path: string): boolean => {
    try {
      process.dlopen({exports: {}} as unknown as NodeJS.Module, path, flags);
      return true;
    } catch (e) {
      // A plain shared library is not a Node addon: the load itself succeeded (and
      // RTLD_NODELETE keeps it) when the only complaint is the missing registration.
      return /did not self-register/.test((e as Error).message);
    }
  };
  if (tryLoad('libvulkan.so.1')) return null;
  for (const p of VULKAN_LOADER_FALLBACKS) {
    if (fs.existsSync(p) && tryLoad(p)) return null;
  }
  return 'no Vulkan loader (libvulkan.so.1): install libvulkan1 or chromium';
}

async function setup(): Promise<WebGPUNodeStatus> {
  if (process.env.VK_ICD_FILENAMES == null && process.env.VK_DRIVER_FILES == null &&
      fs.existsSync(SWIFTSHADER_ICD)) {
    process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  }
  const g = globalThis as unknown as {navigator?: {gpu?: unknown}};
  if (g.navigator?.gpu == null) {
    const loaderProblem = ensureVulkanLoader();
    if (loaderProblem != null) return {available: false, reason: loaderProblem};
    let dawn: {create: (flags: string[]) => unknown, globals: Record<string, unknown>};
    try {
      // `webgpu` is ESM-only; keep this a real dynamic import.
      dawn = await import('webgpu') as unknown as typeof dawn;
    } catch (e) {
      return {available: false, reason: `cannot load the 'webgpu' (Dawn) package: ${(e as Error).message}`};
    }
    Object.assign(globalThis, dawn.globals);
    gpuInstance = dawn.create(['backend=vulkan']);
    Object.defineProperty(globalThis, 'navigator', {
      value: {...(g.navigator ?? {}), gpu: gpuInstance}, configurable: true, writable: true,
    });
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
