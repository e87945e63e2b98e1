/**
 * The architecture of a timm ViT safetensors file: read from the `__metadata__` that
 * vitToSafetensors writes, or inferred from the tensor shapes of a timm checkpoint (with the
 * head count, which no shape shows, from the `heads` option or a known `arch` name). Also the
 * option checks shared by the importer.
 */
import {KArAtArgumentError} from '../../core/validate';
import {AttentionActivation, KArAtAttentionConfig, resolveAttention, serializeAttention} from '../layers/attention_config';
import {parseSafetensors, SafetensorsError, SafetensorsFile, SafetensorsReadOptions} from './safetensors';

/** Value of `__metadata__.format` in files written by vitToSafetensors. */
export const TORCH_VIT_FORMAT = 'tfjs-karat-vit';

/** timm architectures whose head count (and patch / image size / width) is known by name. */
export const TIMM_VIT_ARCHS: Readonly<Record<string, {dim: number, heads: number, patchSize: number, imageSize: number}>> = {
  vit_tiny_patch16_224: {dim: 192, heads: 3, patchSize: 16, imageSize: 224},
  vit_small_patch16_224: {dim: 384, heads: 6, patchSize: 16, imageSize: 224},
  vit_base_patch16_224: {dim: 768, heads: 12, patchSize: 16, imageSize: 224},
  deit_tiny_patch16_224: {dim: 192, heads: 3, patchSize: 16, imageSize: 224},
  deit_small_patch16_224: {dim: 384, heads: 6, patchSize: 16, imageSize: 224},
  deit_base_patch16_224: {dim: 768, heads: 12, patchSize: 16, imageSize: 224},
};

type ArchInfo = {dim: number, heads: number, patchSize: number, imageSize: number};

/** The architecture stored in (or inferred from) a file. */
export interface TorchViTConfig {
  dim: number;
  depth: number;
  heads: number;
  mlpRatio: number;
  patchSize: number;
  imageSize: [number, number];
  channels: number;
  numClasses: number;
  pool: 'token' | 'gap';
  /** LayerNorm after pooling ('fc_norm', timm's global_pool='avg') instead of before it ('norm'). Absent: false. */
  fcNorm?: boolean;
  attention: AttentionActivation;
}

export interface VitFromSafetensorsOptions extends SafetensorsReadOptions {
  /** Number of heads (needed for a file without our metadata, unless `arch` is given). */
  heads?: number;
  /** A timm architecture name (a key of TIMM_VIT_ARCHS, e.g. vit_tiny_patch16_224, deit_tiny_patch16_224; a '.tag' suffix is allowed). */
  arch?: string;
  /**
   * Image size [H, W] (or a side). Needed for a non-square patch grid in a file without our
   * metadata; otherwise checked against the file.
   */
  imageSize?: number | [number, number];
  /**
   * Attention of the built model. Default: the file's (softmax for a timm checkpoint). A KArAt
   * config on a softmax file builds KArAt attention whose operators are freshly initialised
   * (listed in the report's `initialised`); on a KArAt file it must match the file's.
   */
  attention?: AttentionActivation;
  /** Classifier activation: 'linear' (default: logits, as timm's head) or 'softmax'. */
  classifierActivation?: 'linear' | 'softmax';
  /** Model name (default 'vit'). */
  name?: string;
}

export const fail = (msg: string): never => {
  throw new KArAtArgumentError(msg);
};

export const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

function positiveInt(what: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) fail(`${what} must be an integer >= 1, got ${JSON.stringify(v)}`);
  return v as number;
}

function imageSizeArg(what: string, v: unknown): [number, number] {
  const hw = typeof v === 'number' ? [v, v] : Array.isArray(v) && v.length === 2 ? v : null;
  if (hw == null) fail(`${what} must be a side or [height, width], got ${JSON.stringify(v)}`);
  return [positiveInt(what, hw![0]), positiveInt(what, hw![1])];
}

function archInfo(arch: string): ArchInfo {
  const base = typeof arch === 'string' ? arch.split('.')[0] : '';
  const a = TIMM_VIT_ARCHS[base];
  if (a == null) {
    fail(`argument 'arch' must be one of ${Object.keys(TIMM_VIT_ARCHS).join(', ')} (optionally with a '.tag'), got ${JSON.stringify(arch)}`);
  }
  return a;
}

/** Whether the attention is KArAt with one operator shared by all blocks. */
export function isUniversal(a: AttentionActivation): boolean {
  const r = resolveAttention(a, 'attention');
  return r.kind === 'karat' && r.mode === 'universal';
}

/** Number of tokens N of a configuration (patches, plus the class token with pool 'token'). */
export function configTokens(c: TorchViTConfig): number {
  return (c.imageSize[0] / c.patchSize) * (c.imageSize[1] / c.patchSize) + (c.pool === 'token' ? 1 : 0);
}

/** A configuration in words, for error messages. */
export function describeConfig(c: TorchViTConfig): string {
  const k = c.attention as KArAtAttentionConfig;
  const att = typeof c.attention === 'string' ? c.attention : `${k.type ?? k.basis} ${k.mode ?? 'blockwise'}`;
  return `dim ${c.dim}, depth ${c.depth}, heads ${c.heads}, patch ${c.patchSize}, image ${c.imageSize[0]}x${c.imageSize[1]}, ` +
      `${c.channels} channels, ${c.numClasses} classes, pool ${c.pool}, ${att} attention`;
}

/** Parses the config JSON of our metadata. */
function configFromMetadata(text: string): Partial<TorchViTConfig> {
  let c: unknown;
  try {
    c = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(`safetensors: __metadata__.config is not valid JSON (${(e as Error).message})`);
  }
  if (c == null || typeof c !== 'object' || Array.isArray(c)) {
    throw new SafetensorsError(`safetensors: __metadata__.config must be a JSON object, got ${text.slice(0, 80)}`);
  }
  const r = c as Record<string, unknown>;
  const known = ['dim', 'depth', 'heads', 'mlpRatio', 'patchSize', 'imageSize', 'channels', 'numClasses', 'pool', 'attention'];
  for (const k of Object.keys(r)) {
    if (!known.includes(k) && k !== 'fcNorm') fail(`__metadata__.config: unknown field '${k}' (expected ${known.join(', ')})`);
  }
  for (const k of known) if (r[k] === undefined) fail(`__metadata__.config: field '${k}' is missing`);
  for (const k of ['dim', 'depth', 'heads', 'patchSize', 'channels', 'numClasses']) positiveInt(`__metadata__.config.${k}`, r[k]);
  if (typeof r.mlpRatio !== 'number' || !(r.mlpRatio > 0)) fail(`__metadata__.config.mlpRatio must be > 0, got ${JSON.stringify(r.mlpRatio)}`);
  if (r.pool !== 'token' && r.pool !== 'gap') fail(`__metadata__.config.pool must be 'token' or 'gap', got ${JSON.stringify(r.pool)}`);
  if (r.fcNorm !== undefined && typeof r.fcNorm !== 'boolean') fail(`__metadata__.config.fcNorm must be a boolean, got ${JSON.stringify(r.fcNorm)}`);
  resolveAttention(r.attention as AttentionActivation, '__metadata__.config.attention');
  return {...r, imageSize: imageSizeArg('__metadata__.config.imageSize', r.imageSize)} as Partial<TorchViTConfig>;
}

function shapeOf(f: SafetensorsFile, name: string): number[] | null {
  return f.has(name) ? f.entry(name).shape : null;
}

function need(f: SafetensorsFile, name: string): number[] {
  const s = shapeOf(f, name);
  if (s == null) fail(`the file has no tensor '${name}' (not a timm VisionTransformer state dict?)`);
  return s!;
}

/** What the tensor shapes of a file show (everything but the heads, image size and attention). */
interface FileShapes {
  dim: number;
  channels: number;
  patchSize: number;
  depth: number;
  hidden: number;
  numClasses: number;
  fcNorm: boolean;
  pool: 'token' | 'gap';
  pos: number[];
  patches: number;
}

/** Patch embedding, blocks, MLP and head shapes; refuses prefix tokens and norms models.vit lacks. */
function shapesOfFile(f: SafetensorsFile): Omit<FileShapes, 'pos' | 'patches'> {
  const pe = need(f, 'patch_embed.proj.weight');
  if (pe.length !== 4 || pe[2] !== pe[3]) {
    fail(`tensor 'patch_embed.proj.weight' must be a square-kernel Conv2d weight [D, C, p, p], got ${fmt(pe)}`);
  }
  const [dim, channels, patchSize] = pe;
  let depth = 0;
  while (f.has(`blocks.${depth}.attn.qkv.weight`)) depth++;
  if (depth === 0) fail(`the file has no tensor 'blocks.0.attn.qkv.weight' (no transformer blocks)`);
  const fc1 = need(f, 'blocks.0.mlp.fc1.weight');
  if (fc1.length !== 2 || fc1[1] !== dim) fail(`tensor 'blocks.0.mlp.fc1.weight' must be [hidden, ${dim}], got ${fmt(fc1)}`);
  const head = shapeOf(f, 'head.weight');
  if (head == null) {
    fail(`the file has no classifier 'head.weight' (a timm model saved with num_classes=0); models.vit needs a head`);
  }
  if (head!.length !== 2 || head![1] !== dim) fail(`tensor 'head.weight' must be [classes, ${dim}], got ${fmt(head!)}`);
  if (f.has('reg_token')) {
    fail(`tensor 'reg_token': register tokens (timm reg_tokens > 0) are not supported; models.vit has only the ` +
         `class token as prefix token`);
  }
  if (f.has('dist_token')) {
    fail(`tensor 'dist_token': a distillation token (timm's distilled DeiT) is not supported; models.vit has one head ` +
         `on the class token`);
  }
  const fcNorm = f.has('fc_norm.weight');
  if (fcNorm && f.has('norm.weight')) {
    fail(`tensors 'norm.weight' and 'fc_norm.weight': a LayerNorm both before and after pooling is not supported ` +
         `(models.vit has one of them: 'norm', or 'fc_norm' with fcNorm)`);
  }
  if (fcNorm && f.has('cls_token')) {
    fail(`tensors 'cls_token' and 'fc_norm.weight': timm's global_pool='avg' with a class token (averaging the patch ` +
         `tokens only) is not supported; models.vit pools with fc_norm only without a class token (class_token=False)`);
  }
  const pool: 'token' | 'gap' = f.has('cls_token') ? 'token' : 'gap';
  return {dim, channels, patchSize, depth, hidden: fc1[0], numClasses: head![0], fcNorm, pool};
}

/** The position embedding's shape and its number of patch positions. */
function positionsOfFile(f: SafetensorsFile, s: Omit<FileShapes, 'pos' | 'patches'>, guessing: boolean): FileShapes {
  const pos = need(f, 'pos_embed');
  if (pos.length !== 3 || pos[0] !== 1 || pos[2] !== s.dim) fail(`tensor 'pos_embed' must be [1, N, ${s.dim}], got ${fmt(pos)}`);
  const square = (n: number) => Number.isInteger(Math.sqrt(n));
  if (s.pool === 'token' && guessing && square(pos[1]) && !square(pos[1] - 1)) {
    fail(`tensor 'pos_embed' ${fmt(pos)} has no position for the class token (timm's no_embed_class=True): not ` +
         `supported; models.vit adds position embeddings to the class token too`);
  }
  const patches = pos[1] - (s.pool === 'token' ? 1 : 0);
  if (patches < 1) fail(`tensor 'pos_embed' ${fmt(pos)} leaves no patch positions`);
  return {...s, pos, patches};
}

/** Image size: option > metadata > arch > square grid; checked against the patch positions. */
function imageSizeOf(s: FileShapes, options: VitFromSafetensorsOptions, md: Partial<TorchViTConfig> | null,
                     arch: ArchInfo | null): [number, number] {
  const {patchSize, patches} = s;
  let imageSize: [number, number];
  if (options.imageSize != null) {
    imageSize = imageSizeArg(`argument 'imageSize'`, options.imageSize);
  } else if (md != null) {
    imageSize = md.imageSize!;
  } else if (arch != null && arch.patchSize === patchSize && (arch.imageSize / patchSize) ** 2 === patches) {
    imageSize = [arch.imageSize, arch.imageSize];
  } else {
    const g = Math.round(Math.sqrt(patches));
    if (g * g !== patches) {
      fail(`tensor 'pos_embed' has ${patches} patch positions, not a square grid: give the image size ` +
           `(imageSize [H, W], --image-size HxW)`);
    }
    imageSize = [g * patchSize, g * patchSize];
  }
  if (imageSize[0] % patchSize !== 0 || imageSize[1] % patchSize !== 0 ||
      (imageSize[0] / patchSize) * (imageSize[1] / patchSize) !== patches) {
    fail(`image size ${imageSize[0]}x${imageSize[1]} with patch ${patchSize} gives ` +
         `${(imageSize[0] / patchSize) * (imageSize[1] / patchSize)} patches, but 'pos_embed' ${fmt(s.pos)} has ${patches}` +
         `${s.pool === 'token' ? ' (plus the class token)' : ''}`);
  }
  return imageSize;
}

/** Heads: option > metadata > arch (a timm checkpoint does not store them). */
function headsOf(s: FileShapes, options: VitFromSafetensorsOptions, md: Partial<TorchViTConfig> | null, arch: ArchInfo | null): number {
  let heads: number;
  if (options.heads != null) {
    heads = positiveInt(`argument 'heads'`, options.heads);
  } else if (md != null) {
    heads = md.heads!;
  } else if (arch != null) {
    heads = arch.heads;
  } else {
    heads = fail(`the number of attention heads is not stored in a timm checkpoint: give 'heads' (--heads N) or ` +
                 `'arch' (--arch ${Object.keys(TIMM_VIT_ARCHS).join('|')})`);
  }
  if (arch != null) {
    if (arch.dim !== s.dim || arch.patchSize !== s.patchSize) {
      fail(`arch '${options.arch}' has width ${arch.dim} and patch ${arch.patchSize}, the file has width ${s.dim} and patch ${s.patchSize}`);
    }
    if (options.heads != null && options.heads !== arch.heads) fail(`argument 'heads' (${options.heads}) contradicts arch '${options.arch}' (${arch.heads} heads)`);
  }
  if (s.dim % heads !== 0) fail(`${heads} heads do not divide the width ${s.dim}`);
  return heads;
}

/** Attention: the file's, or the option's (which must match a KArAt file's). */
function attentionOf(options: VitFromSafetensorsOptions, md: Partial<TorchViTConfig> | null): AttentionActivation {
  const mdAttention = md?.attention ?? 'softmax';
  if (options.attention == null) return mdAttention;
  const want = resolveAttention(options.attention, `argument 'attention'`);
  const have = resolveAttention(mdAttention, '__metadata__.config.attention');
  if (have.kind === 'karat' && JSON.stringify(serializeAttention(want)) !== JSON.stringify(serializeAttention(have))) {
    fail(`argument 'attention' ${JSON.stringify(options.attention)} differs from the file's KArAt attention ` +
         `${JSON.stringify(mdAttention)} (its operator tensors would not fit)`);
  }
  return options.attention;
}

/** Checks our metadata against the shapes and takes its exact MLP ratio. */
function checkMetadata(config: TorchViTConfig, md: Partial<TorchViTConfig>, s: FileShapes): void {
  if ((md.fcNorm ?? false) !== s.fcNorm) fail(`__metadata__.config.fcNorm (${md.fcNorm ?? false}) contradicts the tensors (${s.fcNorm ? '' : 'no '}'fc_norm.weight')`);
  for (const k of ['dim', 'depth', 'heads', 'patchSize', 'channels', 'numClasses', 'pool'] as const) {
    if (md[k] !== config[k]) fail(`__metadata__.config.${k} (${JSON.stringify(md[k])}) contradicts the ${k === 'heads' ? "argument 'heads'" : 'tensor shapes'} (${JSON.stringify(config[k])})`);
  }
  if (Math.round(md.mlpRatio! * s.dim) !== s.hidden) fail(`__metadata__.config.mlpRatio (${md.mlpRatio}) contradicts 'blocks.0.mlp.fc1.weight' ${fmt([s.hidden, s.dim])}`);
  config.mlpRatio = md.mlpRatio!;
}

/** Describes the file's architecture (from our metadata or from its shapes). */
export function vitConfigFromSafetensors(
    bytes: Uint8Array | SafetensorsFile, opts: VitFromSafetensorsOptions = {}): {config: TorchViTConfig, source: 'metadata' | 'shapes'} {
  const options = opts ?? {};
  checkOptions(options);
  const f = bytes instanceof Uint8Array ? parseSafetensors(bytes, options) : bytes;
  const md = f.metadata.format === TORCH_VIT_FORMAT ?
      configFromMetadata(f.metadata.config ?? fail(`__metadata__ has format '${TORCH_VIT_FORMAT}' but no 'config'`)) : null;
  const arch = options.arch != null ? archInfo(options.arch) : null;
  const s = positionsOfFile(f, shapesOfFile(f), options.imageSize == null && md == null);
  const imageSize = imageSizeOf(s, options, md, arch);
  const heads = headsOf(s, options, md, arch);
  const config: TorchViTConfig = {
    dim: s.dim, depth: s.depth, heads, mlpRatio: s.hidden / s.dim, patchSize: s.patchSize, imageSize, channels: s.channels,
    numClasses: s.numClasses, pool: s.pool, attention: attentionOf(options, md),
  };
  if (s.fcNorm) config.fcNorm = true;
  if (md != null) checkMetadata(config, md, s);
  return {config, source: md != null ? 'metadata' : 'shapes'};
}

/** Refuses a non-object options argument or an unknown option. */
export function checkOptions(o: VitFromSafetensorsOptions): void {
  if (o == null || typeof o !== 'object') fail(`vitFromSafetensors: options must be an object`);
  const known = ['heads', 'arch', 'imageSize', 'attention', 'classifierActivation', 'name', 'maxHeaderBytes'];
  for (const k of Object.keys(o)) {
    if (!known.includes(k) && (o as Record<string, unknown>)[k] !== undefined) {
      fail(`vitFromSafetensors: unknown option '${k}' (expected ${known.join(', ')})`);
    }
  }
}
