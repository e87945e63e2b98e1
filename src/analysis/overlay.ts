/**
 * Renders a map over patches (e.g. the class token's attention, N − 1 values on a gh x gw
 * patch grid) as a colour overlay on the image, as RGBA pixels (then encodePNG).
 * Signed maps (any negative value, as KArAt's can be) use the diverging scale symmetric about
 * 0; non-negative maps the sequential one (see colormap.ts). A colour bar strip is appended
 * below the image: its left end is the scale's minimum, its right end the maximum, and a black
 * tick marks 0 on a diverging scale.
 */
import {autoScale, ColorScale} from './colormap';

export interface RGBImage {
  width: number;
  height: number;
  /** width·height·3 bytes, row-major RGB. */
  data: Uint8Array | Uint8ClampedArray;
}

export interface OverlayOptions {
  /** Patch grid [rows, cols] of the map (default: square). */
  grid?: [number, number];
  /** Output magnification of the image (nearest neighbour), default 4. */
  scale?: number;
  /** Opacity of the overlay, default 0.6. */
  alpha?: number;
  /** Colour scale (default autoScale of the map). */
  colorScale?: ColorScale;
  /** Smooth the map bilinearly over the image (default true); false shows patch blocks. */
  smooth?: boolean;
  /** Height of the colour bar strip in output pixels (default 10; 0 for none). */
  barHeight?: number;
}

export interface Overlay {
  width: number;
  height: number;
  /** RGBA pixels. */
  rgba: Uint8ClampedArray;
  scale: ColorScale;
}

/** Overlay of `map` (grid rows x cols values, row-major) on `image`. */
export function renderOverlay(image: RGBImage, map: ArrayLike<number>, options: OverlayOptions = {}): Overlay {
  const side = Math.round(Math.sqrt(map.length));
  const [gh, gw] = options.grid ?? [side, side];
  if (gh * gw !== map.length) {
    throw new Error(`renderOverlay: map has ${map.length} values, grid ${gh}x${gw} needs ${gh * gw}`);
  }
  if (image.data.length !== image.width * image.height * 3) {
    throw new Error(`renderOverlay: image data must have width·height·3 = ${image.width * image.height * 3} bytes, got ${image.data.length}`);
  }
  const k = options.scale ?? 4;
  const alpha = options.alpha ?? 0.6;
  const sc = options.colorScale ?? autoScale(map);
  const smooth = options.smooth ?? true;
  const barH = options.barHeight ?? 10;
  const W = image.width * k, H = image.height * k;
  const rgba = new Uint8ClampedArray(W * (H + (barH > 0 ? barH + 2 : 0)) * 4).fill(255);
  const sample = (u: number, v: number): number => {
    // u, v in map-cell coordinates (cell centres at integer + 0.5).
    if (!smooth) return map[Math.min(gh - 1, Math.floor(v)) * gw + Math.min(gw - 1, Math.floor(u))];
    const x = Math.min(gw - 1, Math.max(0, u - 0.5)), y = Math.min(gh - 1, Math.max(0, v - 0.5));
    const i0 = Math.floor(x), j0 = Math.floor(y);
    const i1 = Math.min(gw - 1, i0 + 1), j1 = Math.min(gh - 1, j0 + 1);
    const fx = x - i0, fy = y - j0;
    return (map[j0 * gw + i0] * (1 - fx) + map[j0 * gw + i1] * fx) * (1 - fy) +
        (map[j1 * gw + i0] * (1 - fx) + map[j1 * gw + i1] * fx) * fy;
  };
  for (let y = 0; y < H; y++) {
    const iy = Math.floor(y / k);
    for (let x = 0; x < W; x++) {
      const ix = Math.floor(x / k);
      const src = (iy * image.width + ix) * 3;
      const c = sc.color(sample((x + 0.5) / W * gw, (y + 0.5) / H * gh));
      const o = (y * W + x) * 4;
      for (let ch = 0; ch < 3; ch++) rgba[o + ch] = (1 - alpha) * image.data[src + ch] + alpha * c[ch];
      rgba[o + 3] = 255;
    }
  }
  if (barH > 0) {
    const zeroX = sc.colormap.diverging ? Math.round(sc.normalise(0) * (W - 1)) : -1;
    for (let y = H + 2; y < H + 2 + barH; y++) {
      for (let x = 0; x < W; x++) {
        const c = sc.colormap.at(x / Math.max(1, W - 1));
        const o = (y * W + x) * 4;
        const tick = x === zeroX;
        rgba[o] = tick ? 0 : c[0];
        rgba[o + 1] = tick ? 0 : c[1];
        rgba[o + 2] = tick ? 0 : c[2];
        rgba[o + 3] = 255;
      }
    }
  }
  return {width: W, height: H + (barH > 0 ? barH + 2 : 0), rgba, scale: sc};
}
