/**
 * The learned activation curves φ̂_pq of one head of one block, over the range of that head's
 * attention scores on the image shown: the SVG both panels of the demo draw.
 */
import type {Tensor5D} from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

import * as karat from '../../src/index';

const an = karat.analysis;

/**
 * SVG of curves p = 0 … maxCurves-1 for query token `q` of head `h` in block `j` of `model`,
 * over the min..max of that head's scores in `data[j]`; null when the block's attention is
 * softmax or another basis than Fourier (no learned curves).
 */
export async function headCurvesSvg(model: tfl.LayersModel, data: karat.analysis.BlockAttentionData[],
                                    o: {block: number, head: number, q: number, maxCurves: number, title: string}): Promise<string | null> {
  const op = an.findAttentionLayers(model)[o.block].layer.operator;
  if (op == null || op.cfg.basis !== 'fourier') return null;
  const d = data[o.block], N = d.tokens;
  let lo = Infinity, hi = -Infinity;
  for (let k = o.head * N * N; k < (o.head + 1) * N * N; k++) {
    lo = Math.min(lo, d.scores[k]);
    hi = Math.max(hi, d.scores[k]);
  }
  const coeffs = op.params().coeffs as Tensor5D;  // [h, 2, r, N, G]
  const values = await coeffs.data();
  const xs = an.linspace(lo, hi, 100);
  const R = Math.min(coeffs.shape[2], o.maxCurves);
  const at = {head: o.head, q: o.q};
  const curves = Array.from({length: R}, (_, p) => ({...at, p, x: xs, y: an.fourierCurve(values, coeffs.shape, {...at, p}, xs)}));
  return an.renderCurves(curves, `${o.title}, p = 0…${R - 1}`, {min: lo, max: hi, p01: lo, p99: hi});
}
