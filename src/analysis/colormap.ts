/**
 * Colour maps for the analyses. Attention from softmax is >= 0, but KArAt's σ̂(S) can be
 * negative: signed data use the diverging map (blue < 0, white = 0, red > 0) on a range
 * symmetric about zero, so the colour of zero is always white; non-negative data use the
 * sequential map. Colours are interpolated linearly in sRGB between control points: the
 * diverging points are ColorBrewer's 11-class RdBu (reversed), the sequential ones are
 * samples of matplotlib's viridis.
 */
export type RGB = [number, number, number];

export interface Colormap {
  name: string;
  /** True when the map is meant for signed data with 0 at the centre. */
  diverging: boolean;
  /** Colour of t in [0, 1] (clamped). */
  at(t: number): RGB;
}

function hex(h: string): RGB {
  return [parseInt(h.slice(1, 3), 16), parseInt(h.slice(3, 5), 16), parseInt(h.slice(5, 7), 16)];
}

function interpolated(name: string, diverging: boolean, stops: string[]): Colormap {
  const pts = stops.map(hex);
  return {
    name,
    diverging,
    at(t: number): RGB {
      const x = Number.isFinite(t) ? Math.min(1, Math.max(0, t)) : 0.5;
      const f = x * (pts.length - 1);
      const i = Math.min(pts.length - 2, Math.floor(f));
      const w = f - i;
      const a = pts[i], b = pts[i + 1];
      return [0, 1, 2].map(c => Math.round(a[c] + (b[c] - a[c]) * w)) as RGB;
    },
  };
}

/** Blue (negative) – white (0) – red (positive). */
export const DIVERGING: Colormap = interpolated('RdBu (blue < 0 < red)', true, [
  '#053061', '#2166ac', '#4393c3', '#92c5de', '#d1e5f0', '#f7f7f7',
  '#fddbc7', '#f4a582', '#d6604d', '#b2182b', '#67001f',
]);

/** Dark purple (low) to yellow (high). */
export const SEQUENTIAL: Colormap = interpolated('viridis', false, [
  '#440154', '#482878', '#3e4989', '#31688e', '#26828e', '#1f9e89', '#35b779', '#6ece58',
  '#b5de2b', '#fde725',
]);

export interface ColorScale {
  colormap: Colormap;
  min: number;
  max: number;
  /** Maps a value to [0, 1]. */
  normalise(v: number): number;
  color(v: number): RGB;
}

/**
 * The scale for `values`: diverging on [−m, m] with m = max |v| when any value is negative
 * (or when `signed` is forced true), else sequential on [min, max].
 */
export function autoScale(values: ArrayLike<number>, signed?: boolean): ColorScale {
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (!Number.isFinite(lo)) {
    lo = 0;
    hi = 1;
  }
  const useSigned = signed ?? lo < 0;
  if (useSigned) {
    const m = Math.max(Math.abs(lo), Math.abs(hi)) || 1;
    return scale(DIVERGING, -m, m);
  }
  return scale(SEQUENTIAL, lo, hi > lo ? hi : lo + 1);
}

export function scale(colormap: Colormap, min: number, max: number): ColorScale {
  const span = max - min || 1;
  const normalise = (v: number) => (v - min) / span;
  return {colormap, min, max, normalise, color: (v: number) => colormap.at(normalise(v))};
}

export function rgbHex([r, g, b]: RGB): string {
  return '#' + [r, g, b].map(c => c.toString(16).padStart(2, '0')).join('');
}
