/**
 * Training checkpoints: one self-describing file per checkpoint (`last.ckpt`, `best.ckpt`)
 *
 *     "KARATCK1" | uint32 LE header length | header JSON | pad to 4 bytes | model weights | optimiser state
 *
 * The header holds the model specification (enough to rebuild the model), the list of
 * weights (name, shape), the optimiser's meta data, the trainer state (epoch, step,
 * seed, config, history) and (format 2) a CRC-32 per weight tensor and of the optimiser
 * state. Reading validates the header's types and ranges and the checksums before anything
 * is built; format-1 files (no checksums) still load, with a one-time note. Files are written atomically: to `<file>.tmp-<pid>`, fsync'ed,
 * then renamed over the old one, so an interrupted run (Ctrl-C, crash) never leaves a
 * half-written checkpoint in place of the last complete one.
 *
 * `exportModel` writes the standard tfjs format (model.json + weights.bin, via
 * tf.io.withSaveHandler) for use outside this CLI.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';

import {fileSystem} from '../io/file_system';
import {AdamWState} from './adamw';
import * as nodeFs from 'node:fs';
import * as nodePath from 'node:path';
import {headerProblems, specProblems} from './checkpoint_validate';
import {crc32} from './crc32';
import {buildModel, isTopologySpec, ModelSpec, modelFromSpec} from './model';
import {checkLayerSizes} from '../io/validate_weights';

const MAGIC = 'KARATCK1';
/** Format written by writeCheckpoint (2: with CRC-32 checksums). */
export const CHECKPOINT_FORMAT = 2;
/** Largest header a checkpoint may declare. */
const MAX_HEADER_BYTES = 64 * 1024 * 1024;

/** Raised when a checkpoint is missing, corrupt or does not fit the model. */
export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

export interface WeightEntry {
  name: string;
  shape: number[];
}

/** Per-tensor CRC-32 checksums of the stored data (format 2). */
export interface CheckpointChecksums {
  algorithm: 'crc32';
  /** One per entry of `weights`, over its float32 bytes as stored. */
  weights: number[];
  /** Over the whole optimiser state; null without one. */
  optimizer: number | null;
}

export interface CheckpointHeader {
  /** 2 (with checksums); 1 is still read. Written as CHECKPOINT_FORMAT whatever is given. */
  format: 1 | 2;
  createdAt: string;
  /** JSON model specification the trainer rebuilds the model from. */
  modelSpec: unknown;
  weights: WeightEntry[];
  optimizer: AdamWState['meta'] | null;
  trainer: Record<string, unknown>;
  weightFloats: number;
  optimizerFloats: number;
  /** Set by writeCheckpoint; absent in format 1. */
  checksums?: CheckpointChecksums;
}

export interface Checkpoint {
  header: CheckpointHeader;
  weights: Float32Array[];
  optimizer: AdamWState | null;
}

/** Writes `chunks` to `path` atomically (temp file in the same directory, fsync, rename). */
export function writeFileAtomic(path: string, chunks: Uint8Array[]): void {
  nodeFs.mkdirSync(nodePath.dirname(path), {recursive: true});
  const tmp = nodePath.join(nodePath.dirname(path), `.${nodePath.basename(path)}.tmp-${process.pid}`);
  const fd = nodeFs.openSync(tmp, 'w');
  try {
    for (const c of chunks) {
      let off = 0;
      while (off < c.length) off += nodeFs.writeSync(fd, c, off, c.length - off);
    }
    nodeFs.fsyncSync(fd);
  } catch (e) {
    nodeFs.closeSync(fd);
    try {
      nodeFs.unlinkSync(tmp);
    } catch {
      // already gone
    }
    throw e;
  }
  nodeFs.closeSync(fd);
  try {
    nodeFs.renameSync(tmp, path);
  } catch (e) {
    // e.g. `path` is a folder (EISDIR): no temporary file is left behind
    try {
      nodeFs.unlinkSync(tmp);
    } catch {
      // already gone
    }
    throw e;
  }
  try {
    const dfd = nodeFs.openSync(nodePath.dirname(path), 'r');
    nodeFs.fsyncSync(dfd);
    nodeFs.closeSync(dfd);
  } catch {
    // directories cannot be fsync'ed on every platform
  }
}

function f32bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Serialises and atomically writes a checkpoint (current format, with checksums). */
export function writeCheckpoint(path: string, ck: Checkpoint): void {
  const weightFloats = ck.weights.reduce((a, w) => a + w.length, 0);
  const optimizerFloats = ck.optimizer ? ck.optimizer.data.length : 0;
  const checksums: CheckpointChecksums = {
    algorithm: 'crc32', weights: ck.weights.map((w) => crc32(f32bytes(w))),
    optimizer: ck.optimizer ? crc32(f32bytes(ck.optimizer.data)) : null,
  };
  const header: CheckpointHeader = {
    ...ck.header, format: CHECKPOINT_FORMAT, weightFloats, optimizerFloats, optimizer: ck.optimizer?.meta ?? null, checksums,
  };
  const h = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(h.length, 0);
  // pad the header so float data is 4-byte aligned in the file
  const pad = (4 - ((8 + 4 + h.length) % 4)) % 4;
  const chunks: Uint8Array[] = [Buffer.from(MAGIC, 'ascii'), len, h, new Uint8Array(pad), ...ck.weights.map(f32bytes)];
  if (ck.optimizer) chunks.push(f32bytes(ck.optimizer.data));
  writeFileAtomic(path, chunks);
}

let notedFormat1 = false;

/** Reads `n` bytes at `pos` of an open file (fewer at its end). */
function readAt(fd: number, n: number, pos: number): Buffer {
  const b = Buffer.alloc(n);
  let off = 0;
  while (off < n) {
    const got = nodeFs.readSync(fd, b, off, n - off, pos + off);
    if (got === 0) break;
    off += got;
  }
  return off === n ? b : b.subarray(0, off);
}

/**
 * Checks the CRC-32 of every tensor (format 2) against the header, naming the damaged tensor and
 * its bytes; a format-1 checkpoint, without checksums, gets a one-time note.
 */
function verifyChecksums(path: string, header: CheckpointHeader, weights: Float32Array[], optData: Float32Array,
                         start: number, need: number): void {
  if (header.checksums == null) {
    if (!notedFormat1) {
      notedFormat1 = true;
      console.warn(`note: '${path}' is a format-1 checkpoint without checksums, so its weights cannot be verified ` +
                   `(checkpoints written now carry CRC-32 checksums)`);
    }
    return;
  }
  const c = header.checksums;
  let pos = start;
  header.weights.forEach((w, i) => {
    const b = f32bytes(weights[i]);
    if (crc32(b) !== c.weights[i]) {
      throw new CheckpointError(
          `${path}: corrupt checkpoint: weight '${w.name}' [${w.shape}] (bytes ${pos}..${pos + b.length - 1} of the file) ` +
          `fails its CRC-32 check; the file was damaged after it was written`);
    }
    pos += b.length;
  });
  if (c.optimizer != null && crc32(f32bytes(optData)) !== c.optimizer) {
    throw new CheckpointError(
        `${path}: corrupt checkpoint: the optimizer state (bytes ${pos}..${need - 1} of the file) fails its CRC-32 check`);
  }
}

/**
 * Reads and verifies a checkpoint: magic number, header (types and ranges of every field),
 * file size against the declared data, and (format 2) the CRC-32 of every tensor. Nothing
 * beyond the header is allocated before the header has been checked.
 */
export function readCheckpoint(path: string): Checkpoint {
  const fs = nodeFs;
  if (!fs.existsSync(path)) throw new CheckpointError(`checkpoint '${path}' does not exist`);
  const st = fs.statSync(path);
  if (!st.isFile()) throw new CheckpointError(`checkpoint '${path}' is not a regular file`);
  const size = st.size;
  const fd = fs.openSync(path, 'r');
  try {
    if (size === 0) throw new CheckpointError(`checkpoint '${path}' is empty (0 bytes)`);
    const pre = readAt(fd, 12, 0);
    const magic = pre.subarray(0, 8).toString('latin1');
    if (size < 12 && MAGIC.startsWith(magic)) {
      throw new CheckpointError(`'${path}' is truncated: ${size} bytes, less than the 12-byte start of a checkpoint (magic number and header length)`);
    }
    if (magic !== MAGIC) {
      throw new CheckpointError(`'${path}' is not a tfjs-karat checkpoint (wrong magic number '${pre.subarray(0, 8).toString('hex')}', expected '${MAGIC}')`);
    }
    const hl = pre.readUInt32LE(8);
    if (hl > MAX_HEADER_BYTES) throw new CheckpointError(`${path}: corrupt checkpoint header length ${hl} (limit ${MAX_HEADER_BYTES} bytes)`);
    if (12 + hl > size) throw new CheckpointError(`'${path}' is truncated: ${size} bytes, its header alone declares ${12 + hl}`);
    let raw: unknown;
    try {
      raw = JSON.parse(readAt(fd, hl, 12).toString('utf8'));
    } catch (e) {
      throw new CheckpointError(`${path}: corrupt checkpoint header (${(e as Error).message})`);
    }
    const problems = headerProblems(raw);
    if (problems.length) throw new CheckpointError(`${path}: invalid checkpoint header: ${problems.slice(0, 3).join('; ')}`);
    const header = raw as CheckpointHeader;
    const start = 12 + hl + ((4 - ((12 + hl) % 4)) % 4);
    const need = start + 4 * (header.weightFloats + header.optimizerFloats);
    if (size < need) {
      throw new CheckpointError(`'${path}' is truncated: ${size} bytes, its header declares ${need} (${need - size} bytes of tensor data missing)`);
    }
    if (size > need) {
      throw new CheckpointError(`${path}: corrupt checkpoint: ${size - need} bytes after the ${need} bytes its header declares`);
    }
    const all = new Float32Array(header.weightFloats + header.optimizerFloats);
    const bytes = new Uint8Array(all.buffer);
    const got = nodeFs.readSync(fd, bytes, 0, bytes.length, start);
    let off = got;
    while (off < bytes.length) {
      const n = nodeFs.readSync(fd, bytes, off, bytes.length - off, start + off);
      if (n === 0) throw new CheckpointError(`'${path}' is truncated (it shrank while being read)`);
      off += n;
    }
    const weights: Float32Array[] = [];
    let o = 0;
    for (const w of header.weights) {
      const n = w.shape.reduce((a, v) => a * v, 1);
      weights.push(all.subarray(o, o + n));
      o += n;
    }
    const optData = all.subarray(o);
    verifyChecksums(path, header, weights, optData, start, need);
    const optimizer = header.optimizer ? {meta: header.optimizer, data: optData} : null;
    return {header, weights, optimizer};
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Checks a checkpoint's model specification against its stored weight list before anything
 * is built: a ViT spec's sizes (specProblems), or a stored layers topology's layer sizes
 * (checkLayerSizes). Throws a CheckpointError naming `what`.
 */
export function checkSpecFitsWeights(ck: Checkpoint, what: string): void {
  const spec = ck.header.modelSpec as ModelSpec;
  if (isTopologySpec(spec)) {
    const layers = (spec.topology as {config?: {layers?: unknown}}).config?.layers ?? [];
    if (!Array.isArray(layers)) throw new CheckpointError(`${what}: the model topology has no layer list`);
    try {
      checkLayerSizes(layers, new Map(ck.header.weights.map((w) => [w.name, w.shape])), what);
    } catch (e) {
      throw new CheckpointError((e as Error).message);
    }
    return;
  }
  const problems = specProblems(spec as unknown as Record<string, unknown>, ck.header.weights);
  if (problems.length) {
    throw new CheckpointError(`${what}: the model specification does not match the stored weights: ${problems.slice(0, 3).join('; ')}`);
  }
}

/**
 * Builds the model a checkpoint describes and loads its weights, after checking the
 * specification against the stored weight list (so a forged header cannot make it build a
 * model larger than the file). `what` names the checkpoint in error messages.
 */
export async function modelFromCheckpoint(ck: Checkpoint, what: string): Promise<tfl.LayersModel> {
  checkSpecFitsWeights(ck, what);
  const spec = ck.header.modelSpec as ModelSpec;
  const model = isTopologySpec(spec) ? await modelFromSpec(spec, 0) : buildModel(spec, 0);
  try {
    assignWeights(model, ck, what);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/**
 * The one way to get a model from a checkpoint file: reads and verifies it (readCheckpoint,
 * which checks the specification against the weights), builds the model and loads the weights.
 */
export async function loadCheckpointModel(path: string, what = `checkpoint '${path}'`): Promise<{ck: Checkpoint, model: tfl.LayersModel}> {
  const ck = readCheckpoint(path);
  return {ck, model: await modelFromCheckpoint(ck, what)};
}

/** Unique trainable + non-trainable weights of a model, in a stable order, with names. */
export function modelWeights(model: tfl.LayersModel): Array<{name: string, variable: tf.Variable, trainable: boolean}> {
  const seen = new Set<number>();
  const out: Array<{name: string, variable: tf.Variable, trainable: boolean}> = [];
  for (const w of model.weights) {
    const v = w.read() as tf.Variable;
    if (seen.has(v.id)) continue;
    seen.add(v.id);
    const name = (w as unknown as {originalName?: string}).originalName ?? w.name;
    out.push({name, variable: v, trainable: w.trainable});
  }
  return out;
}

/** Reads all weights of the model (for checkpoints). */
export async function readWeights(model: tfl.LayersModel): Promise<{entries: WeightEntry[], data: Float32Array[]}> {
  const ws = modelWeights(model);
  const data: Float32Array[] = [];
  for (const w of ws) data.push(new Float32Array(await w.variable.data() as Float32Array));
  return {entries: ws.map((w) => ({name: w.name, shape: w.variable.shape})), data};
}

/**
 * Loads checkpoint weights into `model`, after checking that the model has exactly the
 * same weights (names and shapes). `what` names the checkpoint in error messages.
 */
export function assignWeights(model: tfl.LayersModel, ck: Checkpoint, what: string): void {
  const ws = modelWeights(model);
  const saved = ck.header.weights;
  const problems: string[] = [];
  if (ws.length !== saved.length) problems.push(`the checkpoint has ${saved.length} weight tensors, this model has ${ws.length}`);
  for (let i = 0; i < Math.min(ws.length, saved.length) && problems.length < 4; i++) {
    const a = saved[i], b = ws[i];
    if (a.name !== b.name || a.shape.join(',') !== b.variable.shape.join(',')) {
      problems.push(`weight ${i}: checkpoint '${a.name}' [${a.shape}] vs model '${b.name}' [${b.variable.shape}]`);
    }
  }
  if (problems.length) {
    throw new CheckpointError(
        `${what} was saved from an incompatible model: ${problems.join('; ')}. ` +
        `Checkpoint model: ${JSON.stringify(ck.header.modelSpec)}`);
  }
  tf.tidy(() => ws.forEach((w, i) => w.variable.assign(tf.tensor(ck.weights[i], w.variable.shape))));
}

/**
 * Saves `model` in the standard tfjs layers format (`dir/model.json` + `dir/weights.bin`) with
 * the project's file IO handler (src/io), loadable with tf.loadLayersModel('file://dir/model.json').
 */
export async function exportModel(model: tfl.LayersModel, dir: string): Promise<void> {
  await model.save(fileSystem(dir));
}
