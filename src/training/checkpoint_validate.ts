/**
 * Checks of a checkpoint's header, run before any model is built or any weight is
 * allocated: value types and ranges of every field the trainer and the CLI read, the stored
 * weight list, the per-tensor CRC-32 checksums, and the model specification against the
 * stored weight shapes (so that a header claiming depth 100000 or dim 8192 over a small
 * weight payload is refused instead of building a huge model).
 *
 * Each check returns the list of problems found (empty = valid); checkpoint.ts turns them
 * into a CheckpointError naming the file.
 */
import {resolveViTConfig, ViTArgs, vitTokens} from '../models/vit';
import {resolveAttention} from '../layers/attention_config';

/** Largest epoch number a checkpoint may record. */
export const MAX_EPOCHS = 1_000_000;

function isObject(x: unknown): x is Record<string, unknown> {
  return x != null && typeof x === 'object' && !Array.isArray(x);
}
const isInt = (v: unknown, lo: number, hi: number): v is number =>
  typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi;
const show = (v: unknown) => JSON.stringify(v)?.slice(0, 80) ?? String(v);

/** Elements of a shape of non-negative integers, or null when it is not one. */
export function shapeElements(shape: unknown): number | null {
  if (!Array.isArray(shape) || shape.some(d => !isInt(d, 0, Number.MAX_SAFE_INTEGER))) return null;
  const n = (shape as number[]).reduce((a, d) => a * d, 1);
  return Number.isSafeInteger(n) ? n : null;
}

/** Problems of a weight list [{name, shape}] (also the optimiser's parameter list). */
function weightListProblems(list: unknown, field: string): {problems: string[], floats: number} {
  if (!Array.isArray(list)) return {problems: [`'${field}' must be an array of {name, shape}, got ${show(list)}`], floats: 0};
  let floats = 0;
  for (let i = 0; i < list.length; i++) {
    const w = list[i];
    const n = isObject(w) ? shapeElements(w.shape) : null;
    if (!isObject(w) || typeof w.name !== 'string' || n == null) {
      return {problems: [`'${field}[${i}]' must be {name: string, shape: non-negative integers}, got ${show(w)}`], floats: 0};
    }
    floats += n;
  }
  return {problems: [], floats};
}

/**
 * Problems of a parsed header (format 1 or 2). Does not look at the model specification
 * beyond its type (see specProblems).
 */
export function headerProblems(h: unknown): string[] {
  if (!isObject(h)) return [`the header must be a JSON object, got ${show(h)}`];
  const p: string[] = [];
  if (h.format !== 1 && h.format !== 2) p.push(`'format' must be 1 or 2, got ${show(h.format)}`);
  if (typeof h.createdAt !== 'string') p.push(`'createdAt' must be a string, got ${show(h.createdAt)}`);
  if (!isObject(h.modelSpec)) p.push(`'modelSpec' must be an object, got ${show(h.modelSpec)}`);
  const w = weightListProblems(h.weights, 'weights');
  p.push(...w.problems);
  if (!isInt(h.weightFloats, 0, Number.MAX_SAFE_INTEGER)) {
    p.push(`'weightFloats' must be a non-negative integer, got ${show(h.weightFloats)}`);
  } else if (!w.problems.length && w.floats !== h.weightFloats) {
    p.push(`the weight list holds ${w.floats} values, 'weightFloats' says ${h.weightFloats}`);
  }
  if (!isInt(h.optimizerFloats, 0, Number.MAX_SAFE_INTEGER)) {
    p.push(`'optimizerFloats' must be a non-negative integer, got ${show(h.optimizerFloats)}`);
  }
  if (h.optimizer === null) {
    if (h.optimizerFloats !== 0) p.push(`'optimizerFloats' must be 0 without optimizer state, got ${show(h.optimizerFloats)}`);
  } else if (!isObject(h.optimizer)) {
    p.push(`'optimizer' must be null or an object, got ${show(h.optimizer)}`);
  } else {
    const o = h.optimizer;
    if (!isInt(o.step, 0, Number.MAX_SAFE_INTEGER)) p.push(`'optimizer.step' must be a non-negative integer, got ${show(o.step)}`);
    if (!isObject(o.config)) p.push(`'optimizer.config' must be an object, got ${show(o.config)}`);
    const op = weightListProblems(o.params, 'optimizer.params');
    p.push(...op.problems);
    if (!op.problems.length && h.optimizerFloats !== 2 * op.floats) {
      p.push(`the optimizer's parameters need ${2 * op.floats} values (m and v), 'optimizerFloats' says ${show(h.optimizerFloats)}`);
    }
  }
  if (!isObject(h.trainer)) {
    p.push(`'trainer' must be an object, got ${show(h.trainer)}`);
  } else {
    p.push(...trainerProblems(h.trainer));
  }
  if (h.format === 2) {
    const c = h.checksums;
    const n = Array.isArray(h.weights) ? h.weights.length : 0;
    if (!isObject(c) || c.algorithm !== 'crc32' || !Array.isArray(c.weights) || c.weights.length !== n ||
        c.weights.some(v => !isInt(v, 0, 0xffffffff)) || !(c.optimizer === null || isInt(c.optimizer, 0, 0xffffffff))) {
      p.push(`'checksums' must be {algorithm: 'crc32', weights: ${n} uint32 values, optimizer: uint32 or null}, got ${show(c)}`);
    } else if ((c.optimizer === null) !== (h.optimizer === null)) {
      p.push(`'checksums.optimizer' must be given exactly when there is optimizer state`);
    }
  }
  return p;
}

function trainerProblems(t: Record<string, unknown>): string[] {
  const p: string[] = [];
  const cfg = t.config;
  if (cfg !== undefined && !isObject(cfg)) p.push(`'trainer.config' must be an object, got ${show(cfg)}`);
  const maxEpoch = isObject(cfg) && isInt(cfg.epochs, 1, MAX_EPOCHS) ? cfg.epochs : MAX_EPOCHS;
  if (!isInt(t.epoch, 0, maxEpoch)) {
    p.push(`'trainer.epoch' must be an integer in [0, ${maxEpoch}]${maxEpoch !== MAX_EPOCHS ? ' (the run\'s epochs)' : ''}, got ${show(t.epoch)}`);
  }
  if (!isInt(t.step, 0, Number.MAX_SAFE_INTEGER)) p.push(`'trainer.step' must be a non-negative integer, got ${show(t.step)}`);
  // the seed matters only to --resume, which requires it
  if (t.seed !== undefined && !isInt(t.seed, 0, 0xffffffff)) p.push(`'trainer.seed' must be an integer in [0, 2^32), got ${show(t.seed)}`);
  if (t.history !== undefined && (!Array.isArray(t.history) || t.history.some(r => !isObject(r) || !isInt(r.epoch, 1, MAX_EPOCHS)))) {
    p.push(`'trainer.history' must be an array of epoch records`);
  }
  const b = t.best;
  if (b != null && (!isObject(b) || !isInt(b.epoch, 1, MAX_EPOCHS) || typeof b.top1 !== 'number' || !(b.top1 >= 0 && b.top1 <= 1))) {
    p.push(`'trainer.best' must be null or {epoch: integer >= 1, top1: number in [0, 1]}, got ${show(b)}`);
  }
  const n = t.normalisation;
  if (n !== undefined) {
    const finite = (a: unknown, pos: boolean) => Array.isArray(a) && a.length >= 1 && a.length <= 4 &&
        a.every(v => typeof v === 'number' && Number.isFinite(v) && (!pos || v > 0));
    if (!isObject(n) || !finite(n.mean, false) || !finite(n.std, true) || (n.mean as unknown[]).length !== (n.std as unknown[]).length) {
      p.push(`'trainer.normalisation' must be {mean: numbers, std: positive numbers} of one length per channel, got ${show(n)}`);
    }
  }
  if (t.classNames !== undefined && (!Array.isArray(t.classNames) || t.classNames.some(c => typeof c !== 'string'))) {
    p.push(`'trainer.classNames' must be an array of strings`);
  }
  return p;
}

/**
 * Problems of a ViT model specification against the stored weight list: every size the
 * specification sets (depth, dim, heads, MLP width, tokens, channels, classes, KArAt grid
 * and rank) must agree with the stored shapes, so that building the model allocates no
 * more than the checkpoint holds.
 */
export function specProblems(spec: Record<string, unknown>, weights: Array<{name: string, shape: number[]}>): string[] {
  let cfg: ReturnType<typeof resolveViTConfig>;
  let N: number;
  const a = spec as unknown as ViTArgs;
  try {
    cfg = resolveViTConfig(a);
    const size = a.imageSize;
    const ok = (v: unknown) => isInt(v, 1, 1 << 20);
    const [ih, iw] = typeof size === 'number' ? [size, size] : Array.isArray(size) && size.length === 2 ? size : [NaN, NaN];
    if (!ok(ih) || !ok(iw) || !ok(a.patchSize) || ih % a.patchSize !== 0 || iw % a.patchSize !== 0) {
      return [`modelSpec: 'imageSize' ${show(size)} and 'patchSize' ${show(a.patchSize)} must be positive integers, the image a whole number of patches`];
    }
    if (a.pool != null && a.pool !== 'token' && a.pool !== 'gap') return [`modelSpec: 'pool' must be 'token' or 'gap', got ${show(a.pool)}`];
    N = vitTokens([ih, iw], a.patchSize, a.pool ?? 'token');
  } catch (e) {
    return [`modelSpec: ${(e as Error).message}`];
  }
  const {dim, depth, heads} = cfg;
  const C = a.channels ?? 3, K = a.numClasses, P = a.patchSize;
  if (!isInt(C, 1, 1 << 16)) return [`modelSpec: 'channels' must be a positive integer, got ${show(C)}`];
  if (!isInt(K, 1, Number.MAX_SAFE_INTEGER)) return [`modelSpec: 'numClasses' must be a positive integer, got ${show(K)}`];
  const byName = new Map(weights.map(w => [w.name, w.shape]));
  const p: string[] = [];
  const expect = (name: string, shape: number[]) => {
    const got = byName.get(name);
    if (got == null) p.push(`the stored weights have no '${name}' (the specification needs [${shape}])`);
    else if (got.join(',') !== shape.join(',')) p.push(`'${name}' is stored as [${got}], the specification needs [${shape}]`);
  };
  // The stored blocks must be exactly block0 .. block{depth-1}.
  const blocks = new Set<number>();
  for (const w of weights) {
    const m = /^block(\d+)_/.exec(w.name);
    if (m) blocks.add(Number(m[1]));
  }
  const maxBlock = blocks.size ? Math.max(...blocks) + 1 : 0;
  if (blocks.size !== depth || maxBlock !== depth) {
    p.push(`the specification says depth ${depth}, the stored weights hold ${blocks.size} encoder blocks`);
  }
  expect('patch_embed/kernel', [P, P, C, dim]);
  expect('pos_embed/embedding', [1, N, dim]);
  expect('head/kernel', [dim, K]);
  if (p.length) return p;
  const hidden = Math.round(dim * cfg.mlpRatio);
  for (let i = 0; i < depth && p.length < 4; i++) {
    expect(`block${i}_attn/query/kernel`, [dim, heads, dim / heads]);
    expect(`block${i}_mlp_fc1/kernel`, [dim, hidden]);
  }
  const att = resolveAttention(cfg.attention, 'modelSpec.attention');
  const coeffs = weights.filter(w => /\/karat\/coeffs$/.test(w.name));
  if (att.kind === 'karat') {
    if (coeffs.length === 0) p.push(`the specification has KArAt attention, the stored weights have no KArAt coefficients`);
    const op = att.operator as unknown as {basis: string, grid?: number, rank: number | 'full'};
    const r = op.rank === 'full' ? N : op.rank;
    const want = op.basis === 'fourier' ? [heads, 2, r, N, op.grid] : null;
    for (const c of coeffs) {
      if (want != null ? c.shape.join(',') !== want.join(',') : c.shape[0] !== heads) {
        p.push(`'${c.name}' is stored as [${c.shape}], the specification needs ` +
               `${want != null ? `[${want}] (heads, 2, rank, tokens, grid)` : `${heads} heads on axis 0`}`);
        break;
      }
    }
  } else if (coeffs.length) {
    p.push(`the specification has softmax attention, the stored weights hold KArAt coefficients ('${coeffs[0].name}')`);
  }
  return p;
}
