/**
 * "A folder of images per class" datasets for users' own data:
 *
 *     root/<class name>/<any name>.png|.jpg|.jpeg
 *
 * Images are decoded with pure-JS decoders (pngjs, jpeg-js; loaded lazily, so the rest of
 * the package works without them), converted to the requested channel count and resized
 * (bilinear) to a fixed size. Decoding happens per batch inside the prefetching loader,
 * so memory stays bounded by the prefetch depth, not the dataset size.
 */

import {DataError, ImageDataset} from './dataset';
import {nodeFs, nodeFsP, nodeModuleApi, nodePath} from './node';

const EXTS = new Set(['.png', '.jpg', '.jpeg']);

interface Decoded {
  width: number;
  height: number;
  /** RGBA, 4 bytes per pixel */
  rgba: Uint8Array;
}

type PngModule = {PNG: {sync: {read(b: Buffer): {width: number, height: number, data: Buffer}}}};
type JpegModule = {decode(b: Buffer, o: {useTArray: boolean, formatAsRGBA: boolean, maxMemoryUsageInMB?: number, maxResolutionInMP?: number}): {width: number, height: number, data: Uint8Array}};

let req: NodeRequire | null = null;
function load<T>(name: string): T {
  req = req ?? nodeModuleApi().createRequire(nodePath().join(process.cwd(), 'package.json'));
  try {
    return req(name) as T;
  } catch {
    try {
      return nodeModuleApi().createRequire(__filenameSafe())(name) as T;
    } catch {
      throw new DataError(`image folders need the '${name}' package: npm install ${name}`);
    }
  }
}
function __filenameSafe(): string {
  // Resolves relative to this package when bundled as CommonJS; falls back to cwd.
  return typeof __filename === 'string' ? __filename : nodePath().join(process.cwd(), 'noop.js');
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
export function decodeImage(buf: Uint8Array, source: string): Decoded {
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

/** Bilinear resize of RGBA to HxW, writing `channels` (1 = luminance, 3 = RGB) to `out` at `off`. */
export function resizeInto(img: Decoded, H: number, W: number, channels: number, out: Uint8Array, off: number): void {
  const {width: w, height: h, rgba} = img;
  const sy = h / H, sx = w / W;
  for (let y = 0; y < H; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), h - 1);
    const y0 = Math.floor(fy), y1 = Math.min(y0 + 1, h - 1), wy = fy - y0;
    for (let x = 0; x < W; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), w - 1);
      const x0 = Math.floor(fx), x1 = Math.min(x0 + 1, w - 1), wx = fx - x0;
      const px = [0, 0, 0];
      for (let c = 0; c < 3; c++) {
        const a = rgba[(y0 * w + x0) * 4 + c], b = rgba[(y0 * w + x1) * 4 + c];
        const cc = rgba[(y1 * w + x0) * 4 + c], d = rgba[(y1 * w + x1) * 4 + c];
        px[c] = (a * (1 - wx) + b * wx) * (1 - wy) + (cc * (1 - wx) + d * wx) * wy;
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
  if (!nodeFs().existsSync(root) || !nodeFs().statSync(root).isDirectory()) throw new DataError(`image folder '${root}' does not exist or is not a directory`);
  const H = opts.height ?? 32, W = opts.width ?? 32, C = opts.channels ?? 3;
  if (C !== 1 && C !== 3) throw new DataError(`image folder: channels must be 1 or 3, got ${C}`);
  const dirs = nodeFs().readdirSync(root).filter((d) => nodeFs().statSync(nodePath().join(root, d)).isDirectory()).sort();
  const classNames = opts.classNames ?? dirs;
  if (classNames.length < 2) {
    throw new DataError(`image folder '${root}': expected one sub-folder per class (at least 2), found ${classNames.length}`);
  }
  const files: string[] = [];
  const labels: number[] = [];
  classNames.forEach((cls, label) => {
    const d = nodePath().join(root, cls);
    if (!nodeFs().existsSync(d)) throw new DataError(`image folder '${root}': class folder '${cls}' is missing`);
    for (const f of nodeFs().readdirSync(d).sort()) {
      if (EXTS.has(nodePath().extname(f).toLowerCase())) {
        files.push(nodePath().join(d, f));
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
        const img = decodeImage(await nodeFsP().readFile(f), f);
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

