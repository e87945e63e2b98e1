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
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';

import * as tf from '@tensorflow/tfjs-core';

import {KArAtArgumentError} from '../ops/validate';

export const FILE_SCHEME = 'file://';
export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';

function stripScheme(p: string): string {
  return p.startsWith(FILE_SCHEME) ? p.slice(FILE_SCHEME.length) : p;
}

function toArrayBuffer(b: Uint8Array): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

/**
 * IO handler on a directory (save: created if needed) or a model.json path (load; a
 * directory means `<dir>/model.json`).
 */
export class NodeFileSystem implements tf.io.IOHandler {
  readonly path: string;

  constructor(path: string) {
    if (typeof path !== 'string' || stripScheme(path).length === 0) {
      throw new KArAtArgumentError(
          `karat.io.fileSystem: argument 'path' must be a non-empty path string, got ${JSON.stringify(path)}`);
    }
    this.path = stripScheme(path);
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
    const modelJSON = JSON.parse(await fs.readFile(jsonPath, 'utf8')) as tf.io.ModelJSON;
    const dir = path.dirname(jsonPath);
    return tf.io.getModelArtifactsForJSON(modelJSON, async (manifest) => {
      const specs: tf.io.WeightsManifestEntry[] = [];
      const buffers: ArrayBuffer[] = [];
      for (const group of manifest) {
        specs.push(...group.weights);
        for (const p of group.paths) {
          buffers.push(toArrayBuffer(await fs.readFile(path.join(dir, p))));
        }
      }
      return [specs, tf.io.CompositeArrayBuffer.join(buffers)];
    });
  }
}

/** A file-system IO handler: `model.save(karat.io.fileSystem('/dir'))`. */
export function fileSystem(path: string): NodeFileSystem {
  return new NodeFileSystem(path);
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
