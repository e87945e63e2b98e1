/**
 * Every tf.env() flag of the package, registered here once when the package is imported, and
 * the checks built on them: `hasFusedKernel` (may an op run its fused kernel?), `fusedLayersOn`
 * (do the plugin's layers take their fused / lean paths?) and `fusedLayerKernelOn` (the
 * webgpu-only layer kernels). The package exports every flag name from here (core/index.ts).
 */
import * as tf from '@tensorflow/tfjs-core';

import {KArAtLayerNorm} from './kernel_names';

/**
 * When false, every op ignores its fused kernels and runs its composite of stock tfjs ops (for
 * benchmarks and debugging). Default true.
 */
export const KARAT_FUSED_FLAG = 'KARAT_FUSED';

/**
 * Most floats (B·h·N²·2G) the composite Fourier-KArAt path may materialise. Default 2^27
 * (512 MiB of cos/sin features; the backward pass needs about three times that).
 */
export const KARAT_COMPOSITE_MAX_FLOATS_FLAG = 'KARAT_COMPOSITE_MAX_FLOATS';

/**
 * When on (default true), the plugin's layers take their fused / lean paths: the layerNorm op
 * on every backend, the fused MLP Dense+GELU on webgpu, and the memory-lean attention ops of
 * attention.ts on every backend. Off, they run the stock tfjs-layers code, so benchmarks can
 * compare both in one process. It only affects the plugin's own layers (KArAtLayerNormalization,
 * KArAtDense, KArAtMultiHeadAttention), never a stock tfjs-layers layer.
 */
export const KARAT_FUSED_LAYERS_FLAG = 'KARAT_FUSED_LAYERS';

/**
 * @deprecated the former name of KARAT_FUSED_LAYERS_FLAG, still honoured (false turns the paths
 * off, with a one-time console warning).
 */
export const KARAT_WEBGPU_FUSED_LAYERS_FLAG = 'KARAT_WEBGPU_FUSED_LAYERS';

/**
 * When false, the WebGL kernels compute with the composite path (stock tfjs ops) instead of
 * their own shaders. Default true. (KARAT_FUSED=false bypasses the kernels altogether.)
 */
export const KARAT_WEBGL_FUSED_FLAG = 'KARAT_WEBGL_FUSED';

/**
 * When false, the wasm kernels run their TypeScript implementation instead of the
 * WebAssembly SIMD module (for tests and benchmarks). Default true.
 */
export const KARAT_WASM_SIMD_FLAG = 'KARAT_WASM_SIMD';

const env = tf.env();
env.registerFlag(KARAT_FUSED_FLAG, () => true);
env.registerFlag(KARAT_COMPOSITE_MAX_FLOATS_FLAG, () => 2 ** 27);
env.registerFlag(KARAT_FUSED_LAYERS_FLAG, () => true);
env.registerFlag(KARAT_WEBGPU_FUSED_LAYERS_FLAG, () => true);
env.registerFlag(KARAT_WEBGL_FUSED_FLAG, () => true);
env.registerFlag(KARAT_WASM_SIMD_FLAG, () => true);

/** True when `kernelName` has a kernel registered for `backendName` (default: the active one) and KARAT_FUSED is on. */
export function hasFusedKernel(kernelName: string, backendName = tf.getBackend()): boolean {
  return tf.env().getBool(KARAT_FUSED_FLAG) && tf.getKernel(kernelName, backendName) != null;
}

let deprecatedFlagNoted = false;

/**
 * True while flag KARAT_FUSED_LAYERS is on (and its deprecated alias KARAT_WEBGPU_FUSED_LAYERS
 * has not been set to false): the plugin's layers take their fused / lean paths on any backend.
 */
export function fusedLayersOn(): boolean {
  const e = tf.env();
  if (!e.getBool(KARAT_WEBGPU_FUSED_LAYERS_FLAG)) {
    if (!deprecatedFlagNoted) {
      deprecatedFlagNoted = true;
      console.warn(`tfjs-karat: flag ${KARAT_WEBGPU_FUSED_LAYERS_FLAG} is deprecated; set ` +
                   `${KARAT_FUSED_LAYERS_FLAG} instead (it switches the fused layer paths on every backend)`);
    }
    return false;
  }
  return e.getBool(KARAT_FUSED_LAYERS_FLAG);
}

/**
 * True when a plugin layer should call the webgpu layer kernel `kernelName` (KArAtBiasGelu,
 * KArAtSoftmax, KArAtAdamWInPlace, ...): fusedLayersOn(), the active backend is webgpu and
 * hasFusedKernel(kernelName).
 */
export function fusedLayerKernelOn(kernelName: string): boolean {
  return fusedLayersOn() && tf.getBackend() === 'webgpu' && hasFusedKernel(kernelName);
}

/** @deprecated use fusedLayersOn */
export function fusedLayersEnabled(): boolean {
  return fusedLayersOn();
}

/** @deprecated use fusedLayersOn (the LayerNorm layers use the layerNorm op whenever it holds) */
export function useLayerNormOp(): boolean {
  return fusedLayersOn();
}

/** @deprecated use fusedLayersOn (the attention layers use the lean ops whenever it holds) */
export function useLeanAttention(): boolean {
  return fusedLayersOn();
}

/** @deprecated use fusedLayerKernelOn(kernelName) */
export function useFusedLayers(kernelName: string = KArAtLayerNorm): boolean {
  return fusedLayerKernelOn(kernelName);
}
