/**
 * Resampling a learned position embedding to another patch grid, as timm's
 * `resample_abs_pos_embed` does when fine-tuning at another resolution: the grid rows are
 * resized as an image (bicubic or bilinear, align_corners=False, no antialiasing) and prefix
 * tokens such as the class token are kept unchanged.
 */
import * as tf from '@tensorflow/tfjs-core';

import {KArAtArgumentError} from '../../core/validate';

export type PosEmbedInterpolation = 'bicubic' | 'bilinear';

/** PyTorch's cubic convolution kernel coefficient (A = -0.75, as F.interpolate 'bicubic'). */
const CUBIC_A = -0.75;
function cubicNear(x: number): number {  // |x| <= 1
  return ((CUBIC_A + 2) * x - (CUBIC_A + 3)) * x * x + 1;
}
function cubicFar(x: number): number {  // 1 < |x| < 2
  return ((CUBIC_A * x - 5 * CUBIC_A) * x + 8 * CUBIC_A) * x - 4 * CUBIC_A;
}

/**
 * Interpolation taps of a 1-D resize from `inSize` to `outSize` samples with half-pixel
 * centres (align_corners=False): output o reads input position (o + 0.5)·in/out − 0.5.
 * Bilinear clamps that position at 0; bicubic reads 4 neighbours, indices clamped to the edge.
 */
export function resizeTaps(inSize: number, outSize: number, mode: PosEmbedInterpolation): Array<{index: number[], weight: number[]}> {
  const scale = inSize / outSize;
  const clamp = (i: number) => Math.min(Math.max(i, 0), inSize - 1);
  const taps: Array<{index: number[], weight: number[]}> = [];
  for (let o = 0; o < outSize; o++) {
    let src = (o + 0.5) * scale - 0.5;
    if (mode === 'bilinear') {
      src = Math.max(src, 0);
      const i0 = Math.floor(src), t = src - i0;
      taps.push({index: [clamp(i0), clamp(i0 + 1)], weight: [1 - t, t]});
    } else {
      const f = Math.floor(src), t = src - f;
      taps.push({
        index: [clamp(f - 1), clamp(f), clamp(f + 1), clamp(f + 2)],
        weight: [cubicFar(t + 1), cubicNear(t), cubicNear(1 - t), cubicFar(2 - t)],
      });
    }
  }
  return taps;
}

/**
 * Resizes a grid of vectors [inH, inW, C] (row-major) to [outH, outW, C], separably, in float64.
 */
export function resizeGrid(data: ArrayLike<number>, inHW: [number, number], outHW: [number, number], channels: number,
                           mode: PosEmbedInterpolation): Float64Array {
  const [ih, iw] = inHW, [oh, ow] = outHW;
  if (data.length !== ih * iw * channels) {
    throw new KArAtArgumentError(`resizeGrid: data has ${data.length} values, expected ${ih}x${iw}x${channels} = ${ih * iw * channels}`);
  }
  const th = resizeTaps(ih, oh, mode), tw = resizeTaps(iw, ow, mode);
  // along the width: [ih, ow, C]
  const mid = new Float64Array(ih * ow * channels);
  for (let y = 0; y < ih; y++) {
    for (let x = 0; x < ow; x++) {
      const {index, weight} = tw[x];
      const o = (y * ow + x) * channels;
      for (let k = 0; k < index.length; k++) {
        const i = (y * iw + index[k]) * channels, w = weight[k];
        for (let c = 0; c < channels; c++) mid[o + c] += w * data[i + c];
      }
    }
  }
  // along the height: [oh, ow, C]
  const out = new Float64Array(oh * ow * channels);
  for (let y = 0; y < oh; y++) {
    const {index, weight} = th[y];
    for (let k = 0; k < index.length; k++) {
      const w = weight[k], row = index[k] * ow * channels, o = y * ow * channels;
      for (let j = 0; j < ow * channels; j++) out[o + j] += w * mid[row + j];
    }
  }
  return out;
}

/**
 * Resamples a learned position embedding of shape [1, prefix + gh·gw, dim] to a new patch
 * grid, shape [1, prefix + gh'·gw', dim]. The `prefixTokens` leading rows (class token) are
 * kept; the grid rows are resized as an image (timm's resample_abs_pos_embed with antialias off).
 */
export function resamplePositionEmbedding(posEmbed: tf.Tensor, oldGrid: [number, number], newGrid: [number, number],
                                          options: {prefixTokens?: number, interpolation?: PosEmbedInterpolation} = {}): tf.Tensor3D {
  const prefix = options.prefixTokens ?? 1;
  const mode = options.interpolation ?? 'bicubic';
  if (mode !== 'bicubic' && mode !== 'bilinear') {
    throw new KArAtArgumentError(`resamplePositionEmbedding: argument 'interpolation' must be 'bicubic' or 'bilinear', got ${JSON.stringify(mode)}`);
  }
  const s = posEmbed.shape;
  if (s.length !== 3 || s[0] !== 1 || s[1] !== prefix + oldGrid[0] * oldGrid[1]) {
    throw new KArAtArgumentError(
        `resamplePositionEmbedding: argument 'posEmbed' must have shape [1, ${prefix} + ${oldGrid[0]}x${oldGrid[1]}, dim], got [${s}]`);
  }
  const dim = s[2];
  const all = posEmbed.dataSync() as Float32Array;
  const grid = resizeGrid(all.subarray(prefix * dim), oldGrid, newGrid, dim, mode);
  const out = new Float32Array((prefix + newGrid[0] * newGrid[1]) * dim);
  out.set(all.subarray(0, prefix * dim));
  out.set(grid, prefix * dim);
  return tf.tensor3d(out, [1, prefix + newGrid[0] * newGrid[1], dim]);
}
