/**
 * `karat convert` (PyTorch / timm ViT safetensors -> tfjs model) and `karat export` (a
 * models.vit model -> timm-named safetensors).
 *
 *   karat convert --from vit.safetensors --arch vit_tiny_patch16_224 --out models/vit-tiny
 *   karat export --model runs/<run>/model --to vit.safetensors
 *
 * Files are read only after a size check against --max-bytes, and only regular files; the
 * weight files named by a model.json must lie in the model's own directory.
 */
import {existsSync, readFileSync, realpathSync, statSync} from 'node:fs';
import {basename, dirname, isAbsolute, join, normalize, resolve, sep} from 'node:path';

import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

import {vitFromSafetensorsWithReport, vitToSafetensors} from '../io/torch_vit';
import {TIMM_VIT_ARCHS, VitFromSafetensorsOptions} from '../io/torch_vit_config';
import {activateBackend} from '../training/backend';
import {exportModel, loadCheckpointModel, readWeights, writeCheckpoint, writeFileAtomic} from '../training/checkpoint';
import {countParams, ModelSpec} from '../training/model';
import {commandFlags, UsageError} from './flags';

/** Default cap on files read by convert/export: 4 GiB (ViT-Huge in float32 is ~2.5 GB). */
export const DEFAULT_MAX_BYTES = 4 * 2 ** 30;

export const CONVERT_HELP = `usage: karat convert --from FILE.safetensors --out DIR [options]

Converts a PyTorch ViT (timm's VisionTransformer names: patch_embed.proj, cls_token, pos_embed,
blocks.{i}.norm1/attn.qkv/attn.proj/norm2/mlp.fc1/mlp.fc2, norm or fc_norm, head; F32, F16 or BF16) into
the equivalent models.vit, written as DIR/model.json + DIR/weights.bin (tf.loadLayersModel,
karat finetune --model) and DIR/model.ckpt (karat eval --checkpoint). The model outputs logits.

  --from FILE           the .safetensors file (a timm checkpoint, or one written by karat export)
  --out DIR             output directory (created; a folder already holding a model needs --overwrite)
  --overwrite           replace the model in an existing --out folder
  --heads N             attention heads (a timm checkpoint does not store them)
  --arch NAME           ${Object.keys(TIMM_VIT_ARCHS).join(' | ')} (gives the heads)
  --image-size S|HxW    image size, for a non-square patch grid (default: from the file)
  --mean A,B,C --std A,B,C   input normalisation stored in model.ckpt for karat eval
                        (timm's ImageNet models: 0.485,0.456,0.406 and 0.229,0.224,0.225)
  --max-bytes N         largest file read (default ${DEFAULT_MAX_BYTES})`;

export const EXPORT_HELP = `usage: karat export --model DIR|DIR/model.json|FILE.ckpt --to FILE.safetensors [--max-bytes N]

Writes a models.vit model (softmax or KArAt) with timm's VisionTransformer names in PyTorch
layouts (F32), the KArAt operators as blocks.{i}.attn.karat.<param> (blockwise) or
karat.<param> (universal), and the architecture in __metadata__ (format 'tfjs-karat-vit').`;

function maxBytesFlag(cmd: string, v: unknown): number {
  if (v == null) return DEFAULT_MAX_BYTES;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`karat ${cmd}: --max-bytes must be an integer >= 1, got '${String(v)}'`);
  return n;
}

/** Reads a regular file after checking its size against `maxBytes` (nothing is allocated before). */
export function readFileChecked(path: string, maxBytes: number, what: string): Uint8Array {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new UsageError(`${what} '${path}' does not exist`);
  }
  if (!st.isFile()) throw new UsageError(`${what} '${path}' is not a regular file`);
  if (st.size > maxBytes) throw new UsageError(`${what} '${path}' is ${st.size} bytes, more than --max-bytes ${maxBytes}`);
  const b = readFileSync(path);
  if (b.length !== st.size) throw new UsageError(`${what} '${path}' changed size while being read`);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

function numList(flag: string, v: unknown): number[] {
  const xs = String(v).split(',').map(Number);
  if (xs.length !== 3 || xs.some(x => !Number.isFinite(x))) throw new UsageError(`karat convert: --${flag} must be 3 comma-separated numbers, got '${String(v)}'`);
  if (flag === 'std' && xs.some(x => x <= 0)) throw new UsageError(`karat convert: --std values must be > 0, got '${String(v)}'`);
  return xs;
}

function imageSizeFlag(v: unknown): number | [number, number] {
  const m = /^(\d+)(?:x(\d+))?$/.exec(String(v));
  if (m == null) throw new UsageError(`karat convert: --image-size must be S or HxW (e.g. 224 or 24x32), got '${String(v)}'`);
  return m[2] == null ? Number(m[1]) : [Number(m[1]), Number(m[2])];
}

/**
 * Checks an output folder before anything is read or built: it must be a folder (or not exist,
 * with no file in the way), and a folder already holding a model is replaced only with --overwrite.
 */
export function checkOutFolder(out: string, overwrite: boolean, what: string): void {
  let st;
  try {
    st = statSync(out);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR') throw new UsageError(`${what} '${out}': a part of the path is a file, not a folder`);
    if (code !== 'ENOENT') throw new UsageError(`${what} '${out}': ${(e as Error).message}`);
    return;
  }
  if (!st.isDirectory()) throw new UsageError(`${what} '${out}' exists and is not a folder`);
  const held = ['model.json', 'weights.bin', 'model.ckpt'].filter((f) => existsSync(join(out, f)));
  if (held.length && !overwrite) {
    throw new UsageError(`${what} '${out}' already holds a model (${held.join(', ')}); give --overwrite to replace it`);
  }
}

/** Checks an output file path before anything is written: not a folder, no file in the way. */
export function checkOutFile(to: string, what: string): void {
  try {
    if (statSync(to).isDirectory()) throw new UsageError(`${what} '${to}' is a folder; give a file name`);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR') throw new UsageError(`${what} '${to}': a part of the path is a file, not a folder`);
    if (code !== 'ENOENT') throw new UsageError(`${what} '${to}': ${(e as Error).message}`);
  }
}

export async function cmdConvert(argv: string[]): Promise<number> {
  const flags = commandFlags('convert', argv, ['help', 'overwrite'],
                            ['from', 'out', 'heads', 'arch', 'imageSize', 'mean', 'std', 'maxBytes', 'overwrite']);
  if (flags.help) {
    console.log(CONVERT_HELP);
    return 0;
  }
  if (flags.from == null) throw new UsageError('karat convert: --from FILE.safetensors is required');
  if (flags.out == null) throw new UsageError('karat convert: --out DIR is required');
  const opts: VitFromSafetensorsOptions = {classifierActivation: 'linear'};
  if (flags.heads != null) {
    const h = Number(flags.heads);
    if (!Number.isInteger(h) || h < 1) throw new UsageError(`karat convert: --heads must be an integer >= 1, got '${String(flags.heads)}'`);
    opts.heads = h;
  }
  if (flags.arch != null) opts.arch = String(flags.arch);
  if (flags.imageSize != null) opts.imageSize = imageSizeFlag(flags.imageSize);
  if ((flags.mean == null) !== (flags.std == null)) throw new UsageError('karat convert: give both --mean and --std, or neither');
  const norm = flags.mean != null ? {mean: numList('mean', flags.mean), std: numList('std', flags.std)} : null;
  const from = String(flags.from), out = String(flags.out);
  checkOutFolder(out, flags.overwrite === true, 'karat convert: --out');
  const bytes = readFileChecked(from, maxBytesFlag('convert', flags.maxBytes), 'karat convert: --from');
  await activateBackend('cpu');  // a weight copy: the cpu backend is exact and always there
  const r = vitFromSafetensorsWithReport(bytes, opts);
  const c = r.config;
  try {
    console.log(`read ${from}: ${r.configSource === 'metadata' ? 'architecture from its metadata' : 'architecture inferred from the tensor shapes'}`);
    console.log(`model: ViT dim ${c.dim}, depth ${c.depth}, heads ${c.heads}, mlp ratio ${c.mlpRatio}, patch ${c.patchSize}, ` +
        `image ${c.imageSize[0]}x${c.imageSize[1]}x${c.channels}, ${c.numClasses} classes, pool ${c.pool}, ` +
        `${typeof c.attention === 'string' ? c.attention : `KArAt ${JSON.stringify(c.attention)}`} attention; ` +
        `${countParams(r.model).toLocaleString('en-US')} parameters`);
    console.log(`weights: ${r.loaded.length} loaded` +
        `${r.zeroFilled.length ? `, ${r.zeroFilled.length} qkv biases set to zero (the checkpoint has none)` : ''}` +
        `${r.initialised.length ? `, ${r.initialised.length} initialised` : ''}`);
    await exportModel(r.model, out);
    const spec: ModelSpec = {
      dim: c.dim, depth: c.depth, heads: c.heads, mlpRatio: c.mlpRatio,
      imageSize: c.imageSize[0] === c.imageSize[1] ? c.imageSize[0] : c.imageSize, patchSize: c.patchSize,
      channels: c.channels, numClasses: c.numClasses, pool: c.pool, attention: c.attention, classifierActivation: 'linear',
    };
    const {entries, data} = await readWeights(r.model);
    writeCheckpoint(join(out, 'model.ckpt'), {
      header: {
        format: 1, createdAt: new Date().toISOString(), modelSpec: spec, weights: entries, optimizer: null,
        trainer: {
          epoch: 0, step: 0, seed: 0, backend: tf.getBackend(), history: [], convertedFrom: basename(from),
          config: c.imageSize[0] === c.imageSize[1] ? {imageSize: c.imageSize[0]} : {},
          ...(norm != null ? {normalisation: norm} : {}),
        },
        weightFloats: 0, optimizerFloats: 0,
      },
      weights: data, optimizer: null,
    });
    console.log(`files: ${join(out, 'model.json')}, ${join(out, 'weights.bin')} (tfjs format), ${join(out, 'model.ckpt')} (karat eval)`);
  } finally {
    r.model.dispose();
  }
  return 0;
}

/**
 * Loads a tfjs layers model from DIR or DIR/model.json, reading only files inside DIR and only
 * after checking their sizes (model.json against maxBytes, weight files against the bytes
 * the manifest declares).
 */
export async function loadModelConfined(p: string, maxBytes: number, what: string): Promise<tfl.LayersModel> {
  let jsonPath = p;
  try {
    if (statSync(p).isDirectory()) jsonPath = join(p, 'model.json');
  } catch {
    throw new UsageError(`${what} '${p}' does not exist`);
  }
  const dir = resolve(dirname(jsonPath));
  const realDir = realpathSync(dir);
  let modelJSON: tf.io.ModelJSON;
  try {
    modelJSON = JSON.parse(Buffer.from(readFileChecked(jsonPath, maxBytes, what)).toString('utf8')) as tf.io.ModelJSON;
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`${what} '${jsonPath}' is not valid JSON (${(e as Error).message})`);
  }
  if (modelJSON == null || typeof modelJSON !== 'object' || modelJSON.modelTopology == null || !Array.isArray(modelJSON.weightsManifest)) {
    throw new UsageError(`${what} '${jsonPath}' is not a tfjs layers model.json (needs modelTopology and weightsManifest)`);
  }
  const BYTES: Record<string, number> = {float32: 4, int32: 4, bool: 1};
  let declared = 0;
  const files: string[] = [];
  for (const group of modelJSON.weightsManifest) {
    if (group == null || !Array.isArray(group.paths) || !Array.isArray(group.weights)) {
      throw new UsageError(`${what} '${jsonPath}': weightsManifest entries need 'paths' and 'weights'`);
    }
    for (const w of group.weights) {
      const b = BYTES[w.dtype];
      if (b == null || w.quantization != null) throw new UsageError(`${what} '${jsonPath}': weight '${w.name}' has dtype '${w.dtype}'${w.quantization ? ' (quantized)' : ''}; only float32, int32, bool are read`);
      if (!Array.isArray(w.shape) || !w.shape.every(d => Number.isSafeInteger(d) && d >= 0)) throw new UsageError(`${what} '${jsonPath}': weight '${w.name}' has an invalid shape ${JSON.stringify(w.shape)}`);
      declared += b * w.shape.reduce((a, d) => a * d, 1);
    }
    for (const f of group.paths) {
      const full = resolve(dir, String(f));
      if (typeof f !== 'string' || isAbsolute(f) || normalize(f).split(/[\\/]/).includes('..') || !full.startsWith(dir + sep)) {
        throw new UsageError(`${what} '${jsonPath}': weight file ${JSON.stringify(f)} is outside the model directory`);
      }
      let real = '';
      try {
        real = realpathSync(full);
      } catch {
        throw new UsageError(`${what} '${jsonPath}': weight file '${full}' is missing`);
      }
      if (!real.startsWith(realDir + sep)) {
        throw new UsageError(`${what} '${jsonPath}': weight file ${JSON.stringify(f)} resolves outside the model directory (${real})`);
      }
      files.push(real);
    }
  }
  if (declared > maxBytes) throw new UsageError(`${what} '${jsonPath}' declares ${declared} weight bytes, more than --max-bytes ${maxBytes}`);
  let onDisk = 0;
  for (const f of files) {
    try {
      const st = statSync(f);
      if (!st.isFile()) throw new Error();
      onDisk += st.size;
    } catch {
      throw new UsageError(`${what} '${jsonPath}': weight file '${f}' is missing or not a regular file`);
    }
  }
  if (onDisk !== declared) throw new UsageError(`${what} '${jsonPath}': weight files hold ${onDisk} bytes, the manifest declares ${declared}`);
  const buffers = files.map(f => readFileChecked(f, declared, what));
  const all = new Uint8Array(declared);
  let o = 0;
  for (const b of buffers) {
    all.set(b, o);
    o += b.length;
  }
  return tfl.loadLayersModel(tf.io.fromMemory({
    modelTopology: modelJSON.modelTopology,
    weightSpecs: modelJSON.weightsManifest.flatMap(g => g.weights),
    weightData: all.buffer,
  }));
}

export async function cmdExport(argv: string[]): Promise<number> {
  const flags = commandFlags('export', argv, ['help'], ['model', 'to', 'maxBytes']);
  if (flags.help) {
    console.log(EXPORT_HELP);
    return 0;
  }
  if (flags.model == null) throw new UsageError('karat export: --model DIR|DIR/model.json|FILE.ckpt is required');
  if (flags.to == null) throw new UsageError('karat export: --to FILE.safetensors is required');
  const maxBytes = maxBytesFlag('export', flags.maxBytes);
  await activateBackend('cpu');
  const src = String(flags.model), to = String(flags.to);
  checkOutFile(to, 'karat export: --to');
  let model: tfl.LayersModel;
  if (src.endsWith('.ckpt')) {
    const size = (() => {
      try {
        return statSync(src).size;
      } catch {
        throw new UsageError(`karat export: --model '${src}' does not exist`);
      }
    })();
    if (size > maxBytes) throw new UsageError(`karat export: --model '${src}' is ${size} bytes, more than --max-bytes ${maxBytes}`);
    model = (await loadCheckpointModel(src)).model;
  } else {
    model = await loadModelConfined(src, maxBytes, 'karat export: --model');
  }
  try {
    const bytes = vitToSafetensors(model);
    writeFileAtomic(to, [bytes]);
    console.log(`wrote ${to}: ${bytes.length.toLocaleString('en-US')} bytes, ${countParams(model).toLocaleString('en-US')} parameters (timm names, F32)`);
  } finally {
    model.dispose();
  }
  return 0;
}
