/**
 * Backend selection for training in Node: cpu, wasm, webgpu (Dawn's `webgpu` package over
 * Vulkan; SwiftShader on machines without a GPU), tensorflow (tfjs-node, when installed),
 * webgl (browser only: a clear error in Node). 'auto' tries them in the order measured to
 * be fastest for training on this project's machines (docs/training.md) and says which.
 */
import * as tf from '@tensorflow/tfjs-core';

import {BackendChoice, ConfigError} from './config';
import {installDawnGpu} from './dawn';
import * as nodeFs from 'node:fs';
import {silenceCpuBackendNotice} from '../../core/tfjs_internals';
import {loadTensorFlowKernels} from '../../kernels-cuda/tensorflow/loader';

let tensorFlowNoteShown = false;

/**
 * Order tried by 'auto', fastest first, from the training throughput measured on the
 * 2-core CPU-only machines (docs/training.md): the TensorFlow binding when installed,
 * WebGPU only on a hardware adapter (on SwiftShader it trains ~10x slower than cpu), then
 * wasm (SIMD; ~3x the training throughput of cpu since the patch embedding is a matmul and
 * no longer needs the Conv2DBackpropFilter kernel tfjs-backend-wasm lacks), then cpu.
 */
export const AUTO_ORDER: ReadonlyArray<Exclude<BackendChoice, 'auto'>> = ['tensorflow', 'webgpu', 'wasm', 'cpu'];

/** A GPU device node or an explicit non-SwiftShader Vulkan driver: worth probing WebGPU. */
function hardwareGpuLikely(): boolean {
  const icd = process.env.VK_ICD_FILENAMES ?? process.env.VK_DRIVER_FILES;
  if (icd) return !/swiftshader|lvp_icd|lavapipe/.test(icd);
  if (nodeFs.existsSync('/dev/nvidia0')) return true;
  try {
    return nodeFs.readdirSync('/dev/dri').some((f) => f.startsWith('renderD'));
  } catch {
    return false;
  }
}

/** True when the active WebGPU adapter is a software rasteriser (SwiftShader / lavapipe). */
function softwareAdapter(): boolean {
  const b = tf.backend() as unknown as {adapterInfo?: {vendor?: string, architecture?: string, description?: string}};
  const s = `${b.adapterInfo?.vendor ?? ''} ${b.adapterInfo?.architecture ?? ''} ${b.adapterInfo?.description ?? ''}`.toLowerCase();
  return /swiftshader|llvmpipe|lavapipe|software/.test(s);
}

export interface BackendInfo {
  name: string;
  detail: string;
}

async function quietly<T>(fn: () => Promise<T>): Promise<T> {
  const w = console.warn, e = console.error, l = console.log;
  console.warn = console.error = console.log = () => undefined;
  try {
    return await fn();
  } finally {
    console.warn = w;
    console.error = e;
    console.log = l;
  }
}

/** Registers (if needed) and activates one backend; throws ConfigError with the reason. */
export async function activateBackend(name: Exclude<BackendChoice, 'auto'>): Promise<BackendInfo> {
  switch (name) {
    case 'cpu':
      await import('@tensorflow/tfjs-backend-cpu');
      await tf.setBackend('cpu');
      // the CPU backend's one-time "install tfjs-node" banner is noise in a CLI that offers --backend
      silenceCpuBackendNotice();
      return {name, detail: 'tfjs-backend-cpu (plain JavaScript, 1 thread)'};
    case 'wasm': {
      await import('@tensorflow/tfjs-backend-wasm');
      const ok = await quietly(() => tf.setBackend('wasm'));
      if (!ok) throw new ConfigError('backend wasm: tfjs-backend-wasm failed to initialise');
      const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
      const threads = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
      return {name, detail: `tfjs-backend-wasm (SIMD ${simd ? 'on' : 'off'}, threads ${threads ? 'on' : 'off'})`};
    }
    case 'webgpu': {
      try {
        await installDawnGpu();
      } catch (e) {
        throw new ConfigError(`backend webgpu: ${(e as Error).message}`);
      }
      await import('@tensorflow/tfjs-backend-webgpu');
      const ok = await quietly(() => tf.setBackend('webgpu'));
      if (!ok) throw new ConfigError('backend webgpu: no WebGPU adapter/device (no Vulkan driver? set VK_ICD_FILENAMES)');
      const b = tf.backend() as unknown as {adapterInfo?: {vendor?: string, architecture?: string}};
      return {name, detail: `tfjs-backend-webgpu on Dawn (${`${b.adapterInfo?.vendor ?? '?'} ${b.adapterInfo?.architecture ?? ''}`.trim()})`};
    }
    case 'tensorflow': {
      const pkgs = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'];
      for (const p of pkgs) {
        try {
          await quietly(() => import(p));
          if (tf.findBackendFactory('tensorflow') != null && await quietly(() => tf.setBackend('tensorflow'))) {
            // the fused Fourier-KArAt op inside TensorFlow when its library is built; else the composite path
            // KARAT_TF_KERNELS=0 keeps the composite path (as for the tfjs-karat/node entry)
            const fused = process.env.KARAT_TF_KERNELS === '0'
              ? {loaded: false, reason: 'KARAT_TF_KERNELS=0'} : loadTensorFlowKernels();
            if (!fused.loaded && !tensorFlowNoteShown) {
              tensorFlowNoteShown = true;
              console.warn(`note: tensorflow backend: Fourier-KArAt runs its composite path (${fused.reason})`);
            }
            return {name, detail: `${p} (TensorFlow C library; Fourier-KArAt ${fused.loaded ? 'fused op' : 'composite path'})`};
          }
        } catch {
          // try the next package
        }
      }
      throw new ConfigError(`backend tensorflow: neither @tensorflow/tfjs-node nor @tensorflow/tfjs-node-gpu is installed ` +
          `(they are optional: npm install @tensorflow/tfjs-node)`);
    }
    case 'webgl':
      throw new ConfigError('backend webgl: WebGL needs a browser (a WebGL2 context); Node has none. ' +
          'Use --backend webgpu (WebGPU via Dawn) or cpu/wasm in Node, or train in a browser with the library API');
    default:
      throw new ConfigError(`unknown backend '${String(name)}'; expected auto, cpu, wasm, webgpu, webgl or tensorflow`);
  }
}

/** Activates `choice`; for 'auto', the first of AUTO_ORDER that works. */
export async function selectBackend(choice: BackendChoice): Promise<BackendInfo & {auto: boolean, tried: string[]}> {
  if (choice !== 'auto') return {...await activateBackend(choice), auto: false, tried: []};
  const tried: string[] = [];
  for (const b of AUTO_ORDER) {
    if (b === 'webgpu' && !hardwareGpuLikely()) {
      tried.push('webgpu: no GPU device (/dev/nvidia*, /dev/dri/renderD*) and no VK_ICD_FILENAMES; skipped');
      continue;
    }
    try {
      const info = await activateBackend(b);
      if (b === 'webgpu' && softwareAdapter()) {
        tried.push(`webgpu: software adapter only (${info.detail}), slower than cpu`);
        releaseBackends();
        continue;
      }
      return {...info, auto: true, tried};
    } catch (e) {
      tried.push(`${b}: ${(e as Error).message}`);
    }
  }
  throw new ConfigError(`backend auto: no backend could be started:\n  ${tried.join('\n  ')}`);
}

/** Lets Node exit after WebGPU use. */
export function releaseBackends(): void {
  if (tf.findBackend('webgpu') != null) {
    try {
      tf.removeBackend('webgpu');
    } catch {
      // ignore
    }
    const g = globalThis as unknown as {navigator?: {gpu?: unknown}};
    if (g.navigator?.gpu != null) delete g.navigator.gpu;
  }
}
