/**
 * Self-contained SVG plots (strings, no DOM, no dependency): line plots (linear or log y),
 * overlaid histograms, heat maps with contour lines (marching squares) and an optional path,
 * each with axes, ticks, title, legend and a colour bar where relevant.
 */
import {autoScale, ColorScale, rgbHex} from './colormap';

export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2',
  '#7f7f7f', '#bcbd22', '#17becf'];

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Short number format for tick labels. */
export function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(1).replace('e+', 'e');
  return String(Number(v.toPrecision(3)));
}

/** About `count` round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, count);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map(f => f * mag).find(s => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) {
    out.push(Math.abs(t) < step * 1e-9 ? 0 : Number(t.toPrecision(12)));
  }
  return out;
}

export interface Frame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

function frame(width: number, height: number, extraRight = 0): Frame {
  return {width, height, left: 64, right: width - 16 - extraRight, top: 36, bottom: height - 48};
}

function open(f: Frame, title: string): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${f.width}" height="${f.height}" ` +
        `viewBox="0 0 ${f.width} ${f.height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${f.width}" height="${f.height}" fill="#ffffff"/>`,
    `<text x="${f.width / 2}" y="20" text-anchor="middle" font-size="14">${escapeXml(title)}</text>`,
  ];
}

function axes(f: Frame, xTicks: number[], xPos: (v: number) => number, yTicks: number[],
              yPos: (v: number) => number, xLabel: string, yLabel: string,
              yFmt: (v: number) => string = fmt, gridLines = true): string[] {
  const out = [
    `<rect x="${f.left}" y="${f.top}" width="${f.right - f.left}" height="${f.bottom - f.top}" ` +
        `fill="none" stroke="#333"/>`,
  ];
  for (const t of xTicks) {
    const x = xPos(t);
    if (x < f.left - 0.5 || x > f.right + 0.5) continue;
    out.push(`<line x1="${x.toFixed(1)}" y1="${f.bottom}" x2="${x.toFixed(1)}" y2="${f.bottom + 5}" stroke="#333"/>`);
    out.push(`<text x="${x.toFixed(1)}" y="${f.bottom + 18}" text-anchor="middle">${fmt(t)}</text>`);
  }
  for (const t of yTicks) {
    const y = yPos(t);
    if (y < f.top - 0.5 || y > f.bottom + 0.5) continue;
    out.push(`<line x1="${f.left - 5}" y1="${y.toFixed(1)}" x2="${f.left}" y2="${y.toFixed(1)}" stroke="#333"/>`);
    if (gridLines) out.push(`<line x1="${f.left}" y1="${y.toFixed(1)}" x2="${f.right}" y2="${y.toFixed(1)}" stroke="#eee"/>`);
    out.push(`<text x="${f.left - 8}" y="${(y + 4).toFixed(1)}" text-anchor="end">${yFmt(t)}</text>`);
  }
  out.push(`<text x="${(f.left + f.right) / 2}" y="${f.height - 10}" text-anchor="middle">${escapeXml(xLabel)}</text>`);
  const yc = (f.top + f.bottom) / 2;
  out.push(`<text x="14" y="${yc}" text-anchor="middle" transform="rotate(-90 14 ${yc})">${escapeXml(yLabel)}</text>`);
  return out;
}

function legend(f: Frame, items: Array<{name: string, color: string, dash?: string}>): string[] {
  if (items.length === 0) return [];
  const out: string[] = [];
  const w = Math.min(260, 30 + 7 * Math.max(...items.map(i => i.name.length)));
  const x0 = f.right - w - 6, y0 = f.top + 6;
  out.push(`<rect x="${x0}" y="${y0}" width="${w}" height="${items.length * 16 + 6}" fill="#fff" ` +
           `fill-opacity="0.85" stroke="#ccc"/>`);
  items.forEach((it, i) => {
    const y = y0 + 13 + i * 16;
    out.push(`<line x1="${x0 + 6}" y1="${y - 4}" x2="${x0 + 24}" y2="${y - 4}" stroke="${it.color}" ` +
             `stroke-width="2"${it.dash ? ` stroke-dasharray="${it.dash}"` : ''}/>`);
    out.push(`<text x="${x0 + 28}" y="${y}">${escapeXml(it.name)}</text>`);
  });
  return out;
}

export interface LineSeries {
  name: string;
  x: ArrayLike<number>;
  y: ArrayLike<number>;
  color?: string;
  /** SVG stroke-dasharray, e.g. '4 3'. */
  dash?: string;
}

export interface LinePlotOptions {
  title: string;
  xLabel?: string;
  yLabel?: string;
  series: LineSeries[];
  /** Logarithmic y axis (non-positive values are left out). */
  logY?: boolean;
  width?: number;
  height?: number;
  /** Horizontal reference line (e.g. y = 0). */
  hline?: number;
  /** Extra lines of text under the title (e.g. a note on the data). */
  note?: string;
}

/** Line plot of one or more series. */
export function linePlot(o: LinePlotOptions): string {
  const f = frame(o.width ?? 640, o.height ?? 400);
  const ty = (v: number) => (o.logY ? Math.log10(v) : v);
  const ok = (v: number) => Number.isFinite(v) && (!o.logY || v > 0);
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const s of o.series) {
    for (let i = 0; i < s.x.length; i++) {
      if (!ok(s.y[i]) || !Number.isFinite(s.x[i])) continue;
      x0 = Math.min(x0, s.x[i]);
      x1 = Math.max(x1, s.x[i]);
      y0 = Math.min(y0, ty(s.y[i]));
      y1 = Math.max(y1, ty(s.y[i]));
    }
  }
  if (!Number.isFinite(x0)) {
    x0 = 0; x1 = 1; y0 = 0; y1 = 1;
  }
  if (o.hline != null && !o.logY) {
    y0 = Math.min(y0, o.hline);
    y1 = Math.max(y1, o.hline);
  }
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) {
    y0 -= 0.5;
    y1 += 0.5;
  }
  const pad = (y1 - y0) * 0.05;
  y0 -= pad;
  y1 += pad;
  const X = (v: number) => f.left + (v - x0) / (x1 - x0) * (f.right - f.left);
  const Y = (v: number) => f.bottom - (v - y0) / (y1 - y0) * (f.bottom - f.top);
  const out = open(f, o.title);
  if (o.note) out.push(`<text x="${f.width / 2}" y="32" text-anchor="middle" font-size="10" fill="#555">${escapeXml(o.note)}</text>`);
  const yTicks = o.logY ?
      Array.from({length: Math.floor(y1) - Math.ceil(y0) + 1}, (_, i) => Math.ceil(y0) + i) :
      niceTicks(y0, y1);
  out.push(...axes(f, niceTicks(x0, x1), X, yTicks, Y, o.xLabel ?? '', o.yLabel ?? '',
                   o.logY ? (v => fmt(Math.pow(10, v))) : fmt));
  if (o.hline != null && !o.logY) {
    out.push(`<line x1="${f.left}" y1="${Y(o.hline).toFixed(1)}" x2="${f.right}" y2="${Y(o.hline).toFixed(1)}" ` +
             `stroke="#999" stroke-dasharray="2 2"/>`);
  }
  const items: Array<{name: string, color: string, dash?: string}> = [];
  o.series.forEach((s, k) => {
    const color = s.color ?? PALETTE[k % PALETTE.length];
    const pts: string[] = [];
    for (let i = 0; i < s.x.length; i++) {
      if (!ok(s.y[i]) || !Number.isFinite(s.x[i])) continue;
      pts.push(`${X(s.x[i]).toFixed(1)},${Y(ty(s.y[i])).toFixed(1)}`);
    }
    out.push(`<polyline fill="none" stroke="${color}" stroke-width="1.6"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''} ` +
             `points="${pts.join(' ')}"><title>${escapeXml(s.name)}</title></polyline>`);
    items.push({name: s.name, color, dash: s.dash});
  });
  out.push(...legend(f, items));
  out.push('</svg>');
  return out.join('\n');
}

export interface HistogramSeries {
  name: string;
  values: ArrayLike<number>;
  color?: string;
}

export interface HistogramOptions {
  title: string;
  xLabel?: string;
  series: HistogramSeries[];
  /** Number of bins over the common range (default 60). */
  bins?: number;
  /** Plot densities (area 1 per series, default) instead of counts. */
  density?: boolean;
  /** Clip the common range to these quantiles of all values, e.g. [0.001, 0.999]. */
  range?: [number, number];
  width?: number;
  height?: number;
}

export interface Histogram {
  edges: number[];
  counts: number[];
}

/** Counts of `values` in `bins` equal bins over [lo, hi] (values outside are dropped). */
export function histogram(values: ArrayLike<number>, bins: number, lo: number, hi: number): Histogram {
  const counts = new Array<number>(bins).fill(0);
  const w = (hi - lo) / bins || 1;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!(v >= lo && v <= hi)) continue;
    counts[Math.min(bins - 1, Math.floor((v - lo) / w))]++;
  }
  return {edges: Array.from({length: bins + 1}, (_, i) => lo + i * w), counts};
}

/** Overlaid step histograms (density by default) of several value sets on a common range. */
export function histogramPlot(o: HistogramOptions): string {
  const f = frame(o.width ?? 640, o.height ?? 400);
  const bins = o.bins ?? 60;
  let lo = Infinity, hi = -Infinity;
  for (const s of o.series) {
    for (let i = 0; i < s.values.length; i++) {
      const v = s.values[i];
      if (Number.isFinite(v)) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
    }
  }
  if (o.range) [lo, hi] = o.range;
  if (!Number.isFinite(lo)) {
    lo = 0;
    hi = 1;
  }
  if (hi === lo) {
    lo -= 0.5;
    hi += 0.5;
  }
  const density = o.density ?? true;
  const hists = o.series.map(s => {
    const h = histogram(s.values, bins, lo, hi);
    const n = h.counts.reduce((a, b) => a + b, 0) || 1;
    const w = (hi - lo) / bins;
    return density ? h.counts.map(c => c / (n * w)) : h.counts;
  });
  const yMax = Math.max(1e-12, ...hists.flat()) * 1.08;
  const X = (v: number) => f.left + (v - lo) / (hi - lo) * (f.right - f.left);
  const Y = (v: number) => f.bottom - v / yMax * (f.bottom - f.top);
  const out = open(f, o.title);
  out.push(...axes(f, niceTicks(lo, hi), X, niceTicks(0, yMax), Y, o.xLabel ?? 'value',
                   density ? 'density' : 'count'));
  const items: Array<{name: string, color: string}> = [];
  hists.forEach((h, k) => {
    const color = o.series[k].color ?? PALETTE[k % PALETTE.length];
    const w = (hi - lo) / bins;
    let d = `M${X(lo).toFixed(1)},${Y(0).toFixed(1)}`;
    h.forEach((v, i) => {
      d += ` L${X(lo + i * w).toFixed(1)},${Y(v).toFixed(1)} L${X(lo + (i + 1) * w).toFixed(1)},${Y(v).toFixed(1)}`;
    });
    d += ` L${X(hi).toFixed(1)},${Y(0).toFixed(1)}`;
    out.push(`<path d="${d}" fill="${color}" fill-opacity="0.18" stroke="${color}" stroke-width="1.4"/>`);
    items.push({name: `${o.series[k].name} (n=${o.series[k].values.length})`, color});
  });
  out.push(...legend(f, items));
  out.push('</svg>');
  return out.join('\n');
}

export interface Segment {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

/**
 * Marching squares: the line segments where the bilinear interpolation of `grid`
 * (ny rows x nx columns, row-major, grid[j·nx + i] at (xs[i], ys[j])) crosses `level`.
 * Saddle cells are split by the value at the cell centre.
 */
export function contourSegments(grid: ArrayLike<number>, nx: number, ny: number, xs: ArrayLike<number>,
                                ys: ArrayLike<number>, level: number): Segment[] {
  const segs: Segment[] = [];
  const lerp = (a: number, b: number, va: number, vb: number) => a + (level - va) / (vb - va) * (b - a);
  for (let j = 0; j < ny - 1; j++) {
    for (let i = 0; i < nx - 1; i++) {
      const v00 = grid[j * nx + i], v10 = grid[j * nx + i + 1];
      const v01 = grid[(j + 1) * nx + i], v11 = grid[(j + 1) * nx + i + 1];
      if (![v00, v10, v01, v11].every(Number.isFinite)) continue;
      const x0 = xs[i], x1 = xs[i + 1], y0 = ys[j], y1 = ys[j + 1];
      // Crossing points on the four edges: bottom (00-10), right (10-11), top (01-11), left (00-01).
      const pts: Array<[number, number] | null> = [
        (v00 < level) !== (v10 < level) ? [lerp(x0, x1, v00, v10), y0] : null,
        (v10 < level) !== (v11 < level) ? [x1, lerp(y0, y1, v10, v11)] : null,
        (v01 < level) !== (v11 < level) ? [lerp(x0, x1, v01, v11), y1] : null,
        (v00 < level) !== (v01 < level) ? [x0, lerp(y0, y1, v00, v01)] : null,
      ];
      const hit = pts.map((p, k) => (p ? k : -1)).filter(k => k >= 0);
      const seg = (a: number, b: number) =>
          segs.push({x1: pts[a]![0], y1: pts[a]![1], x2: pts[b]![0], y2: pts[b]![1]});
      if (hit.length === 2) {
        seg(hit[0], hit[1]);
      } else if (hit.length === 4) {
        const centre = (v00 + v10 + v01 + v11) / 4;
        // Corner 00 is on the same side as the centre: it is enclosed with 11; connect around 10 and 01.
        if ((centre < level) === (v00 < level)) {
          seg(0, 1);
          seg(2, 3);
        } else {
          seg(0, 3);
          seg(1, 2);
        }
      }
    }
  }
  return segs;
}

export interface HeatmapOptions {
  title: string;
  /** ny x nx values, row-major; row j is at ys[j] (bottom to top), column i at xs[i]. */
  grid: ArrayLike<number>;
  xs: ArrayLike<number>;
  ys: ArrayLike<number>;
  xLabel?: string;
  yLabel?: string;
  /** Number of contour levels (default 10) or explicit levels; 0 for none. */
  contours?: number | number[];
  /** A path drawn over the map (e.g. the optimiser trajectory), with labelled end points. */
  path?: Array<[number, number]>;
  pathLabel?: string;
  /** Colour scale (default: autoScale of the finite values). */
  scale?: ColorScale;
  /** Label of the colour bar. */
  valueLabel?: string;
  width?: number;
  height?: number;
}

/** Heat map with contour lines, colour bar and an optional path. */
export function heatmapPlot(o: HeatmapOptions): string {
  const nx = o.xs.length, ny = o.ys.length;
  if (o.grid.length !== nx * ny) {
    throw new Error(`heatmapPlot: grid has ${o.grid.length} values, expected ${ny}·${nx}`);
  }
  const f = frame(o.width ?? 600, o.height ?? 520, 70);
  const sc = o.scale ?? autoScale(o.grid);
  const x0 = o.xs[0], x1 = o.xs[nx - 1], y0 = o.ys[0], y1 = o.ys[ny - 1];
  const X = (v: number) => f.left + (v - x0) / ((x1 - x0) || 1) * (f.right - f.left);
  const Y = (v: number) => f.bottom - (v - y0) / ((y1 - y0) || 1) * (f.bottom - f.top);
  const out = open(f, o.title);
  // Cells centred on grid points.
  const half = (a: ArrayLike<number>, k: number, n: number) => [
    k === 0 ? a[0] : (a[k - 1] + a[k]) / 2, k === n - 1 ? a[n - 1] : (a[k] + a[k + 1]) / 2];
  for (let j = 0; j < ny; j++) {
    const [ya, yb] = half(o.ys, j, ny);
    for (let i = 0; i < nx; i++) {
      const [xa, xb] = half(o.xs, i, nx);
      const v = o.grid[j * nx + i];
      const fill = Number.isFinite(v) ? rgbHex(sc.color(v)) : '#cccccc';
      out.push(`<rect x="${X(xa).toFixed(2)}" y="${Y(yb).toFixed(2)}" width="${(X(xb) - X(xa) + 0.5).toFixed(2)}" ` +
               `height="${(Y(ya) - Y(yb) + 0.5).toFixed(2)}" fill="${fill}"/>`);
    }
  }
  let levels: number[] = [];
  const c = o.contours ?? 10;
  if (Array.isArray(c)) {
    levels = c;
  } else if (c > 0) {
    const finite = Array.from(o.grid).filter(Number.isFinite);
    const lo = Math.min(...finite), hi = Math.max(...finite);
    levels = Array.from({length: c}, (_, k) => lo + (k + 1) * (hi - lo) / (c + 1));
  }
  for (const level of levels) {
    const segs = contourSegments(o.grid, nx, ny, o.xs, o.ys, level);
    if (segs.length === 0) continue;
    const d = segs.map(s => `M${X(s.x1).toFixed(1)},${Y(s.y1).toFixed(1)}L${X(s.x2).toFixed(1)},${Y(s.y2).toFixed(1)}`).join('');
    out.push(`<path d="${d}" fill="none" stroke="#000" stroke-opacity="0.55" stroke-width="0.8">` +
             `<title>${fmt(level)}</title></path>`);
  }
  if (o.path && o.path.length > 0) {
    const pts = o.path.map(([a, b]) => `${X(a).toFixed(1)},${Y(b).toFixed(1)}`).join(' ');
    out.push(`<polyline points="${pts}" fill="none" stroke="#fff" stroke-width="3"/>`);
    out.push(`<polyline points="${pts}" fill="none" stroke="#d62728" stroke-width="1.5"/>`);
    o.path.forEach(([a, b], k) => {
      out.push(`<circle cx="${X(a).toFixed(1)}" cy="${Y(b).toFixed(1)}" r="${k === o.path!.length - 1 ? 4 : 2.5}" ` +
               `fill="#d62728" stroke="#fff"/>`);
    });
    const [sa, sb] = o.path[0], [ea, eb] = o.path[o.path.length - 1];
    out.push(`<text x="${X(sa) + 6}" y="${Y(sb) - 6}" fill="#000">start</text>`);
    out.push(`<text x="${X(ea) + 6}" y="${Y(eb) - 6}" fill="#000">end</text>`);
  }
  out.push(...axes(f, niceTicks(x0, x1), X, niceTicks(y0, y1), Y, o.xLabel ?? '', o.yLabel ?? '', fmt, false));
  out.push(...colorBar(f, sc, o.valueLabel ?? ''));
  if (o.path && o.pathLabel) {
    out.push(`<text x="${f.left}" y="${f.top - 4}" font-size="10" fill="#d62728">${escapeXml(o.pathLabel)}</text>`);
  }
  out.push('</svg>');
  return out.join('\n');
}

/** A vertical colour bar right of the frame, with ticks and the map's name. */
export function colorBar(f: Frame, sc: ColorScale, label: string): string[] {
  const x = f.right + 14, w = 14, steps = 64;
  const out: string[] = [];
  const h = (f.bottom - f.top) / steps;
  for (let k = 0; k < steps; k++) {
    const v = sc.min + (k + 0.5) / steps * (sc.max - sc.min);
    out.push(`<rect x="${x}" y="${(f.bottom - (k + 1) * h).toFixed(2)}" width="${w}" height="${(h + 0.5).toFixed(2)}" ` +
             `fill="${rgbHex(sc.color(v))}"/>`);
  }
  out.push(`<rect x="${x}" y="${f.top}" width="${w}" height="${f.bottom - f.top}" fill="none" stroke="#333"/>`);
  for (const t of niceTicks(sc.min, sc.max, 5)) {
    const y = f.bottom - (t - sc.min) / ((sc.max - sc.min) || 1) * (f.bottom - f.top);
    out.push(`<text x="${x + w + 3}" y="${(y + 4).toFixed(1)}" font-size="10">${fmt(t)}</text>`);
  }
  const yc = (f.top + f.bottom) / 2;
  const text = `${label}${label ? ' — ' : ''}${sc.colormap.name}`;
  out.push(`<text x="${f.width - 6}" y="${yc}" text-anchor="middle" font-size="10" ` +
           `transform="rotate(-90 ${f.width - 6} ${yc})">${escapeXml(text)}</text>`);
  return out;
}
