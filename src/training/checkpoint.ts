/**
 * Training checkpoints: one self-describing file per checkpoint (`last.ckpt`, `best.ckpt`)
 *
 *     "KARATCK1" | uint32 LE header length | header JSON | model weights | optimiser state
 *
 * The header holds the model specification (enough to rebuild the model), the list of
 * weights (name, shape), the optimiser's meta data and the trainer state (epoch, step,
 * seed, config, history). Files are written atomically: to `<file>.tmp-<pid>`, fsync'ed,
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

const MAGIC = 'KARATCK1';

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

export interface CheckpointHeader {
  format: 1;
  createdAt: string;
  /** JSON model specification the trainer rebuilds the model from. */
  modelSpec: unknown;
  weights: WeightEntry[];
  optimizer: AdamWState['meta'] | null;
  trainer: Record<string, unknown>;
  weightFloats: number;
  optimizerFloats: number;
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
  nodeFs.renameSync(tmp, path);
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

/** Serialises and atomically writes a checkpoint. */
export function writeCheckpoint(path: string, ck: Checkpoint): void {
  const weightFloats = ck.weights.reduce((a, w) => a + w.length, 0);
  const optimizerFloats = ck.optimizer ? ck.optimizer.data.length : 0;
  const header: CheckpointHeader = {...ck.header, weightFloats, optimizerFloats, optimizer: ck.optimizer?.meta ?? null};
  const h = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(h.length, 0);
  // pad the header so float data is 4-byte aligned in the file
  const pad = (4 - ((8 + 4 + h.length) % 4)) % 4;
  const chunks: Uint8Array[] = [Buffer.from(MAGIC, 'ascii'), len, h, new Uint8Array(pad), ...ck.weights.map(f32bytes)];
  if (ck.optimizer) chunks.push(f32bytes(ck.optimizer.data));
  writeFileAtomic(path, chunks);
}

export function readCheckpoint(path: string): Checkpoint {
  if (!nodeFs.existsSync(path)) throw new CheckpointError(`checkpoint '${path}' does not exist`);
  const b = nodeFs.readFileSync(path);
  if (b.length < 12 || b.subarray(0, 8).toString('ascii') !== MAGIC) {
    throw new CheckpointError(`'${path}' is not a tfjs-karat checkpoint (wrong magic number '${b.subarray(0, 8).toString('hex')}', expected '${MAGIC}')`);
  }
  const hl = b.readUInt32LE(8);
  let header: CheckpointHeader;
  try {
    header = JSON.parse(b.subarray(12, 12 + hl).toString('utf8')) as CheckpointHeader;
  } catch (e) {
    throw new CheckpointError(`${path}: corrupt checkpoint header (${(e as Error).message})`);
  }
  const start = 12 + hl + ((4 - ((12 + hl) % 4)) % 4);
  const need = start + 4 * (header.weightFloats + header.optimizerFloats);
  if (b.length !== need) {
    throw new CheckpointError(`${path}: truncated or corrupt checkpoint (${b.length} bytes, header implies ${need})`);
  }
  const all = new Float32Array(b.buffer.slice(b.byteOffset + start, b.byteOffset + need));
  const weights: Float32Array[] = [];
  let o = 0;
  for (const w of header.weights) {
    const n = w.shape.reduce((a, v) => a * v, 1);
    weights.push(all.subarray(o, o + n));
    o += n;
  }
  if (o !== header.weightFloats) throw new CheckpointError(`${path}: weight list does not match the stored data`);
  const optimizer = header.optimizer ? {meta: header.optimizer, data: all.subarray(o)} : null;
  return {header, weights, optimizer};
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
