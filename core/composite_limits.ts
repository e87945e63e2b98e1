/**
 * Memory bound of the composite Fourier-KArAt path. Where a backend has no fused kernel
 * (wasm, tensorflow, ...) the composite materialises cos(m·S) and sin(m·S) for every score:
 * B·h·N²·2G floats, plus intermediates of the same size in the backward pass. That size is
 * known before anything is allocated, so a configuration beyond the limit is refused with
 * an error that says why and what to do, instead of running out of memory minutes later.
 */
import * as tf from '@tensorflow/tfjs-core';

import {KARAT_COMPOSITE_MAX_FLOATS_FLAG} from './flags';
import {KArAtArgumentError} from './validate';


/** Floats the composite path materialises for scores [B,h,N,N] and grid G. */
export function compositeFloats(B: number, h: number, N: number, G: number): number {
  return B * h * N * N * 2 * G;
}

/** Throws when the composite path of `op` would exceed the limit for these sizes. */
export function checkCompositeMemory(op: string, B: number, h: number, N: number, G: number): void {
  const floats = compositeFloats(B, h, N, G);
  const limit = tf.env().getNumber(KARAT_COMPOSITE_MAX_FLOATS_FLAG);
  if (floats <= limit) return;
  const gib = (floats * 4 / 2 ** 30).toFixed(1);
  throw new KArAtArgumentError(
      `${op}: backend '${tf.getBackend()}' has no fused Fourier-KArAt kernel, and its composite path would ` +
      `materialise B·h·N²·2G = ${B}·${h}·${N}²·2·${G} = ${floats} floats (${gib} GiB), more than the limit of ` +
      `${limit} floats. Use a smaller grid G, batch size or token count (larger patches), a backend with fused ` +
      `kernels (cpu, webgl, webgpu), or raise tf.env().set('${KARAT_COMPOSITE_MAX_FLOATS_FLAG}', n) if the memory is there`);
}
