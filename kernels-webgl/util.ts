/**
 * What the WebGL kernels need from tfjs-backend-webgl's MathBackendWebGL (duck typing:
 * the backend object passed to kernelFunc; the package itself is only imported as types),
 * when they may run fused, and the composite fallback used otherwise.
 */
import * as tf from '@tensorflow/tfjs-core';
import type {GPGPUProgram} from '@tensorflow/tfjs-backend-webgl';

import {KARAT_WEBGL_FUSED_FLAG} from '../core/flags';
import {MAX_FUSED_GRID} from '../core/kernel_names';


export interface WebGLLikeBackend {
  runWebGLProgram(
      program: GPGPUProgram, inputs: tf.TensorInfo[], outputDtype: tf.DataType,
      customUniformValues?: number[][], preventEagerUnpackingOfOutput?: boolean): tf.TensorInfo;
  disposeIntermediateTensorInfo(info: tf.TensorInfo): void;
}

const noted = new Set<string>();

function envNumber(name: string, fallback: number): number {
  try {
    return tf.env().getNumber(name);
  } catch {
    return fallback;
  }
}

function envBool(name: string, fallback: boolean): boolean {
  try {
    return tf.env().getBool(name);
  } catch {
    return fallback;
  }
}

/**
 * Null when the fused shaders can run here for grid size G, else the reason they cannot:
 * they need WebGL2 (GLSL ES 3.0: dynamic loops, vector indexing) with float32 render
 * targets (accumulating in float16 would give wrong numbers), and G <= MAX_FUSED_GRID.
 */
export function fusedUnsupportedReason(G: number): string | null {
  if (!tf.env().getBool(KARAT_WEBGL_FUSED_FLAG)) return `${KARAT_WEBGL_FUSED_FLAG} is false`;
  if (G > MAX_FUSED_GRID) return `grid G=${G} > ${MAX_FUSED_GRID}`;
  const version = envNumber('WEBGL_VERSION', 0);
  if (version < 2) return `WebGL version ${version} (the fused shaders need WebGL2)`;
  if (!envBool('WEBGL_RENDER_FLOAT32_ENABLED', false)) {
    return 'no float32 render targets (WEBGL_RENDER_FLOAT32_ENABLED is false)';
  }
  return null;
}

/** One console note per distinct reason (not for the explicit flag). */
export function noteFallback(kernel: string, reason: string): void {
  if (reason.startsWith(KARAT_WEBGL_FUSED_FLAG) || noted.has(reason)) return;
  noted.add(reason);
  console.warn(`tfjs-karat: WebGL kernel ${kernel} uses the composite path (stock tfjs ops): ${reason}`);
}

/** A tf.Tensor for a kernel input (kernels receive tensors from runKernel, or bare TensorInfos). */
export function asTensor<T extends tf.Tensor>(x: tf.TensorInfo): T {
  return (x instanceof tf.Tensor ? x : tf.engine().makeTensorFromTensorInfo(x)) as T;
}
