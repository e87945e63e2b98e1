/**
 * Faster BatchMatMul on wasm for the matrix products of a backward pass, opt-in.
 *
 * tfjs-backend-wasm 4.22 runs a matrix product through XNNPACK only when neither operand is
 * transposed and both have batch size 1; every other BatchMatMul (transposeA or transposeB,
 * which is what the gradient of a Dense layer asks for: dx = dy·Wᵀ, dW = xᵀ·dy) takes a
 * plain loop that is 5-10x slower on a ViT's shapes. `enableWasmMatMulNN` replaces the wasm
 * BatchMatMul kernel with one that, for a transposed product of two batch-1 float32
 * operands, transposes the operand(s) with the wasm Transpose kernel and runs the XNNPACK
 * product; anything else goes to the stock kernel unchanged. Same product, the sums in
 * another order (float32 rounding differences only).
 *
 * It replaces a stock kernel, so nothing calls it on import: the trainer turns it on for its
 * training steps and restores the stock kernel afterwards (the function it returns).
 */
import {BatchMatMul, BatchMatMulAttrs, getKernel, KernelConfig, KernelFunc, registerKernel, TensorInfo, Transpose, unregisterKernel, util} from '@tensorflow/tfjs-core';

interface DisposingBackend {
  disposeData(dataId: object): void;
}

let active: KernelConfig | null = null;

function batchOf(t: TensorInfo): number {
  return util.sizeFromShape(t.shape.slice(0, -2));
}

/** The wasm BatchMatMul that runs transposed batch-1 products through XNNPACK (see above). */
export function matMulNNKernel(stock: KernelFunc, transpose: KernelFunc): KernelFunc {
  return (args) => {
    const {a, b} = args.inputs as {a: TensorInfo, b: TensorInfo};
    const {transposeA, transposeB} = args.attrs as unknown as BatchMatMulAttrs;
    if (!(transposeA || transposeB) || a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length < 2 || b.shape.length < 2 ||
        batchOf(a) !== 1 || batchOf(b) !== 1) {
      return stock(args);
    }
    const backend = args.backend as unknown as DisposingBackend;
    const swapLast = (t: TensorInfo) => {
      const perm = t.shape.map((_, i) => i);
      const r = perm.length;
      [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
      return transpose({inputs: {x: t}, backend: args.backend, attrs: {perm}}) as TensorInfo;
    };
    const a2 = transposeA ? swapLast(a) : a, b2 = transposeB ? swapLast(b) : b;
    const out = stock({inputs: {a: a2, b: b2}, backend: args.backend, attrs: {...args.attrs, transposeA: false, transposeB: false}});
    if (a2 !== a) backend.disposeData(a2.dataId);
    if (b2 !== b) backend.disposeData(b2.dataId);
    return out;
  };
}

/**
 * Turns the faster wasm BatchMatMul on (when the wasm backend's kernels are registered) and
 * returns the function that restores the stock kernel. Nested calls are no-ops that return
 * a no-op restore.
 */
export function enableWasmMatMulNN(): () => void {
  if (active != null) return () => {};
  const stock = getKernel(BatchMatMul, 'wasm');
  const transpose = getKernel(Transpose, 'wasm');
  if (stock == null || transpose == null) return () => {};
  const replaced: KernelConfig = {...stock};
  unregisterKernel(BatchMatMul, 'wasm');
  registerKernel({kernelName: BatchMatMul, backendName: 'wasm', kernelFunc: matMulNNKernel(stock.kernelFunc, transpose.kernelFunc)});
  active = replaced;
  return () => {
    if (active !== replaced) return;
    unregisterKernel(BatchMatMul, 'wasm');
    registerKernel(replaced);
    active = null;
  };
}

/** True while enableWasmMatMulNN's kernel is registered. */
export function wasmMatMulNNActive(): boolean {
  return active != null;
}
