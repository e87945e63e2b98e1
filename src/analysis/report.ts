/**
 * Turns analysis results into files (name -> SVG/HTML text or PNG bytes), the same in Node
 * (the `karat analyze` CLI writes them) and in the browser.
 */
import {autoScale, scale} from './colormap';
import {ActivationCurve} from './curves';
import {LandscapeResult} from './landscape';
import {AttentionMapsResult, ScoreRange, SpectraResult, WeightDistributions} from './model';
import {renderOverlay, RGBImage} from './overlay';
import {encodePNG, PNGOptions} from './png';
import {escapeXml, fmt, heatmapPlot, histogramPlot, linePlot, PALETTE} from './svg';

export type ReportFiles = Record<string, string | Uint8Array>;

export interface AttentionReportOptions extends PNGOptions {
  /** Magnification of the images (default 4: 32 x 32 CIFAR images become 128 x 128). */
  scale?: number;
  /** Overlay opacity (default 0.6). */
  alpha?: number;
  /** Labels shown per image (e.g. "cat (predicted cat)"). */
  captions?: string[];
  /** Folder prefix of the files (default 'attention/'). */
  prefix?: string;
}

/**
 * One PNG overlay per image, block and head, one per image for the rollout, and an HTML page
 * showing them with a legend. All maps of a kind share one colour scale (per image for the
 * per-head maps, per image for the rollout), so they can be compared.
 */
export function renderAttentionReport(maps: AttentionMapsResult, images: RGBImage[],
                                      options: AttentionReportOptions = {}): ReportFiles {
  if (images.length !== maps.images.length) {
    throw new Error(`renderAttentionReport: ${maps.images.length} map sets but ${images.length} images`);
  }
  const files: ReportFiles = {};
  const prefix = options.prefix ?? 'attention/';
  const ov = {grid: maps.grid, scale: options.scale ?? 4, alpha: options.alpha ?? 0.6};
  const html: string[] = [
    '<!doctype html><html><head><meta charset="utf-8"><title>KArAt attention maps</title>',
    '<style>body{font-family:sans-serif;margin:16px}td{text-align:center;font-size:12px;padding:4px}' +
        'img{image-rendering:pixelated}</style></head><body>',
    '<h1>Class-token attention maps</h1>',
  ];
  const legendFor = (signed: boolean, lo: number, hi: number) => signed ?
      `Diverging colour scale: blue = negative, white = 0, red = positive, range ±${fmt(Math.max(-lo, hi))}. ` +
      'KArAt attention σ̂(S) is not a probability distribution: its entries can be negative.' :
      `Sequential colour scale (viridis): dark = ${fmt(lo)}, yellow = ${fmt(hi)}. All values are >= 0.`;
  maps.images.forEach((im, b) => {
    const all = im.maps.flatMap(m => m.flatMap(row => Array.from(row)));
    const sc = autoScale(all, maps.signed ? true : undefined);
    const rsc = autoScale(im.rollout, maps.signed ? true : undefined);
    html.push(`<h2>Image ${b}${options.captions?.[b] ? ': ' + escapeXml(options.captions[b]) : ''}</h2>`);
    html.push(`<p>Per-head maps: ${escapeXml(legendFor(sc.colormap.diverging, sc.min, sc.max))} ` +
              'The strip under each image is the colour bar (left = minimum, right = maximum, black tick = 0).</p>');
    html.push('<table><tr><th></th>' +
              im.maps[0].map((_, h) => `<th>head ${h}</th>`).join('') + '</tr>');
    im.maps.forEach((heads, j) => {
      html.push(`<tr><td>${escapeXml(maps.blocks[j].name)} (${maps.blocks[j].kind})</td>`);
      heads.forEach((row, h) => {
        const o = renderOverlay(images[b], row, {...ov, colorScale: sc});
        const name = `${prefix}img${b}_block${j}_head${h}.png`;
        files[name] = encodePNG(o.rgba, o.width, o.height, 4, options);
        html.push(`<td><img src="${name.slice(prefix.length)}" alt="block ${j} head ${h}"></td>`);
      });
      html.push('</tr>');
    });
    html.push('</table>');
    const o = renderOverlay(images[b], im.rollout, {...ov, colorScale: rsc});
    const name = `${prefix}img${b}_rollout.png`;
    files[name] = encodePNG(o.rgba, o.width, o.height, 4, options);
    html.push(`<p>Rollout over ${im.maps.length} blocks (residual ½ I, rows L1-normalised; ` +
              `${escapeXml(legendFor(rsc.colormap.diverging, rsc.min, rsc.max))})</p>`);
    html.push(`<img src="${name.slice(prefix.length)}" alt="rollout">`);
  });
  html.push('</body></html>');
  files[`${prefix}index.html`] = html.join('\n');
  return files;
}

/** One SVG per block: normalised singular values σ_k/σ_1 of S, softmax(S) and σ̂(S), log scale. */
export function renderSpectra(spectra: SpectraResult, prefix = 'spectra/'): ReportFiles {
  const files: ReportFiles = {};
  spectra.blocks.forEach((blk, j) => {
    const series = blk.heads.flatMap((h, i) => {
      const color = PALETTE[i % PALETTE.length];
      const x = Array.from({length: h.scores.length}, (_, k) => k + 1);
      const norm = (s: Float64Array) => Array.from(s, v => (s[0] > 0 ? v / s[0] : 0));
      const out = [
        {name: `head ${i}: S`, x, y: norm(h.scores), color, dash: '2 3'},
        {name: `head ${i}: softmax(S)`, x, y: norm(h.softmax), color, dash: blk.kind === 'karat' ? '7 3' : undefined},
      ];
      if (blk.kind === 'karat') out.push({name: `head ${i}: KArAt σ̂(S)`, x, y: norm(h.activated), color, dash: undefined});
      return out;
    });
    files[`${prefix}block${j}.svg`] = linePlot({
      title: `Singular values, ${blk.name} (${blk.kind})`,
      note: 'normalised by the largest; mean over the images; σ̂(S) = ĥWᵀ has rank <= r',
      xLabel: 'index k', yLabel: 'σ_k / σ_1', logY: true, series, height: 440,
    });
  });
  return files;
}

/** Learned activation curves φ̂_pq(x), with the observed score range marked in the title. */
export function renderCurves(curves: ActivationCurve[], title: string, range?: ScoreRange): string {
  return linePlot({
    title,
    note: range ? `observed scores: min ${fmt(range.min)}, 1% ${fmt(range.p01)}, 99% ${fmt(range.p99)}, max ${fmt(range.max)}` : undefined,
    xLabel: 'score x', yLabel: 'φ̂_pq(x)', hline: 0,
    series: curves.map(c => ({name: `head ${c.head}, p=${c.p}, q=${c.q}`, x: c.x, y: c.y})),
  });
}

function quantileRange(arrays: ArrayLike<number>[], lo: number, hi: number): [number, number] {
  const all: number[] = [];
  for (const a of arrays) for (let i = 0; i < a.length; i++) all.push(a[i]);
  if (all.length === 0) return [0, 1];
  all.sort((x, y) => x - y);
  const q = (p: number) => all[Math.min(all.length - 1, Math.round(p * (all.length - 1)))];
  return [q(lo), q(hi)];
}

/** Histograms: Fourier coefficients A, B (and W) vs the Q/K kernels. */
export function renderWeightHistograms(d: WeightDistributions): string {
  const series = [
    {name: 'Fourier A (cos)', values: d.fourierA},
    {name: 'Fourier B (sin)', values: d.fourierB},
    {name: 'W (proj)', values: d.proj},
    {name: 'Q kernel', values: d.query},
    {name: 'K kernel', values: d.key},
  ].filter(s => s.values.length > 0);
  return histogramPlot({
    title: 'Weight distributions: learned Fourier coefficients vs Q/K projections',
    xLabel: 'weight value (0.5%–99.5% quantile range)', series, bins: 80,
    range: quantileRange(series.map(s => s.values), 0.005, 0.995),
  });
}

/** Contour/heat map of the loss on the plane of the path's principal directions, with the path. */
export function renderLandscape(r: LandscapeResult, title = 'Loss landscape along the optimiser path'): string {
  return heatmapPlot({
    title,
    grid: r.losses, xs: r.alphas, ys: r.betas,
    xLabel: `PC1 (${(100 * r.explained[0]).toFixed(1)}% of path variance)`,
    yLabel: `PC2 (${(100 * r.explained[1]).toFixed(1)}%)`,
    path: r.path, pathLabel: `optimiser path (${r.path.length} checkpoints), centred on the last`,
    valueLabel: 'loss', contours: 12,
    scale: scale(autoScale(r.losses, false).colormap, Math.min(...r.losses), Math.max(...r.losses)),
  });
}

