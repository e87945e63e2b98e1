/**
 * A `file://` IO handler for Node.js that needs no tfjs-node: saves a model as
 * `<dir>/model.json` + `<dir>/weights.bin` (the tfjs-node / tensorflowjs_converter layout) and
 * loads it back.
 *
 *   await model.save('file:///tmp/my-vit');                 // or karat.io.fileSystem('/tmp/my-vit')
 *   const m = await tf.loadLayersModel('file:///tmp/my-vit/model.json');
 *
 * Part of tfjs-karat/node; registered with tf.io.registerSaveRouter / registerLoadRouter when
 * that entry is imported. The router stands aside when tfjs-node (backend 'tensorflow', which
 * brings its own `file://` handler) is present, so the two never both claim a URL.
 *
 * Model files are untrusted input: loading reads only regular files inside the model's
 * folder (symbolic links resolved), each exactly as large as the weights the manifest
 * declares for it, and refuses declared totals above `maxWeightBytes`.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';

type Fs = typeof fs;
type Path = typeof path;

import * as tf from '@tensorflow/tfjs-core';

import {KArAtArgumentError} from '../../core/validate';
import {checkWeightsManifest, MAX_WEIGHT_BYTES} from './validate_weights';

export const FILE_SCHEME = 'file://';
export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';

function stripScheme(p: string): string {
  return p.startsWith(FILE_SCHEME) ? p.slice(FILE_SCHEME.length) : p;
}

/** Options of the file-system handler. */
export interface FileSystemOptions {
  /** Most weight bytes a model.json may declare when loading (default MAX_WEIGHT_BYTES, 2 GiB). */
  maxWeightBytes?: number;
}

/** Largest model.json the handler parses (its weights are separate files). */
export const MAX_MODEL_JSON_BYTES = 256 * 1024 * 1024;

/**
 * IO handler on a directory (save: created if needed) or a model.json path (load; a
 * directory means `<dir>/model.json`).
 */
export class NodeFileSystem implements tf.io.IOHandler {
  readonly path: string;
  /** Most weight bytes a loaded model.json may declare. */
  readonly maxWeightBytes: number;

  constructor(path: string, options: FileSystemOptions = {}) {
    if (typeof path !== 'string' || stripScheme(path).length === 0) {
      throw new KArAtArgumentError(
          `karat.io.fileSystem: argument 'path' must be a non-empty path string, got ${JSON.stringify(path)}`);
    }
    this.path = stripScheme(path);
    const max = options.maxWeightBytes ?? MAX_WEIGHT_BYTES;
    if (typeof max !== 'number' || !Number.isSafeInteger(max) || max < 0) {
      throw new KArAtArgumentError(
          `karat.io.fileSystem: argument 'options.maxWeightBytes' must be a non-negative integer, got ${JSON.stringify(max)}`);
    }
    for (const k of Object.keys(options)) {
      if (k !== 'maxWeightBytes') throw new KArAtArgumentError(`karat.io.fileSystem: unknown option '${k}' (expected maxWeightBytes)`);
    }
    this.maxWeightBytes = max;
  }

  async save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
    if (artifacts.modelTopology instanceof ArrayBuffer) {
      throw new Error('karat.io.fileSystem: saving a binary (GraphDef) topology is not supported');
    }
    // Like tfjs-node: the path names a directory, unless it ends in model.json.
    const dir = this.path.endsWith('.json') ? path.dirname(this.path) : this.path;
    const jsonPath = this.path.endsWith('.json') ? this.path : path.join(dir, MODEL_JSON);
    await fs.mkdir(dir, {recursive: true});
    const weightsManifest: tf.io.WeightsManifestConfig = [{
      paths: [WEIGHTS_BIN],
      weights: artifacts.weightSpecs ?? [],
    }];
    const modelJSON: tf.io.ModelJSON = {
      modelTopology: artifacts.modelTopology ?? {},
      format: artifacts.format,
      generatedBy: artifacts.generatedBy,
      convertedBy: artifacts.convertedBy,
      weightsManifest,
    };
    if (artifacts.trainingConfig != null) modelJSON.trainingConfig = artifacts.trainingConfig;
    if (artifacts.signature != null) modelJSON.signature = artifacts.signature;
    if (artifacts.userDefinedMetadata != null) modelJSON.userDefinedMetadata = artifacts.userDefinedMetadata;
    if (artifacts.modelInitializer != null) modelJSON.modelInitializer = artifacts.modelInitializer;
    const weightData = artifacts.weightData == null ? new ArrayBuffer(0) :
        tf.io.CompositeArrayBuffer.join(artifacts.weightData);
    await fs.writeFile(path.join(dir, WEIGHTS_BIN), new Uint8Array(weightData));
    await fs.writeFile(jsonPath, JSON.stringify(modelJSON));
    return {modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts)};
  }

  async load(): Promise<tf.io.ModelArtifacts> {
    let jsonPath = this.path;
    const st = await fs.stat(jsonPath).catch(() => null);
    if (st == null) {
      throw new Error(`karat.io.fileSystem: no such file or directory: ${jsonPath}`);
    }
    if (st.isDirectory()) jsonPath = path.join(jsonPath, MODEL_JSON);
    const js = await fs.stat(jsonPath).catch(() => null);
    if (js == null || !js.isFile()) {
      throw new Error(`karat.io.fileSystem: '${jsonPath}' is not a regular file`);
    }
    if (js.size > MAX_MODEL_JSON_BYTES) {
      throw new Error(`karat.io.fileSystem: '${jsonPath}' has ${js.size} bytes, more than the ${MAX_MODEL_JSON_BYTES}-byte limit for a model.json`);
    }
    let modelJSON: tf.io.ModelJSON;
    try {
      modelJSON = JSON.parse(await fs.readFile(jsonPath, 'utf8')) as tf.io.ModelJSON;
    } catch (e) {
      throw new Error(`karat.io.fileSystem: '${jsonPath}' is not valid JSON (${(e as Error).message})`);
    }
    if (modelJSON == null || typeof modelJSON !== 'object' || Array.isArray(modelJSON)) {
      throw new Error(`karat.io.fileSystem: '${jsonPath}' must hold a JSON object`);
    }
    // Every weight file must lie inside the model's folder (after resolving symbolic links).
    const root = await fs.realpath(path.dirname(jsonPath));
    const maxBytes = this.maxWeightBytes;
    return tf.io.getModelArtifactsForJSON(modelJSON, async (manifest) => {
      const groups = checkWeightsManifest(manifest, `karat.io.fileSystem: '${jsonPath}'`, maxBytes);
      const specs: tf.io.WeightsManifestEntry[] = [];
      const files: Array<{file: string, size: number}> = [];
      for (const g of groups) {
        specs.push(...g.weights);
        let groupBytes = 0;
        const groupFiles: Array<{file: string, size: number}> = [];
        for (const p of g.paths) {
          const f = await confinedFile(fs, path, root, p, jsonPath);
          groupBytes += f.size;
          groupFiles.push(f);
        }
        if (groupBytes !== g.bytes) {
          throw new Error(
              `karat.io.fileSystem: '${jsonPath}': the weight files ${g.paths.map(p => `'${p}'`).join(', ')} hold ` +
              `${groupBytes} bytes, the manifest declares ${g.bytes} bytes for their weights`);
        }
        files.push(...groupFiles);
      }
      const buffers: ArrayBuffer[] = [];
      for (const f of files) buffers.push(await readExactly(fs, f.file, f.size));
      return [specs, tf.io.CompositeArrayBuffer.join(buffers)];
    });
  }
}

/**
 * Resolves manifest path `p` against the model folder `root` (already a real path) and checks
 * that it names a regular file inside it, also after following symbolic links.
 */
async function confinedFile(fs: Fs, path: Path, root: string, p: string, jsonPath: string): Promise<{file: string, size: number}> {
  const joined = path.join(root, p);
  const real = await fs.realpath(joined).catch(() => null);
  if (real == null) throw new Error(`karat.io.fileSystem: '${jsonPath}': weight file '${p}' does not exist`);
  const rel = path.relative(root, real);
  if (rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) {
    throw new Error(
        `karat.io.fileSystem: '${jsonPath}': weight file '${p}' resolves to '${real}', outside the model folder '${root}'; refused`);
  }
  const st = await fs.stat(real);
  if (!st.isFile()) throw new Error(`karat.io.fileSystem: '${jsonPath}': weight file '${p}' is not a regular file; refused`);
  return {file: real, size: st.size};
}

/** Reads exactly `size` bytes of `file`; a file that changed size meanwhile is an error. */
async function readExactly(fs: Fs, file: string, size: number): Promise<ArrayBuffer> {
  const out = new Uint8Array(size);
  const fh = await fs.open(file, 'r');
  try {
    let off = 0;
    while (off < size) {
      const {bytesRead} = await fh.read(out, off, size - off, off);
      if (bytesRead === 0) break;
      off += bytesRead;
    }
    const extra = await fh.read(new Uint8Array(1), 0, 1, size);
    if (off !== size || extra.bytesRead !== 0) {
      throw new Error(`karat.io.fileSystem: weight file '${file}' changed size while it was read (expected ${size} bytes)`);
    }
  } finally {
    await fh.close();
  }
  return out.buffer;
}

/** A file-system IO handler: `model.save(karat.io.fileSystem('/dir'))`. */
export function fileSystem(path: string, options: FileSystemOptions = {}): NodeFileSystem {
  return new NodeFileSystem(path, options);
}

/** The router registered with tf.io for `file://` URLs (null when it does not apply). */
export function fileSystemRouter(url: string | string[]): tf.io.IOHandler {
  // (tf.io routers return null for URLs they do not handle.)
  if (typeof url !== 'string' || !url.startsWith(FILE_SCHEME)) return null!;
  // tfjs-node registers its own file:// handler; let it handle the URL.
  if (tf.findBackendFactory('tensorflow') != null) return null!;
  return new NodeFileSystem(url);
}

// Register once per process even when several copies of this package are loaded (ESM and
// CJS builds, bundles): two routers claiming one URL would make tf.io refuse it.
const ROUTER_KEY = Symbol.for('tfjs-karat.fileSystemRouter');
const g = globalThis as unknown as Record<symbol, unknown>;
if (g[ROUTER_KEY] == null) {
  g[ROUTER_KEY] = fileSystemRouter;
  tf.io.registerSaveRouter(fileSystemRouter);
  tf.io.registerLoadRouter(fileSystemRouter);
}
