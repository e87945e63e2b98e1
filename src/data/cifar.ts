/**
 * CIFAR-10 and CIFAR-100 "binary version" readers: from the extracted directory, from the
 * official .tar.gz directly (streamed through gunzip and our tar reader), or from raw
 * record buffers. Records are CHW (1024 R, 1024 G, 1024 B); we store NHWC.
 */

import {DataError, ImageDataset, inMemoryDataset} from './dataset';
import {readTarFiles} from './tar';
import * as nodeFs from 'node:fs';
import * as nodePath from 'node:path';

export type CifarVariant = 'cifar10' | 'cifar100';
export type CifarSplit = 'train' | 'test';

export const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

const PIXELS = 3072;

/** Where the files of a CIFAR variant are, inside its archive or extracted folder. */
export interface CifarLayout {
  dir: string;
  train: string[];
  test: string[];
  labelBytes: number;
  classFile: string;
  numClasses: number;
}

export const CIFAR_LAYOUT: Record<CifarVariant, CifarLayout> = {
  cifar10: {
    dir: 'cifar-10-batches-bin', labelBytes: 1, numClasses: 10, classFile: 'batches.meta.txt',
    train: [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`), test: ['test_batch.bin'],
  },
  cifar100: {
    dir: 'cifar-100-binary', labelBytes: 2, numClasses: 100, classFile: 'fine_label_names.txt',
    train: ['train.bin'], test: ['test.bin'],
  },
};

/**
 * Parses CIFAR binary records. For CIFAR-100 the fine label (second byte) is used, or
 * the coarse one (20 classes) when `coarse` is set.
 */
export function parseCifarRecords(
    buf: Uint8Array, variant: CifarVariant, source: string, coarse = false): {images: Uint8Array, labels: Int32Array} {
  const lb = CIFAR_LAYOUT[variant].labelBytes;
  const rec = lb + PIXELS;
  if (buf.length === 0) throw new DataError(`${source}: file is empty`);
  if (buf.length % rec !== 0) {
    throw new DataError(
        `${source}: truncated record — ${buf.length} bytes is not a multiple of the ${variant} record size ` +
        `${rec} (${Math.floor(buf.length / rec)} complete records, then ${buf.length % rec} stray bytes)`);
  }
  const n = buf.length / rec;
  const images = new Uint8Array(n * PIXELS);
  const labels = new Int32Array(n);
  const maxLabel = variant === 'cifar10' ? 10 : (coarse ? 20 : 100);
  for (let i = 0; i < n; i++) {
    const o = i * rec;
    const label = variant === 'cifar10' ? buf[o] : (coarse ? buf[o] : buf[o + 1]);
    if (label >= maxLabel) {
      throw new DataError(
          `${source}: record ${i} has label ${label}, outside [0, ${maxLabel}) — ` +
          `the file is corrupt or is not ${variant} binary data`);
    }
    labels[i] = label;
    const px = o + lb;
    const d = i * PIXELS;
    for (let p = 0; p < 1024; p++) {
      images[d + p * 3] = buf[px + p];
      images[d + p * 3 + 1] = buf[px + 1024 + p];
      images[d + p * 3 + 2] = buf[px + 2048 + p];
    }
  }
  return {images, labels};
}

function classNames(variant: CifarVariant, text: string | null, coarse: boolean): string[] {
  const n = variant === 'cifar10' ? 10 : (coarse ? 20 : 100);
  const fromFile = text ? text.split(/\r?\n/).map((s) => s.trim()).filter((s) => s.length > 0) : [];
  if (fromFile.length === n) return fromFile;
  if (variant === 'cifar10') return CIFAR10_CLASSES.slice();
  return Array.from({length: n}, (_, i) => `class_${i}`);
}

function build(variant: CifarVariant, split: CifarSplit, parts: Array<{name: string, data: Uint8Array}>,
               names: string[], coarse: boolean): ImageDataset {
  const decoded = parts.map((p) => parseCifarRecords(p.data, variant, p.name, coarse));
  const total = decoded.reduce((a, d) => a + d.labels.length, 0);
  const images = new Uint8Array(total * PIXELS), labels = new Int32Array(total);
  let o = 0;
  for (const d of decoded) {
    images.set(d.images, o * PIXELS);
    labels.set(d.labels, o);
    o += d.labels.length;
  }
  return inMemoryDataset({name: `${variant}/${split}`, height: 32, width: 32, channels: 3, classNames: names, images, labels});
}

export interface CifarOptions {
  /** CIFAR-100 only: use the 20 coarse labels instead of the 100 fine ones. */
  coarse?: boolean;
}

/**
 * Loads a CIFAR split from `path`: the official .tar.gz, its extracted top directory
 * (`cifar-10-batches-bin` / `cifar-100-binary`), or a directory that contains it.
 */
export async function loadCifar(path: string, variant: CifarVariant, split: CifarSplit,
                                opts: CifarOptions = {}): Promise<ImageDataset> {
  const L = CIFAR_LAYOUT[variant];
  if (!CIFAR_LAYOUT[variant]) throw new DataError(`loadCifar: unknown variant '${variant}', expected cifar10 or cifar100`);
  if (split !== 'train' && split !== 'test') throw new DataError(`loadCifar: unknown split '${split}', expected train or test`);
  const coarse = variant === 'cifar100' && !!opts.coarse;
  const classFile = coarse ? 'coarse_label_names.txt' : L.classFile;
  const files = split === 'train' ? L.train : L.test;
  if (!nodeFs.existsSync(path)) throw new DataError(`${variant}: '${path}' does not exist`);
  if (nodeFs.statSync(path).isFile()) {
    const wanted = new Set([...files, classFile].map((f) => `${L.dir}/${f}`));
    const got = await readTarFiles(path, (name) => wanted.has(name.replace(/^\.\//, '')));
    const find = (f: string) => got.get(`${L.dir}/${f}`) ?? got.get(`./${L.dir}/${f}`);
    const missing = files.filter((f) => !find(f));
    if (missing.length) {
      throw new DataError(`${path}: archive lacks ${missing.map((f) => `${L.dir}/${f}`).join(', ')} — is it the ${variant} binary version?`);
    }
    const meta = find(classFile);
    const names = classNames(variant, meta ? Buffer.from(meta).toString('utf8') : null, coarse);
    return build(variant, split, files.map((f) => ({name: `${path}:${L.dir}/${f}`, data: find(f)!})), names, coarse);
  }
  const dir = nodeFs.existsSync(nodePath.join(path, L.dir)) ? nodePath.join(path, L.dir) : path;
  const missing = files.filter((f) => !nodeFs.existsSync(nodePath.join(dir, f)));
  if (missing.length) {
    throw new DataError(`${variant}: missing ${missing.map((f) => nodePath.join(dir, f)).join(', ')} (expected the ${variant} binary version)`);
  }
  const metaPath = nodePath.join(dir, classFile);
  const names = classNames(variant, nodeFs.existsSync(metaPath) ? nodeFs.readFileSync(metaPath, 'utf8') : null, coarse);
  return build(variant, split, files.map((f) => ({name: nodePath.join(dir, f), data: nodeFs.readFileSync(nodePath.join(dir, f))})), names, coarse);
}
