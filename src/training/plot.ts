/**
 * A self-contained SVG of a run's curves: loss (train and test) on the left panel,
 * accuracy (train, test top-1, test top-5) on the right, per epoch. No dependencies.
 */
import {escapeXml as esc, niceTicks} from '../analysis/svg';
import type {EpochRecord} from './trainer';

interface Series {
  name: string;
  color: string;
  points: Array<[number, number]>;
  dash?: string;
}

function panel(x0: number, y0: number, w: number, h: number, title: string, yLabel: string, series: Series[],
               yRange?: [number, number], fmt: (v: number) => string = (v) => String(v)): string {
  const all = series.flatMap((s) => s.points);
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  const xmin = Math.min(...xs, 1), xmax = Math.max(...xs, 2);
  let [ymin, ymax] = yRange ?? [Math.min(...ys), Math.max(...ys)];
  if (!yRange) {
    const pad = (ymax - ymin) * 0.08 || 0.1;
    ymin -= pad;
    ymax += pad;
  }
  const L = 52, R = 12, T = 26, B = 36;
  const px = (v: number) => x0 + L + (v - xmin) / (xmax - xmin) * (w - L - R);
  const py = (v: number) => y0 + T + (1 - (v - ymin) / (ymax - ymin)) * (h - T - B);
  const parts: string[] = [];
  parts.push(`<text x="${x0 + w / 2}" y="${y0 + 16}" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>`);
  parts.push(`<rect x="${x0 + L}" y="${y0 + T}" width="${w - L - R}" height="${h - T - B}" fill="none" stroke="#888"/>`);
  for (const t of niceTicks(ymin, ymax)) {
    if (t < ymin || t > ymax) continue;
    parts.push(`<line x1="${x0 + L}" x2="${x0 + w - R}" y1="${py(t)}" y2="${py(t)}" stroke="#eee"/>`);
    parts.push(`<text x="${x0 + L - 4}" y="${py(t) + 4}" text-anchor="end" font-size="10">${esc(fmt(t))}</text>`);
  }
  for (const t of niceTicks(xmin, xmax, Math.min(10, Math.max(1, xmax - xmin)))) {
    if (t < xmin || t > xmax || !Number.isInteger(t)) continue;
    parts.push(`<text x="${px(t)}" y="${y0 + h - B + 14}" text-anchor="middle" font-size="10">${t}</text>`);
  }
  parts.push(`<text x="${x0 + L + (w - L - R) / 2}" y="${y0 + h - 6}" text-anchor="middle" font-size="11">epoch</text>`);
  parts.push(`<text x="${x0 + 12}" y="${y0 + T + (h - T - B) / 2}" text-anchor="middle" font-size="11" ` +
      `transform="rotate(-90 ${x0 + 12} ${y0 + T + (h - T - B) / 2})">${esc(yLabel)}</text>`);
  series.forEach((s, i) => {
    if (s.points.length === 0) return;
    const d = s.points.map((p, k) => `${k ? 'L' : 'M'}${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join(' ');
    parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`);
    for (const p of s.points) parts.push(`<circle cx="${px(p[0]).toFixed(1)}" cy="${py(p[1]).toFixed(1)}" r="2.5" fill="${s.color}"/>`);
    const ly = y0 + T + 8 + i * 15;
    parts.push(`<line x1="${x0 + w - R - 120}" x2="${x0 + w - R - 100}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`);
    parts.push(`<text x="${x0 + w - R - 96}" y="${ly + 4}" font-size="10">${esc(s.name)}</text>`);
  });
  return parts.join('\n');
}

/** SVG text for one run's history. `series` lets callers overlay several runs (results docs). */
export function plotRuns(runs: Array<{label: string, history: EpochRecord[]}>, title = 'training curves'): string {
  const W = 900, H = 360;
  const colors = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];
  const loss: Series[] = [], acc: Series[] = [];
  runs.forEach((r, i) => {
    const c = colors[i % colors.length];
    const pre = runs.length > 1 ? `${r.label} ` : '';
    loss.push({name: `${pre}train`, color: c, dash: '5,3', points: r.history.map((e) => [e.epoch, e.trainLoss])});
    loss.push({name: `${pre}test`, color: c, points: r.history.map((e) => [e.epoch, e.testLoss])});
    if (runs.length === 1) {
      acc.push({name: 'train top-1', color: colors[0], dash: '5,3', points: r.history.map((e) => [e.epoch, 100 * e.trainAcc])});
      acc.push({name: 'test top-1', color: colors[1], points: r.history.map((e) => [e.epoch, 100 * e.testTop1])});
      acc.push({name: 'test top-5', color: colors[2], points: r.history.map((e) => [e.epoch, 100 * e.testTop5])});
    } else {
      acc.push({name: `${r.label} top-1`, color: c, points: r.history.map((e) => [e.epoch, 100 * e.testTop1])});
    }
  });
  const accVals = acc.flatMap((s) => s.points.map((p) => p[1]));
  const accRange: [number, number] = [Math.max(0, Math.floor(Math.min(...accVals, 100) / 10) * 10), Math.min(100, Math.ceil(Math.max(...accVals, 0) / 10) * 10 || 100)];
  if (accRange[1] <= accRange[0]) accRange[1] = accRange[0] + 10;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H + 24}" viewBox="0 0 ${W} ${H + 24}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${W / 2}" y="16" text-anchor="middle" font-size="13">${esc(title)}</text>`,
    panel(0, 24, W / 2, H, 'loss', 'cross-entropy', loss, undefined, (v) => v.toFixed(2)),
    panel(W / 2, 24, W / 2, H, 'accuracy', '%', acc, accRange, (v) => String(v)),
    '</svg>',
  ].join('\n');
}
