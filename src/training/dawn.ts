/**
 * WebGPU in Node: Dawn (the `webgpu` npm package) over Vulkan, set up so that
 * tfjs-backend-webgpu finds `navigator.gpu`. Used by the trainer's backend selection, the
 * tests and the benchmarks.
 *
 * - VK_ICD_FILENAMES: when neither it nor VK_DRIVER_FILES is set and Chromium's SwiftShader
 *   ICD exists, Vulkan is pointed at SwiftShader (CPU). A GPU machine sets its own ICD first.
 * - libvulkan.so.1: when the system has no Vulkan loader, the one Chromium ships is loaded into
 *   the process so that Dawn finds it.
 * - navigator.gpu = create(['backend=vulkan']) with the WebGPU globals. Import
 *   '@tensorflow/tfjs-backend-webgpu' after this: it registers 'webgpu' only if navigator.gpu
 *   exists when it is loaded.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';

export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
const VULKAN_LOADER_FALLBACKS = ['/usr/lib/chromium/libvulkan.so.1'];
const RTLD_NODELETE = 0x1000;  // glibc; not in os.constants.dlopen

/** Makes libvulkan.so.1 loadable by Dawn; returns why not, or null when it is. */
export function ensureVulkanLoader(): string | null {
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

/**
 * Gives Node a `navigator.gpu` from Dawn. Returns the GPU instance it created, or null when
 * `navigator.gpu` already existed. Throws an Error that says why WebGPU cannot start.
 */
export async function installDawnGpu(): Promise<unknown> {
  if (process.env.VK_ICD_FILENAMES == null && process.env.VK_DRIVER_FILES == null && fs.existsSync(SWIFTSHADER_ICD)) {
    process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  }
  const g = globalThis as unknown as {navigator?: {gpu?: unknown}};
  if (g.navigator?.gpu != null) return null;
  const loaderProblem = ensureVulkanLoader();
  if (loaderProblem != null) throw new Error(loaderProblem);
  let dawn: {create: (flags: string[]) => unknown, globals: Record<string, unknown>};
  try {
    // `webgpu` is ESM-only; keep this a real dynamic import.
    dawn = await import('webgpu') as unknown as typeof dawn;
  } catch (e) {
    throw new Error(`cannot load the 'webgpu' (Dawn) package: ${(e as Error).message}; npm install webgpu`);
  }
  Object.assign(globalThis, dawn.globals);
  const gpu = dawn.create(['backend=vulkan']);
  Object.defineProperty(globalThis, 'navigator', {value: {...(g.navigator ?? {}), gpu}, configurable: true, writable: true});
  return gpu;
}
