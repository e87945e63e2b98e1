/**
 * Heap access for the wasm kernels. tfjs-backend-wasm keeps every tensor in the wasm
 * module's linear memory; `typedArrayFromHeap` is a view of it (no copy). A view is
 * detached when the heap grows, and the heap grows only when memory is allocated on it
 * (`makeOutput`): kernels allocate all their outputs first and take views afterwards,
 * and allocate nothing on the heap while computing.
 */
import type {BackendWasm} from '@tensorflow/tfjs-backend-wasm';
import type {TensorInfo} from '@tensorflow/tfjs-core';

/** A float32 view of `t`'s memory on the wasm heap (inputs are read, outputs written through it). */
export function heapF32(backend: BackendWasm, t: TensorInfo): Float32Array {
  if (t.dtype !== 'float32') throw new Error(`wasm kernel: expected a float32 tensor, got ${t.dtype}`);
  return backend.typedArrayFromHeap(t) as Float32Array;
}
