/**
 * An image-list dataset for fine-tuning on a user's own images (browser-safe: no Node built-in).
 *
 * The images come as pixel arrays — an ImageData (or any {width, height, data} with RGBA or RGB
 * or grey bytes), or a tensor [height, width, 1|3|4] of values 0–255 — each with a class index.
 * Every image is checked (a valid size, no more pixels than `maxPixels`, pixel data of the
 * right length and range), centre-cropped to a square and resized to the model's input by
 * averaging the source pixels under each output pixel (area resampling, so a large photo does
 * not alias), and stored as RGB bytes. Problems are ImageListError with a `code` naming them.
 */
import * as tf from '@tensorflow/tfjs-core';

import {Rng} from './rng';

export type ImageListErrorCode =
    'not-an-image' | 'image-too-large' | 'too-few-classes' | 'too-many-classes' | 'empty-class' | 'bad-label' | 'too-few-images';

/** A problem with the images or labels given to imageList / splitHeldOut; `code` names it. */
export class ImageListError extends Error {
  constructor(readonly code: ImageListErrorCode, message: string, readonly index: number | null = null) {
    super(message);
    this.name = 'ImageListError';
  }
}

/** Pixels: ImageData, or {width, height, data} with 1, 3 or 4 bytes per pixel (row-major, interleaved). */
export interface PixelArray {
  width: number;
  height: number;
  data: ArrayLike<number>;
}

export type ImageInput = PixelArray | tf.Tensor;

export interface ImageListOptions {
  /** Class names; the labels index them. Between 2 and maxClasses classes, each with an image. */
  classNames: string[];
  /** Side of the square images the model takes (e.g. 32). */
  imageSize: number;
  /** Largest image accepted, in pixels (default 4096 x 4096). */
  maxPixels?: number;
  /** Most classes accepted (default 10). */
  maxClasses?: number;
}

export interface ImageList {
  /** RGB bytes, [count, imageSize, imageSize, 3] row-major. */
  images: Uint8Array;
  labels: Int32Array;
  classNames: string[];
  imageSize: number;
  count: number;
}

export const DEFAULT_MAX_PIXELS = 4096 * 4096;

function describe(x: unknown): string {
  if (x == null) return String(x);
  if (x instanceof tf.Tensor) return `a tensor of shape [${x.shape}]`;
  if (typeof x !== 'object') return `a ${typeof x}`;
  return `an object with keys ${Object.keys(x as object).slice(0, 5).join(', ') || '(none)'}`;
}

/** Reads one image into {width, height, channels, data}; throws ImageListError. */
function pixelsOf(img: ImageInput, i: number, maxPixels: number): {w: number, h: number, c: number, data: ArrayLike<number>} {
  const bad = (why: string) => new ImageListError('not-an-image', `image ${i} is not an image: ${why}`, i);
  let w: number, h: number, c: number, data: ArrayLike<number>;
  if (img instanceof tf.Tensor) {
    if (img.rank !== 3 || ![1, 3, 4].includes(img.shape[2] as number)) throw bad(`expected a tensor [height, width, 1|3|4], got shape [${img.shape}]`);
    [h, w, c] = img.shape as [number, number, number];
    if (w * h > maxPixels) throw new ImageListError('image-too-large', `image ${i} is ${w} x ${h} pixels, more than the ${maxPixels} accepted`, i);
    data = img.dataSync();
  } else {
    if (img == null || typeof img !== 'object' || !('width' in img) || !('height' in img) || !('data' in img)) {
      throw bad(`expected ImageData, {width, height, data} or a tensor, got ${describe(img)}`);
    }
    w = img.width;
    h = img.height;
    data = img.data;
    if (!(Number.isInteger(w) && w > 0 && Number.isInteger(h) && h > 0)) throw bad(`width and height must be positive integers, got ${w} x ${h}`);
    if (w * h > maxPixels) throw new ImageListError('image-too-large', `image ${i} is ${w} x ${h} pixels, more than the ${maxPixels} accepted`, i);
    if (data == null || typeof (data as ArrayLike<number>).length !== 'number') throw bad(`its data is not an array of pixels`);
    const per = data.length / (w * h);
    if (![1, 3, 4].includes(per)) throw bad(`${data.length} values for ${w} x ${h} pixels (expected 1, 3 or 4 per pixel)`);
    c = per;
  }
  return {w, h, c, data};
}

/**
 * Centre-crops the largest square and resizes it to size x size RGB by area averaging
 * (each output pixel is the mean of the source pixels it covers, fractional edges weighted).
 */
export function resizeToSquareRGB(src: {w: number, h: number, c: number, data: ArrayLike<number>}, size: number, out: Uint8Array, offset = 0, index = 0): void {
  const {w, h, c, data} = src;
  const side = Math.min(w, h), x0 = (w - side) / 2, y0 = (h - side) / 2;
  const scale = side / size;
  const acc = new Float64Array(3);
  for (let oy = 0; oy < size; oy++) {
    const sy0 = y0 + oy * scale, sy1 = sy0 + scale;
    for (let ox = 0; ox < size; ox++) {
      const sx0 = x0 + ox * scale, sx1 = sx0 + scale;
      acc.fill(0);
      let wsum = 0;
      for (let y = Math.floor(sy0); y < Math.ceil(sy1); y++) {
        const wy = Math.min(y + 1, sy1) - Math.max(y, sy0);
        if (wy <= 0) continue;
        for (let x = Math.floor(sx0); x < Math.ceil(sx1); x++) {
          const wx = Math.min(x + 1, sx1) - Math.max(x, sx0);
          if (wx <= 0) continue;
          const wgt = wx * wy, p = (y * w + x) * c;
          for (let ch = 0; ch < 3; ch++) {
            const v = Number(data[p + (c === 1 ? 0 : ch)]);
            if (!(v >= 0 && v <= 255)) {
              throw new ImageListError('not-an-image', `image ${index} has a pixel value ${v} outside 0–255`, index);
            }
            acc[ch] += wgt * v;
          }
          wsum += wgt;
        }
      }
      const o = offset + (oy * size + ox) * 3;
      for (let ch = 0; ch < 3; ch++) out[o + ch] = Math.round(acc[ch] / wsum);
    }
  }
}

/**
 * Builds the dataset: checks the classes (2 to maxClasses, each with at least one image) and
 * every image, and resizes the images to imageSize x imageSize RGB. Throws ImageListError.
 */
export function imageList(items: Array<{image: ImageInput, label: number}>, options: ImageListOptions): ImageList {
  const {classNames, imageSize} = options;
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  const maxClasses = options.maxClasses ?? 10;
  if (!(Number.isInteger(imageSize) && imageSize > 0)) throw new ImageListError('not-an-image', `imageSize must be a positive integer, got ${imageSize}`);
  if (!Array.isArray(classNames) || classNames.length < 2) {
    throw new ImageListError('too-few-classes', `fine-tuning needs at least 2 classes, got ${Array.isArray(classNames) ? classNames.length : 'none'}`);
  }
  if (classNames.length > maxClasses) throw new ImageListError('too-many-classes', `at most ${maxClasses} classes, got ${classNames.length}`);
  if (!Array.isArray(items)) throw new ImageListError('too-few-images', `expected an array of {image, label}, got ${describe(items)}`);
  const counts = new Array<number>(classNames.length).fill(0);
  items.forEach((it, i) => {
    const l = it?.label;
    if (!(Number.isInteger(l) && l >= 0 && l < classNames.length)) {
      throw new ImageListError('bad-label', `image ${i} has label ${JSON.stringify(l)}; expected 0 to ${classNames.length - 1}`, i);
    }
    counts[l]++;
  });
  const empty = classNames.filter((_, k) => counts[k] === 0);
  if (empty.length) {
    throw new ImageListError('empty-class', `class${empty.length > 1 ? 'es' : ''} ${empty.map((n) => `'${n}'`).join(', ')} ha${empty.length > 1 ? 've' : 's'} no images`);
  }
  const P = imageSize * imageSize * 3;
  const images = new Uint8Array(items.length * P);
  const labels = new Int32Array(items.length);
  items.forEach((it, i) => {
    resizeToSquareRGB(pixelsOf(it.image, i, maxPixels), imageSize, images, i * P, i);
    labels[i] = it.label;
  });
  return {images, labels, classNames: [...classNames], imageSize, count: items.length};
}

function subset(list: ImageList, idx: number[]): ImageList {
  const P = list.imageSize * list.imageSize * 3;
  const images = new Uint8Array(idx.length * P), labels = new Int32Array(idx.length);
  idx.forEach((k, i) => {
    images.set(list.images.subarray(k * P, (k + 1) * P), i * P);
    labels[i] = list.labels[k];
  });
  return {images, labels, classNames: list.classNames, imageSize: list.imageSize, count: idx.length};
}

/**
 * Splits off a held-out set, stratified: from each class with at least 2 images,
 * round(fraction x its count) images (at least 1), chosen at random with `seed`; every class
 * keeps at least one training image. Throws ImageListError when no class can give an image.
 */
export function splitHeldOut(list: ImageList, options: {fraction?: number, seed?: number} = {}): {train: ImageList, heldOut: ImageList} {
  const fraction = options.fraction ?? 0.25;
  if (!(fraction > 0 && fraction < 1)) throw new ImageListError('too-few-images', `the held-out fraction must be in (0, 1), got ${fraction}`);
  const rng = new Rng(options.seed ?? 1);
  const train: number[] = [], held: number[] = [];
  list.classNames.forEach((_, k) => {
    const idx: number[] = [];
    for (let i = 0; i < list.count; i++) if (list.labels[i] === k) idx.push(i);
    for (let i = idx.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [idx[i], idx[j]] = [idx[j], idx[i]];
    }
    const n = idx.length < 2 ? 0 : Math.min(idx.length - 1, Math.max(1, Math.round(fraction * idx.length)));
    held.push(...idx.slice(0, n));
    train.push(...idx.slice(n));
  });
  if (held.length === 0) {
    throw new ImageListError('too-few-images', `no class has 2 or more images, so none can be held out to measure accuracy; add images`);
  }
  return {train: subset(list, train.sort((a, b) => a - b)), heldOut: subset(list, held.sort((a, b) => a - b))};
}
