/**
 * In-place AdamW on webgpu: ONE dispatch per parameter that updates param, m and v in their own
 * GPU buffers (a tfjs WebGPU program has a single output, so the out-of-place kernel needs
 * three). Used by the KArAtAdamWInPlace kernel (which adamWUpdateVariables runs), and only when
 * it is safe:
 *   - param, m, v are float32 tensors held by exactly one reference each (their variables; no
 *     other tensor shares the buffer), on GPU buffers, not external (zero-copy) buffers;
 *   - the dispatch fits 65535 x 65535 workgroups.
 * Otherwise the caller runs the three-program path. The pipeline is built here (the tfjs
 * program machinery cannot bind several writable buffers) and recorded into the backend's own
 * command encoder / compute pass, in order with every other tfjs dispatch; the buffers are
 * marked as owned by the command queue (so a disposal waits for the submit) and any CPU copy
 * of the values is dropped (the GPU buffer is now the truth). Every use of the backend's
 * internals goes through core/tfjs_internals.ts.
 */
import type {TensorInfo} from '@tensorflow/tfjs-core';

import {exclusiveGPUBuffers, makeUniformBinding, recordDispatch, webgpuDevice} from '../core/tfjs_internals';
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

const pipelines = new WeakMap<GPUDevice, GPUComputePipeline>();

function pipelineOf(device: GPUDevice): GPUComputePipeline {
  let pipeline = pipelines.get(device);
  if (pipeline == null) {
    pipeline = device.createComputePipeline({
      layout: 'auto', compute: {module: device.createShaderModule({code: SHADER}), entryPoint: 'main'},
    });
    pipelines.set(device, pipeline);
  }
  return pipeline;
}

/**
 * Updates param, m, v in place with one dispatch; returns false (doing nothing) when that is
 * not safe or not possible, in which case the caller must use the out-of-place kernel.
 * `hyper`: the uniform data of ADAMW_UNIFORMS (adamWUniformData).
 */
export function adamWInPlace(backend: unknown, param: TensorInfo, m: TensorInfo, v: TensorInfo,
                             grad: TensorInfo, hyper: Array<{type: string, data: number[]}>,
                             env: {batchSize: number}): boolean {
  const device = webgpuDevice(backend);
  if (device == null) return false;
  const n = param.shape.reduce((a, b) => a * b, 1);
  const groups = Math.ceil(n / WG);
  if (n === 0 || groups > MAX_GROUPS * MAX_GROUPS) return false;
  const owned = [param, m, v];
  const ids = new Set(owned.map((t) => t.dataId));
  if (ids.size !== 3 || ids.has(grad.dataId)) return false;
  const buffers = exclusiveGPUBuffers(backend, owned, [grad]);
  if (buffers == null) return false;

  const pipeline = pipelineOf(device);
  const uniforms = makeUniformBinding(backend, [...hyper, {type: 'int32', data: [n]}]);
  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [...buffers.map((b, i) => ({binding: i, resource: {buffer: b}})), {binding: 4, resource: uniforms}],
  });
  const x = Math.min(groups, MAX_GROUPS);
  recordDispatch(backend, {pipeline, bindGroup, workgroups: [x, Math.ceil(groups / x)], written: owned, read: [grad],
                           batchSize: env.batchSize});
  return true;
}
