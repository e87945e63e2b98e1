/**
 * "A folder of images per class" datasets for users' own data:
 *
 *     root/<class name>/<any name>.png|.jpg|.jpeg
 *
 * Images are decoded with pure-JS decoders (pngjs, jpeg-js: optional dependencies, loaded
 * when the first image is read), converted to the requested channel count and resized
 * (area average, then bilinear) to a fixed size. Decoding happens per batch inside the prefetching loader,
 * so memory stays bounded by the prefetch depth, not the dataset size.
 */

import {requireOptional} from '../../core/node_require';
import {DataError, ImageDataset} from './dataset';
import * as nodeFs from 'node:fs';
import * as nodeFsP from 'node:fs/promises';
import * as nodePath from 'node:path';

const EXTS = new Set(['.png', '.jpg', '.jpeg']);

/** A decoded image. */
export interface DecodedImage {
  width: number;
  height: number;
  /** RGBA, 4 bytes per pixel */
  rgba: Uint8Array;
}

type PngModule = {PNG: {sync: {read(b: Buffer): {width: number, height: number, data: Buffer}}}};
type JpegModule = {decode(b: Buffer, o: {useTArray: boolean, formatAsRGBA: boolean, maxMemoryUsageInMB?: number, maxResolutionInMP?: number}): {width: number, height: number, data: Uint8Array}};

function load<T>(name: string): T {
  try {
    return requireOptional<T>(name);
  } catch {
    throw new DataError(`image folders need the '${name}' package: npm install ${name}`);
  }
}

/**
 * Most pixels an image may declare (8192 x 8192): a few hundred KB of compressed PNG or JPEG
 * can declare gigabytes of pixels, so the size is checked before decoding.
 */
export const MAX_IMAGE_PIXELS = 8192 * 8192;

function checkPixels(width: number, height: number, source: string): void {
  if (width * height > MAX_IMAGE_PIXELS) {
    throw new DataError(`${source}: ${width}x${height} pixels is more than the ${MAX_IMAGE_PIXELS}-pixel limit (8192x8192) for images; scale it down first`);
  }
}

/** Decodes one PNG or JPEG file (by magic bytes) into RGBA; refuses images over MAX_IMAGE_PIXELS. */
export function decodeImage(buf: Uint8Array, source: string): DecodedImage {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  try {
    if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) {
      // the IHDR chunk comes first: width and height at bytes 16..23 (big-endian)
      if (b.length < 24 || b.toString('latin1', 12, 16) !== 'IHDR') throw new DataError(`${source}: corrupt PNG (no IHDR chunk first)`);
      checkPixels(b.readUInt32BE(16), b.readUInt32BE(20), source);
      const png = load<PngModule>('pngjs').PNG.sync.read(b);
      return {width: png.width, height: png.height, rgba: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.length)};
    }
    if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) {
      const j = load<JpegModule>('jpeg-js').decode(b, {
        useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 1024, maxResolutionInMP: MAX_IMAGE_PIXELS / 1e6,
      });
      return {width: j.width, height: j.height, rgba: j.data};
    }
  } catch (e) {
    if (e instanceof DataError) throw e;
    throw new DataError(`${source}: cannot decode image (${(e as Error).message})`);
  }
  throw new DataError(`${source}: not a PNG or JPEG file (magic bytes ${b.subarray(0, 4).toString('hex')})`);
}

/**
 * Source pixels and weights of each of `m` output positions resampling `n` source positions.
 * A shrink by more than 2x averages the source interval each output pixel covers (area
 * weights, fractional at the edges): linear interpolation would read only 2 of the pixels and
 * alias fine patterns. Otherwise linear interpolation between pixel centres.
 */
function axisWeights(n: number, m: number): Array<Array<[number, number]>> {
  const s = n / m;
  return Array.from({length: m}, (_, i) => {
    if (s > 2) {
      const lo = i * s, hi = (i + 1) * s, taps: Array<[number, number]> = [];
      for (let j = Math.floor(lo); j < Math.min(Math.ceil(hi), n); j++) {
        taps.push([j, (Math.min(hi, j + 1) - Math.max(lo, j)) / s]);
      }
      return taps;
    }
    const f = Math.min(Math.max((i + 0.5) * s - 0.5, 0), n - 1);
    const j0 = Math.floor(f), j1 = Math.min(j0 + 1, n - 1), w = f - j0;
    return [[j0, 1 - w], [j1, w]];
  });
}

/**
 * Resizes RGBA to HxW, writing `channels` (1 = luminance, 3 = RGB) to `out` at `off`: per axis,
 * bilinear for a shrink of at most 2x or an enlargement, an area average for a larger shrink
 * (axisWeights), applied along rows, then columns.
 */
export function resizeInto(img: DecodedImage, H: number, W: number, channels: number, out: Uint8Array, off: number): void {
  const {width: w, height: h, rgba} = img;
  const xs = axisWeights(w, W), ys = axisWeights(h, H);
  const rows = new Float32Array(h * W * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < W; x++) {
      for (const [j, wt] of xs[x]) {
        const i = (y * w + j) * 4, o = (y * W + x) * 3;
        rows[o] += wt * rgba[i];
        rows[o + 1] += wt * rgba[i + 1];
        rows[o + 2] += wt * rgba[i + 2];
      }
    }
  }
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const px = [0, 0, 0];
      for (const [j, wt] of ys[y]) {
        const i = (j * W + x) * 3;
        px[0] += wt * rows[i];
        px[1] += wt * rows[i + 1];
        px[2] += wt * rows[i + 2];
      }
      const o = off + (y * W + x) * channels;
      if (channels === 1) {
        out[o] = Math.round(0.299 * px[0] + 0.587 * px[1] + 0.114 * px[2]);
      } else {
        out[o] = Math.round(px[0]);
        out[o + 1] = Math.round(px[1]);
        out[o + 2] = Math.round(px[2]);
      }
    }
  }
}

export interface ImageFolderOptions {
  /** Output size; default 32x32. */
  height?: number;
  width?: number;
  /** 1 or 3; default 3. */
  channels?: number;
  /** Class names in label order; default: the sub-folder names, sorted. */
  classNames?: string[];
}

/** Indexes `root/<class>/<image>` and returns a lazily decoded dataset. */
export function loadImageFolder(root: string, opts: ImageFolderOptions = {}): ImageDataset {
  if (!nodeFs.existsSync(root) || !nodeFs.statSync(root).isDirectory()) throw new DataError(`image folder '${root}' does not exist or is not a directory`);
  const H = opts.height ?? 32, W = opts.width ?? 32, C = opts.channels ?? 3;
  if (C !== 1 && C !== 3) throw new DataError(`image folder: channels must be 1 or 3, got ${C}`);
  const dirs = nodeFs.readdirSync(root).filter((d) => nodeFs.statSync(nodePath.join(root, d)).isDirectory()).sort();
  const classNames = opts.classNames ?? dirs;
  if (classNames.length < 2) {
    throw new DataError(`image folder '${root}': expected one sub-folder per class (at least 2), found ${classNames.length}`);
  }
  const files: string[] = [];
  const labels: number[] = [];
  classNames.forEach((cls, label) => {
    const d = nodePath.join(root, cls);
    if (!nodeFs.existsSync(d)) throw new DataError(`image folder '${root}': class folder '${cls}' is missing`);
    for (const f of nodeFs.readdirSync(d).sort()) {
      if (EXTS.has(nodePath.extname(f).toLowerCase())) {
        files.push(nodePath.join(d, f));
        labels.push(label);
      }
    }
  });
  if (files.length === 0) throw new DataError(`image folder '${root}': no .png/.jpg/.jpeg files in its class folders`);
  const per = H * W * C;
  return {
    name: `folder:${root}`, height: H, width: W, channels: C, numClasses: classNames.length, classNames,
    size: files.length, labels: Int32Array.from(labels),
    readImages: async (indices, out) => {
      for (let k = 0; k < indices.length; k++) {
        const f = files[indices[k]];
        const img = decodeImage(await nodeFsP.readFile(f), f);
        resizeInto(img, H, W, C, out, k * per);
      }
    },
  };
}

/** Reads a whole lazily-decoded dataset into memory (for small folders). */
export async function materialise(ds: ImageDataset): Promise<Uint8Array> {
  const per = ds.height * ds.width * ds.channels;
  const out = new Uint8Array(ds.size * per);
  const idx = Array.from({length: ds.size}, (_, i) => i);
  await ds.readImages(idx, out);
  return out;
}

