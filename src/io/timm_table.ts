/**
 * The timm <-> models.vit naming table: one entry per PyTorch tensor of a timm
 * VisionTransformer state dict, with its shape (from the configuration), the models.vit
 * weight(s) it holds and the layout conversion each way. The importer, the exporter and the
 * expected-shape list are all read from it.
 *
 *   patch_embed.proj.weight [D, C, p, p]    <-> patch_embed/kernel [p, p, C, D]
 *   patch_embed.proj.bias [D]               <-> patch_embed/bias
 *   cls_token [1, 1, D] (pool 'token')      <-> cls_token/token
 *   pos_embed [1, N, D]                     <-> pos_embed/embedding
 *   blocks.{i}.norm1.weight|bias            <-> block{i}_norm1/gamma|beta
 *   blocks.{i}.attn.qkv.weight [3D, D]      <-> block{i}_attn/{query,key,value}/kernel [D, h, d]
 *   blocks.{i}.attn.qkv.bias [3D]           <-> block{i}_attn/{query,key,value}/bias [h, d]
 *   blocks.{i}.attn.proj.weight [D, D]|bias <-> block{i}_attn/attentionOutput/kernel [h, d, D]|bias
 *   blocks.{i}.norm2.weight|bias            <-> block{i}_norm2/gamma|beta
 *   blocks.{i}.mlp.fc1.weight [H, D]|bias   <-> block{i}_mlp_fc1/kernel [D, H]|bias
 *   blocks.{i}.mlp.fc2.weight [D, H]|bias   <-> block{i}_mlp_fc2/kernel [H, D]|bias
 *   norm.weight|bias                        <-> norm/gamma|beta
 *   fc_norm.weight|bias (instead of norm)   <-> fc_norm/gamma|beta (models.vit fcNorm: LayerNorm after pooling)
 *   head.weight [K, D]|bias                 <-> head/kernel [D, K]|bias
 *   blocks.{i}.attn.karat.<param>           <-> block{i}_attn/karat/<param> (blockwise KArAt)
 *   karat.<param>                           <-> the shared operator's <param> (universal KArAt)
 *
 * qkv rows are q, then k, then v, heads contiguous inside each (timm's reshape(B, N, 3, h, d)).
 * KArAt tensors keep this library's layouts (Fourier: coeffs [h, 2, r, N, G], proj [h, N, r]).
 */
import {configTokens, isUniversal, TorchViTConfig} from './torch_vit_config';
import {concatArrays} from './typed_arrays';

/** Permutes the axes of a row-major array: out axis k = in axis perm[k]. */
export function permuteAxes(data: Float32Array, shape: number[], perm: number[]): Float32Array {
  const rank = shape.length;
  const outShape = perm.map(p => shape[p]);
  const inStrides = new Array<number>(rank);
  let s = 1;
  for (let k = rank - 1; k >= 0; k--) {
    inStrides[k] = s;
    s *= shape[k];
  }
  const stridesByOut = perm.map(p => inStrides[p]);
  const out = new Float32Array(data.length);
  const idx = new Array<number>(rank).fill(0);
  let src = 0;
  for (let o = 0; o < out.length; o++) {
    out[o] = data[src];
    for (let k = rank - 1; k >= 0; k--) {
      idx[k]++;
      src += stridesByOut[k];
      if (idx[k] < outShape[k]) break;
      src -= stridesByOut[k] * outShape[k];
      idx[k] = 0;
    }
  }
  return out;
}

const transpose2 = (d: Float32Array, rows: number, cols: number) => permuteAxes(d, [rows, cols], [1, 0]);

/** One tensor of the PyTorch/timm naming: its state-dict name and shape. */
export interface TorchTensorSpec {
  torch: string;
  shape: number[];
}

/** One entry of the table: a timm tensor, the models.vit weights it holds, and the conversions. */
export interface TimmTensor extends TorchTensorSpec {
  /** models.vit weight names (three for qkv: query, key, value; one otherwise). */
  tfjs: string[];
  /** The torch values (PyTorch layout) as one array per tfjs weight (tfjs layout). */
  toTfjs(torch: Float32Array): Float32Array[];
  /** The tfjs weights' values (in `tfjs` order) as the torch tensor. */
  toTorch(parts: Float32Array[]): Float32Array;
}

/** A KArAt operator parameter (name and shape) in this library's layout. */
export interface KArAtParamShape {
  name: string;
  shape: number[];
}

const same = (torch: string, shape: number[], tfjs: string): TimmTensor =>
  ({torch, shape, tfjs: [tfjs], toTfjs: (d) => [d], toTorch: (p) => p[0]});

/** A Linear weight [out, in] <-> a Dense kernel [in, out]. */
const linear = (torch: string, tfjs: string, out: number, inp: number): TimmTensor => ({
  torch, shape: [out, inp], tfjs: [tfjs],
  toTfjs: (d) => [transpose2(d, out, inp)], toTorch: (p) => transpose2(p[0], inp, out),
});

/** qkv.weight [3D, D] (rows q, k, v) <-> three kernels [D, h, d]; qkv.bias [3D] <-> three biases. */
function qkv(b: string, l: string, D: number): TimmTensor[] {
  const names = (w: string) => ['query', 'key', 'value'].map(which => `${l}_attn/${which}/${w}`);
  return [{
    torch: `${b}.attn.qkv.weight`, shape: [3 * D, D], tfjs: names('kernel'),
    toTfjs: (d) => [0, 1, 2].map(j => transpose2(d.slice(j * D * D, (j + 1) * D * D), D, D)),
    toTorch: (p) => concatArrays(Float32Array, p.map(k => transpose2(k, D, D))),
  }, {
    torch: `${b}.attn.qkv.bias`, shape: [3 * D], tfjs: names('bias'),
    toTfjs: (d) => [0, 1, 2].map(j => d.slice(j * D, (j + 1) * D)), toTorch: (p) => concatArrays(Float32Array, p),
  }];
}

/** The entries of encoder block i (with its KArAt operator when blockwise). */
function blockTensors(c: TorchViTConfig, i: number, karat: KArAtParamShape[]): TimmTensor[] {
  const D = c.dim, H = Math.round(c.dim * c.mlpRatio);
  const b = `blocks.${i}`, l = `block${i}`;
  return [
    same(`${b}.norm1.weight`, [D], `${l}_norm1/gamma`),
    same(`${b}.norm1.bias`, [D], `${l}_norm1/beta`),
    ...qkv(b, l, D),
    linear(`${b}.attn.proj.weight`, `${l}_attn/attentionOutput/kernel`, D, D),
    same(`${b}.attn.proj.bias`, [D], `${l}_attn/attentionOutput/bias`),
    ...karat.map(p => same(`${b}.attn.karat.${p.name}`, p.shape, `${l}_attn/karat/${p.name}`)),
    same(`${b}.norm2.weight`, [D], `${l}_norm2/gamma`),
    same(`${b}.norm2.bias`, [D], `${l}_norm2/beta`),
    linear(`${b}.mlp.fc1.weight`, `${l}_mlp_fc1/kernel`, H, D),
    same(`${b}.mlp.fc1.bias`, [H], `${l}_mlp_fc1/bias`),
    linear(`${b}.mlp.fc2.weight`, `${l}_mlp_fc2/kernel`, D, H),
    same(`${b}.mlp.fc2.bias`, [D], `${l}_mlp_fc2/bias`),
  ];
}

/**
 * The table of a configuration, in timm's state-dict order. `karat` lists the KArAt operator
 * parameters the file holds (none: no KArAt tensors); with universal attention they belong to
 * the operator of block `owner` (the block whose layer owns the shared operator).
 */
export function timmTable(c: TorchViTConfig, karat: KArAtParamShape[] = [], owner = 0): TimmTensor[] {
  const D = c.dim, p = c.patchSize;
  const universal = isUniversal(c.attention);
  const norm = c.fcNorm ? 'fc_norm' : 'norm';
  const conv: TimmTensor = {
    torch: 'patch_embed.proj.weight', shape: [D, c.channels, p, p], tfjs: ['patch_embed/kernel'],
    toTfjs: (d) => [permuteAxes(d, [D, c.channels, p, p], [2, 3, 1, 0])],
    toTorch: (k) => permuteAxes(k[0], [p, p, c.channels, D], [3, 2, 0, 1]),
  };
  const out: TimmTensor[] = [];
  if (c.pool === 'token') out.push(same('cls_token', [1, 1, D], 'cls_token/token'));
  out.push(same('pos_embed', [1, configTokens(c), D], 'pos_embed/embedding'), conv, same('patch_embed.proj.bias', [D], 'patch_embed/bias'));
  for (let i = 0; i < c.depth; i++) out.push(...blockTensors(c, i, universal ? [] : karat));
  if (universal) for (const k of karat) out.push(same(`karat.${k.name}`, k.shape, `block${owner}_attn/karat/${k.name}`));
  out.push(same(`${norm}.weight`, [D], `${norm}/gamma`), same(`${norm}.bias`, [D], `${norm}/beta`),
           linear('head.weight', 'head/kernel', c.numClasses, D), same('head.bias', [c.numClasses], 'head/bias'));
  return out;
}

/** Every torch tensor (name and shape) of a config, in timm's state-dict order. */
export function torchViTTensorShapes(c: TorchViTConfig, karatParams: Array<{name: string, shape: number[]}> = []): TorchTensorSpec[] {
  return timmTable(c, karatParams).map(({torch, shape}) => ({torch, shape}));
}

/** Whether a timm tensor may be absent (qkv biases of a qkv_bias=False checkpoint: zero). */
export function isOptionalTorchTensor(torch: string): boolean {
  return /^blocks\.\d+\.attn\.qkv\.bias$/.test(torch);
}
