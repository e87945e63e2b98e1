/**
 * The one module that touches non-public tfjs internals, behind small typed functions:
 * tfjs-core's engine (the gradient tape, `engine.state`, `startTape` / `endTape` / `scopedRun`,
 * `nextTensorId`, and the `engine.gradients` method) for the lean backward pass
 * (lean_grads.ts), and tfjs-backend-webgpu's WebGPUBackend (tensor map, uniforms, command
 * encoder and compute pass) for the in-place AdamW dispatch (kernels-webgpu/adamw_inplace.ts).
 *
 * It owns the version check: the engine internals are used only on the tfjs-core versions in
 * TFJS_INTERNALS_VERSIONS and only when they have the expected shape (`engineInternalsSupported`);
 * the backend internals likewise only on those versions and when the backend object has every
 * member used (duck typing, no runtime import of tfjs-backend-webgpu). Otherwise the functions say so (null / false) and the
 * callers run public tfjs instead.
 */
import * as tf from '@tensorflow/tfjs-core';
import type {TensorInfo} from '@tensorflow/tfjs-core';

// ------------------------------------------------------------------ version

/** The tfjs-core versions whose internals this module was written for and is tested against. */
export const TFJS_INTERNALS_VERSIONS = '4.22.x';

/** True when `version` (a tfjs-core version string) is one of TFJS_INTERNALS_VERSIONS. */
export function tfjsInternalsSupportVersion(version: string): boolean {
  return typeof version === 'string' && /^4\.22\.\d+$/.test(version);
}

/** The tfjs-core version in use (tests may override it to exercise the fallback). */
let versionOverride: string | null = null;
const noted = new Set<string>();

export function tfjsVersion(): string {
  return versionOverride ?? tf.version_core;
}

/** @internal Pretends another tfjs-core version is installed (null: the real one). For tests. */
export function setTfjsVersionForTesting(version: string | null): void {
  versionOverride = version;
  noted.clear();
}

/** console.warn(message) once per `key` (again after setTfjsVersionForTesting). */
export function noteOnce(key: string, message: string): void {
  if (noted.has(key)) return;
  noted.add(key);
  console.warn(message);
}

// ------------------------------------------------------------------ engine tape

/** One node of tfjs-core's gradient tape. */
export interface TapeNode {
  id: number;
  kernelName: string;
  inputs: Record<string, tf.Tensor>;
  outputs: tf.Tensor[];
  saved?: tf.Tensor[];
  gradient?: (dys: Array<tf.Tensor | null>) => Record<string, () => tf.Tensor>;
}

/** The signature of tfjs-core's `engine.gradients`. */
export type GradientsFn = (f: () => tf.Tensor, xs: tf.Tensor[], dy?: tf.Tensor, allowNoGradients?: boolean) =>
    {value: tf.Tensor, grads: Array<tf.Tensor | null>};

interface EngineInternals {
  state: {activeTape: TapeNode[] | null, gradientDepth: number};
  startTape(): void;
  endTape(): void;
  scopedRun<T>(start: () => void, end: () => void, f: () => T): T;
  tidy<T extends tf.TensorContainer>(nameOrFn: string | (() => T), fn?: () => T): T;
  /** Takes a tensor id; ids increase monotonically. */
  nextTensorId(): number;
}

/**
 * The engine's tape internals, or null when this tfjs-core is not a version of
 * TFJS_INTERNALS_VERSIONS or does not expose them as expected.
 */
function engineInternals(): EngineInternals | null {
  if (!tfjsInternalsSupportVersion(tfjsVersion())) return null;
  const e = tf.engine() as unknown as Partial<EngineInternals>;
  const ok = e.state != null && typeof e.state.gradientDepth === 'number' &&
      typeof e.startTape === 'function' && typeof e.endTape === 'function' &&
      typeof e.scopedRun === 'function' && typeof e.tidy === 'function' && typeof e.nextTensorId === 'function';
  return ok ? e as EngineInternals : null;
}

/** True when the engine's tape internals are usable (supported version, expected shape). */
export function engineInternalsSupported(): boolean {
  return engineInternals() != null;
}

function requireEngine(): EngineInternals {
  const e = engineInternals();
  if (e == null) throw new Error('tfjs-karat: the tfjs-core engine internals are not available');
  return e;
}

/** How many gradient computations are running (> 0 inside one: a higher-order gradient). */
export function gradientDepth(): number {
  return requireEngine().state.gradientDepth;
}

/**
 * Runs `f` (in an engine tidy named 'forward') while the engine records a fresh tape; returns
 * f's result and the recorded nodes. The tape stays the engine's active tape until releaseTape().
 */
export function recordTape<T extends tf.TensorContainer>(f: () => T): {result: T, tape: TapeNode[]} {
  const engine = requireEngine();
  const result = engine.scopedRun(() => engine.startTape(), () => engine.endTape(), () => engine.tidy('forward', f));
  return {result, tape: engine.state.activeTape ?? []};
}

/** Drops the engine's active tape (as tfjs does at the end of its backward pass). */
export function releaseTape(): void {
  requireEngine().state.activeTape = null;
}

/** The id the next tensor will get (tensors with a smaller id existed before this call). */
export function nextTensorId(): number {
  return requireEngine().nextTensorId();
}

// ------------------------------------------------------------------ engine.gradients

/** The engine's own gradients() saved by replaceEngineGradients, while it is replaced. */
let savedStock: {fn: GradientsFn, own: boolean} | null = null;

/** tfjs's own backward pass (even while replaceEngineGradients has replaced engine.gradients). */
export function stockEngineGradients(): GradientsFn {
  const e = tf.engine() as unknown as {gradients: GradientsFn};
  return (savedStock?.fn ?? e.gradients).bind(e);
}

/**
 * Replaces the engine's `gradients` method (used by tf.grad(s), tf.variableGrads,
 * optimizer.minimize) with `fn`; null restores tfjs's own. Nothing changes when it is already
 * in the requested state (replaced / not replaced).
 */
export function replaceEngineGradients(fn: GradientsFn | null): void {
  const e = tf.engine() as unknown as {gradients: GradientsFn};
  if (fn != null && savedStock == null) {
    savedStock = {fn: e.gradients, own: Object.prototype.hasOwnProperty.call(e, 'gradients')};
    e.gradients = fn;
  } else if (fn == null && savedStock != null) {
    if (savedStock.own) e.gradients = savedStock.fn;
    else delete (e as {gradients?: GradientsFn}).gradients;
    savedStock = null;
  }
}

/** True while replaceEngineGradients has replaced the engine's gradients method. */
export function engineGradientsReplaced(): boolean {
  return savedStock != null;
}

// ------------------------------------------------------------------ webgpu backend

/* The parts of tfjs-backend-webgpu's WebGPUBackend used here (duck typing, no runtime import). */
interface WebGPUTensorData {dtype: string, refCount: number, values: unknown, resource: unknown, external?: boolean}
interface WebGPUBackendInternals {
  device: GPUDevice;
  tensorMap: {get(id: object): WebGPUTensorData | undefined};
  uploadToGPU(id: object): void;
  makeUniforms(u: Array<{type: string, data: number[]}>): GPUBufferBinding;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  commandEncoder: GPUCommandEncoder | null;
  computePassEncoder: GPUComputePassEncoder | null;
  dispatchCountInPass: number;
  commandQueueOwnedIds: WeakSet<object>;
  activeTimers: unknown[] | null | undefined;
}

function webgpuInternals(b: unknown): WebGPUBackendInternals | null {
  if (!tfjsInternalsSupportVersion(tfjsVersion())) return null;
  const x = b as WebGPUBackendInternals;
  const ok = x != null && x.device != null && x.tensorMap != null && typeof x.uploadToGPU === 'function' &&
      typeof x.makeUniforms === 'function' && typeof x.ensureCommandEncoderReady === 'function' &&
      typeof x.endComputePassEncoder === 'function' && typeof x.submitQueue === 'function' &&
      x.commandQueueOwnedIds != null;
  return ok ? x : null;
}

function requireWebGPU(backend: unknown): WebGPUBackendInternals {
  const b = webgpuInternals(backend);
  if (b == null) throw new Error('tfjs-karat: not a tfjs-backend-webgpu backend with the expected internals');
  return b;
}

/**
 * The GPU device of a tfjs-backend-webgpu backend that has every internal used by
 * `exclusiveGPUBuffers`, `makeUniformBinding` and `recordDispatch`; null for any other
 * backend object, or where WebGPU is not available.
 */
export function webgpuDevice(backend: unknown): GPUDevice | null {
  if (typeof GPUBuffer === 'undefined') return null;
  return webgpuInternals(backend)?.device ?? null;
}

/**
 * The GPU buffers of `written` then `read` (uploaded to the GPU if needed), or null when one
 * of `written` is not a float32 tensor held by exactly one reference on a buffer of its own
 * (not an external one), or a buffer is not a GPUBuffer. For a dispatch that writes `written`
 * in place.
 */
export function exclusiveGPUBuffers(backend: unknown, written: TensorInfo[], read: TensorInfo[]): GPUBuffer[] | null {
  const b = requireWebGPU(backend);
  for (const t of written) {
    const d = b.tensorMap.get(t.dataId);
    if (d == null || d.dtype !== 'float32' || d.refCount !== 1 || d.external) return null;
  }
  const all = [...written, ...read];
  for (const t of all) b.uploadToGPU(t.dataId);
  const buffers = all.map((t) => b.tensorMap.get(t.dataId)!.resource);
  return buffers.every((x) => x instanceof GPUBuffer) ? buffers as GPUBuffer[] : null;
}

/** A uniform buffer binding holding `data` (laid out as the backend lays out program uniforms). */
export function makeUniformBinding(backend: unknown, data: Array<{type: string, data: number[]}>): GPUBufferBinding {
  return requireWebGPU(backend).makeUniforms(data);
}

/**
 * Records one compute dispatch into the backend's own command encoder / compute pass, in order
 * with every other tfjs dispatch: the tensors' buffers are marked as owned by the command queue
 * (so a disposal waits for the submit), the queue is submitted every `batchSize` dispatches as
 * tfjs does, and any cached CPU copy of `written` is dropped (the GPU buffer holds the truth).
 */
export function recordDispatch(backend: unknown, d: {
  pipeline: GPUComputePipeline, bindGroup: GPUBindGroup, workgroups: [number, number],
  written: TensorInfo[], read: TensorInfo[], batchSize: number,
}): void {
  const b = requireWebGPU(backend);
  for (const t of [...d.written, ...d.read]) b.commandQueueOwnedIds.add(t.dataId);
  const timing = b.activeTimers != null;
  b.ensureCommandEncoderReady();
  if (timing) b.endComputePassEncoder();
  if (b.computePassEncoder == null) {
    b.computePassEncoder = b.commandEncoder!.beginComputePass({});
  }
  b.computePassEncoder.setPipeline(d.pipeline);
  b.computePassEncoder.setBindGroup(0, d.bindGroup);
  b.computePassEncoder.dispatchWorkgroups(d.workgroups[0], d.workgroups[1], 1);
  b.dispatchCountInPass++;
  if (timing) {
    // tf.time / tf.profile: keep timed passes separate; their submit happens when queried.
    b.endComputePassEncoder();
  } else if (b.dispatchCountInPass >= d.batchSize) {
    b.endComputePassEncoder();
    b.submitQueue();
  }
  for (const t of d.written) b.tensorMap.get(t.dataId)!.values = null;
}

// ------------------------------------------------------------------ cpu backend

/**
 * Turns off the one-time "install tfjs-node" console notice of tfjs-backend-cpu (its private
 * `firstUse` flag); call it while the cpu backend is the active one.
 */
export function silenceCpuBackendNotice(): void {
  (tf.backend() as unknown as {firstUse?: boolean}).firstUse = false;
}
