/**
 * Kernels of the fused layer ops (core/fused_layers.ts) for backend 'webgpu':
 *   KArAtLayerNorm      1 dispatch
 *   KArAtLayerNormGrad  4 dispatches (row stats, dx, dgamma, dbeta)
 *   KArAtBiasGelu       1 dispatch
 *   KArAtBiasGeluGrad   2 dispatches (dx, dbias)
 *   KArAtSoftmax        1 dispatch;  KArAtSoftmaxGrad 1 dispatch (stock Softmax gradient: 4)
 *   KArAtAdamW          3 dispatches (m', v', param')
 *   KArAtAdamWInPlace   1 dispatch updating param, m, v in place when safe (adamw_inplace.ts), else 3
 */
import type {WebGPUBackend} from '@tensorflow/tfjs-backend-webgpu';
import {env} from '@tensorflow/tfjs-core';
import type {KernelConfig, KernelFunc, NamedAttrMap, TensorInfo} from '@tensorflow/tfjs-core';

import {AdamWUpdateAttrs, adamWScalars, KArAtAdamW, KArAtAdamWInPlace, KArAtSoftmax, KArAtSoftmaxGrad, KArAtBiasGelu, KArAtBiasGeluGrad, KArAtLayerNorm, KArAtLayerNormGrad} from '../core/fused_layers';
import {adamWInPlace} from './adamw_inplace';
import {AdamWProgram, BiasGeluProgram, ColumnSumProgram, LayerNormGradDxProgram, LayerNormProgram, LayerNormStatsProgram, SoftmaxGradRowProgram, SoftmaxRowProgram} from './layer_ops_webgpu';

type Args<I> = {inputs: I, backend: WebGPUBackend, attrs?: NamedAttrMap};

function eps(attrs?: NamedAttrMap) {
  return [{type: 'float32', data: [Number(attrs?.epsilon ?? 1e-3)]}];
}

export function layerNorm(args: Args<{x: TensorInfo, gamma: TensorInfo, beta: TensorInfo}>): TensorInfo {
  const {x, gamma, beta} = args.inputs;
  const [M, C] = x.shape;
  return args.backend.runWebGPUProgram(new LayerNormProgram(M, C), [x, gamma, beta], 'float32', eps(args.attrs));
}

export function layerNormGrad(args: Args<{dy: TensorInfo, x: TensorInfo, gamma: TensorInfo}>): TensorInfo[] {
  const {dy, x, gamma} = args.inputs;
  const b = args.backend;
  const [M, C] = x.shape;
  const stats = b.runWebGPUProgram(new LayerNormStatsProgram(M), [x], 'float32', eps(args.attrs));
  const dx = b.runWebGPUProgram(new LayerNormGradDxProgram(M, C), [dy, x, gamma, stats], 'float32');
  const dgamma = b.runWebGPUProgram(new ColumnSumProgram('dgamma', C), [dy, x, stats], 'float32');
  const dbeta = b.runWebGPUProgram(new ColumnSumProgram('dbeta', C), [dy], 'float32');
  b.disposeData(stats.dataId);
  return [dx, dgamma, dbeta];
}

export function biasGelu(args: Args<{x: TensorInfo, bias: TensorInfo}>): TensorInfo {
  const {x, bias} = args.inputs;
  return args.backend.runWebGPUProgram(new BiasGeluProgram(false, x.shape), [x, bias], 'float32');
}

export function biasGeluGrad(args: Args<{dy: TensorInfo, x: TensorInfo, bias: TensorInfo}>): TensorInfo[] {
  const {dy, x, bias} = args.inputs;
  const b = args.backend;
  const dx = b.runWebGPUProgram(new BiasGeluProgram(true, x.shape), [dy, x, bias], 'float32');
  const dbias = b.runWebGPUProgram(new ColumnSumProgram('dbias-gelu', x.shape[1]), [dy, x, bias], 'float32');
  return [dx, dbias];
}

type AdamWArgs = Args<{param: TensorInfo, m: TensorInfo, v: TensorInfo, grad: TensorInfo}>;

export function adamW(args: AdamWArgs, inPlace = false): TensorInfo[] {
  const {param, m, v, grad} = args.inputs;
  const a = args.attrs as unknown as AdamWUpdateAttrs;
  const {bc1, bc2, decay} = adamWScalars(a);
  const hyper = [a.beta1, a.beta2, a.epsilon, a.learningRate, decay, bc1, bc2];
  const b = args.backend;
  if (inPlace && adamWInPlace(b, param, m, v, grad, hyper, {batchSize: env().getNumber('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE')})) {
    // The outputs are the updated inputs (one more reference each, as Reshape does).
    for (const t of [param, m, v]) b.incRef(t.dataId);
    return [param, m, v].map((t) => ({dataId: t.dataId, shape: t.shape.slice(), dtype: t.dtype}));
  }
  const u = hyper.map((x) => ({type: 'float32', data: [x]}));
  const shape = param.shape;
  const m1 = b.runWebGPUProgram(new AdamWProgram('m', shape), [m, grad], 'float32', u);
  const v1 = b.runWebGPUProgram(new AdamWProgram('v', shape), [v, grad], 'float32', u);
  const p1 = b.runWebGPUProgram(new AdamWProgram('param', shape), [param, m, v, grad], 'float32', u);
  return [p1, m1, v1];
}

export function softmax(args: Args<{logits: TensorInfo}>): TensorInfo {
  const {logits} = args.inputs;
  const [M, C] = logits.shape;
  return args.backend.runWebGPUProgram(new SoftmaxRowProgram(M, C), [logits], 'float32');
}

export function softmaxGrad(args: Args<{dy: TensorInfo, y: TensorInfo}>): TensorInfo {
  const {dy, y} = args.inputs;
  const [M, C] = y.shape;
  return args.backend.runWebGPUProgram(new SoftmaxGradRowProgram(M, C), [dy, y], 'float32');
}

/** KArAtAdamWInPlace: one in-place dispatch when safe (adamw_inplace.ts), else as KArAtAdamW. */
export function adamWInPlaceKernel(args: AdamWArgs): TensorInfo[] {
  return adamW(args, true);
}

const kf = (f: unknown) => f as KernelFunc;

export const layerOpKernelConfigs: KernelConfig[] = [
  {kernelName: KArAtLayerNorm, backendName: 'webgpu', kernelFunc: kf(layerNorm)},
  {kernelName: KArAtLayerNormGrad, backendName: 'webgpu', kernelFunc: kf(layerNormGrad)},
  {kernelName: KArAtBiasGelu, backendName: 'webgpu', kernelFunc: kf(biasGelu)},
  {kernelName: KArAtBiasGeluGrad, backendName: 'webgpu', kernelFunc: kf(biasGeluGrad)},
  {kernelName: KArAtSoftmax, backendName: 'webgpu', kernelFunc: kf(softmax)},
  {kernelName: KArAtSoftmaxGrad, backendName: 'webgpu', kernelFunc: kf(softmaxGrad)},
  {kernelName: KArAtAdamW, backendName: 'webgpu', kernelFunc: kf((a: AdamWArgs) => adamW(a))},
  {kernelName: KArAtAdamWInPlace, backendName: 'webgpu', kernelFunc: kf(adamWInPlaceKernel)},
];
