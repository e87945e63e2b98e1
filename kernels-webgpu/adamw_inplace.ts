/**
 * In-place AdamW on webgpu: ONE dispatch per parameter that updates param, m and v in their own
 * GPU buffers (a tfjs WebGPU program has a single output, so the out-of-place kernel needs
 * three). Used by KArAtAdamW when the caller asks for it (attr inPlace, set by
 * adamWUpdateVariables) and only when it is safe:
 *   - param, m, v are float32 tensors held by exactly one reference each (their variables; no
 *     other tensor shares the buffer), on GPU buffers, not external (zero-copy) buffers;
 *   - the dispatch fits 65535 x 65535 workgroups.
 * Otherwise the caller runs the three-program path. The pipeline is built here (the tfjs
 * program machinery cannot bind several writable buffers) and recorded into the backend's own
 * command encoder / compute pass, in order with every other tfjs dispatch; the buffers are
 * marked as owned by the command queue (so a disposal waits for the submit) and any CPU copy
 * of the values is dropped (the GPU buffer is now the truth).
 */
import type {TensorInfo} from '@tensorflow/tfjs-core';

import {ADAMW_UNIFORMS, adamWStepWGSL} from './adamw_webgpu';

const WG = 64;
const MAX_GROUPS = 65535;

const SHADER = `
struct Hyper { ${ADAMW_UNIFORMS} n : i32, };
@group(0) @binding(0) var<storage, read_write> param : array<f32>;
@group(0) @binding(1) var<storage, read_write> mom1 : array<f32>;
@group(0) @binding(2) var<storage, read_write> mom2 : array<f32>;
@group(0) @binding(3) var<storage, read> grad : array<f32>;
@group(0) @binding(4) var<uniform> u : Hyper;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid : vec3<u32>, @builtin(num_workgroups) nwg : vec3<u32>) {
  let i = i32(gid.x + gid.y * nwg.x * ${WG}u);
  if (i >= u.n) { return; }
  let g = grad[i];
  ${adamWStepWGSL('u', {grad: 'g', m: 'mom1[i]', v: 'mom2[i]', param: 'param[i]'})}
  mom1[i] = m1;
  mom2[i] = v1;
  param[i] = p1;
}`;

/* The parts of tfjs-backend-webgpu's WebGPUBackend this uses (duck typing, no runtime import). */
interface TensorData {dtype: string, refCount: number, values: unknown, resource: unknown, external?: boolean}
interface BackendLike {
  device: GPUDevice;
  tensorMap: {get(id: object): TensorData | undefined};
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

const pipelines = new WeakMap<GPUDevice, GPUComputePipeline>();

function isBackendLike(b: unknown): b is BackendLike {
  const x = b as BackendLike;
  return x != null && x.device != null && x.tensorMap != null && typeof x.uploadToGPU === 'function' &&
      typeof x.makeUniforms === 'function' && typeof x.ensureCommandEncoderReady === 'function' &&
      typeof x.endComputePassEncoder === 'function' && typeof x.submitQueue === 'function' &&
      x.commandQueueOwnedIds != null;
}

/**
 * Updates param, m, v in place with one dispatch; returns false (doing nothing) when that is
 * not safe or not possible, in which case the caller must use the out-of-place kernel.
 * `hyper`: the uniform data of ADAMW_UNIFORMS (adamWUniformData).
 */
export function adamWInPlace(backend: unknown, param: TensorInfo, m: TensorInfo, v: TensorInfo,
                             grad: TensorInfo, hyper: Array<{type: string, data: number[]}>,
                             env: {batchSize: number}): boolean {
  if (!isBackendLike(backend) || typeof GPUBuffer === 'undefined') return false;
  const n = param.shape.reduce((a, b) => a * b, 1);
  const groups = Math.ceil(n / WG);
  if (n === 0 || groups > MAX_GROUPS * MAX_GROUPS) return false;
  const owned = [param, m, v];
  const ids = new Set(owned.map((t) => t.dataId));
  if (ids.size !== 3 || ids.has(grad.dataId)) return false;
  for (const t of owned) {
    const d = backend.tensorMap.get(t.dataId);
    if (d == null || d.dtype !== 'float32' || d.refCount !== 1 || d.external) return false;
  }
  for (const t of [...owned, grad]) backend.uploadToGPU(t.dataId);
  const buffers = [...owned, grad].map((t) => backend.tensorMap.get(t.dataId)!.resource);
  if (!buffers.every((b) => b instanceof GPUBuffer)) return false;

  const device = backend.device;
  let pipeline = pipelines.get(device);
  if (pipeline == null) {
    pipeline = device.createComputePipeline({
      layout: 'auto', compute: {module: device.createShaderModule({code: SHADER}), entryPoint: 'main'},
    });
    pipelines.set(device, pipeline);
  }
  const uniforms = backend.makeUniforms([...hyper, {type: 'int32', data: [n]}]);
  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      ...buffers.map((b, i) => ({binding: i, resource: {buffer: b as GPUBuffer}})),
      {binding: 4, resource: uniforms},
    ],
  });
  for (const t of [...owned, grad]) backend.commandQueueOwnedIds.add(t.dataId);
  const timing = backend.activeTimers != null;
  backend.ensureCommandEncoderReady();
  if (timing) backend.endComputePassEncoder();
  if (backend.computePassEncoder == null) {
    backend.computePassEncoder = backend.commandEncoder!.beginComputePass({});
  }
  const x = Math.min(groups, MAX_GROUPS);
  backend.computePassEncoder.setPipeline(pipeline);
  backend.computePassEncoder.setBindGroup(0, bindGroup);
  backend.computePassEncoder.dispatchWorkgroups(x, Math.ceil(groups / x), 1);
  backend.dispatchCountInPass++;
  if (timing) {
    // tf.time / tf.profile: keep timed passes separate; their submit happens when queried.
    backend.endComputePassEncoder();
  } else if (backend.dispatchCountInPass >= env.batchSize) {
    backend.endComputePassEncoder();
    backend.submitQueue();
  }
  // The GPU buffers now hold the truth: drop any cached CPU copy.
  for (const t of owned) backend.tensorMap.get(t.dataId)!.values = null;
  return true;
}
