/**
 * Image-folder resizing (src/data/image_folder.ts resizeInto) on known patterns: a shrink by
 * more than 2x area-averages before the bilinear step, so a fine checkerboard becomes grey
 * instead of aliasing to black and white, and a ramp keeps its block means.
 */
import * as assert from 'node:assert/strict';

import {resizeInto} from '../src/data/image_folder';

/** An RGBA image from a function of (x, y) giving a grey level. */
function image(width: number, height: number, level: (x: number, y: number) => number) {
  const rgba = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) rgba.set([level(x, y), level(x, y), level(x, y), 255], (y * width + x) * 4);
  }
  return {width, height, rgba};
}

const checkerboard = (size: number) => image(size, size, (x, y) => ((x + y) % 2 === 0 ? 0 : 255));

function resize(img: ReturnType<typeof image>, H: number, W: number, channels = 3): Uint8Array {
  const out = new Uint8Array(H * W * channels);
  resizeInto(img, H, W, channels, out, 0);
  return out;
}

describe('data: image resizing', () => {
  it('a 1-pixel checkerboard shrunk 5x is grey (each 5x5 block holds 12 or 13 white pixels)', () => {
    const out = resize(checkerboard(40), 8, 8);
    // 12/25 and 13/25 of 255; bilinear sampling alone would pick single pixels: 0 or 255.
    for (const v of out) assert.ok(v === 122 || v === 133, `pixel ${v}`);
  });

  it('a checkerboard shrunk by a non-integer 3.5x stays near grey (bilinear alone gives 96 and 159)', () => {
    const out = resize(checkerboard(28), 8, 8, 1);
    for (const v of out) assert.ok(v >= 110 && v <= 145, `pixel ${v}`);
  });

  it('a horizontal ramp shrunk 5x keeps the mean of each 5-pixel block', () => {
    const out = resize(image(40, 10, (x) => 6 * x), 2, 8, 1);
    for (let y = 0; y < 2; y++) {
      for (let x = 0; x < 8; x++) assert.ok(Math.abs(out[y * 8 + x] - (30 * x + 12)) <= 1, `(${x}, ${y}): ${out[y * 8 + x]}`);
    }
  });

  it('a shrink of at most 2x and an enlargement stay plain bilinear', () => {
    // 2x: each output pixel is the mean of a 2x2 block, which bilinear reaches exactly.
    for (const v of resize(checkerboard(16), 8, 8)) assert.equal(v, 128);
    // 4x4 -> 8x8 of a constant image is that constant.
    for (const v of resize(image(4, 4, () => 77), 8, 8)) assert.equal(v, 77);
  });
});
