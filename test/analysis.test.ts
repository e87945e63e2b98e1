/** Analysis building blocks: SVD, PCA, PNG, colour maps, SVG plots, contours, rollout, curves. */
import * as assert from 'node:assert/strict';
import {deflateSync} from 'node:zlib';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import {PNG} from 'pngjs';

import * as karat from '../src/index';
import * as an from '../src/analysis/index';
import {randomArray} from './support/reference';

function randMatrix(m: number, n: number, seed: number): an.Matrix {
  return an.fromArray(randomArray(m * n, seed), m, n);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

function reconstruct(r: an.SVDResult): an.Matrix {
  const u = r.u!, v = r.v!;
  const us = {rows: u.rows, cols: u.cols, data: u.data.map((x, i) => x * r.s[i % u.cols])};
  return an.matMul(us, an.transpose(v));
}

function identityError(q: an.Matrix): number {
  const g = an.matMul(an.transpose(q), q);
  let e = 0;
  for (let i = 0; i < g.rows; i++) {
    for (let j = 0; j < g.cols; j++) e = Math.max(e, Math.abs(g.data[i * g.cols + j] - (i === j ? 1 : 0)));
  }
  return e;
}

describe('analysis: one-sided Jacobi SVD and PCA', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  for (const [m, n] of [[7, 5], [5, 7], [30, 30], [1, 4]]) {
    it(`reconstructs a random ${m}x${n} matrix with orthonormal U, V and sorted s`, () => {
      const a = randMatrix(m, n, 11 + m * n);
      const r = an.svd(a);
      assert.ok(maxAbsDiff(reconstruct(r).data, a.data) < 1e-12, 'A = U S Vᵀ');
      assert.ok(identityError(r.u!) < 1e-12, 'UᵀU = I');
      assert.ok(identityError(r.v!) < 1e-12, 'VᵀV = I');
      for (let k = 1; k < r.s.length; k++) assert.ok(r.s[k - 1] >= r.s[k]);
      assert.equal(r.s.length, Math.min(m, n));
    });
  }

  it('finds known spectra: 2x2 closed form, diagonal, all-ones (rank 1), circulant (|DFT|)', () => {
    // [[3, 0], [4, 5]]: AᵀA = [[25, 20], [20, 25]], eigenvalues 45 and 5.
    assert.ok(maxAbsDiff(an.singularValues(an.matrix([[3, 0], [4, 5]])), [Math.sqrt(45), Math.sqrt(5)]) < 1e-13);
    assert.ok(maxAbsDiff(an.singularValues(an.matrix([[0, 0, -2], [0, 5, 0], [1, 0, 0]])), [5, 2, 1]) < 1e-14);
    const ones = an.fromArray(new Array(36).fill(1), 6, 6);
    const r = an.svd(ones);
    assert.ok(maxAbsDiff(r.s, [6, 0, 0, 0, 0, 0]) < 1e-12);
    assert.ok(identityError(r.u!) < 1e-12, 'U completed to an orthonormal basis');
    assert.ok(maxAbsDiff(reconstruct(r).data, ones.data) < 1e-12);
    // Circulant C[i][j] = c[(j − i) mod n]: singular values are |Σ_k c_k e^{−2πi jk/n}|.
    const c = [4, -1, 2, 0.5, 3, -2, 1];
    const n = c.length;
    const C = an.matrix(Array.from({length: n}, (_, i) => Array.from({length: n}, (_, j) => c[(j - i + n) % n])));
    const dft = Array.from({length: n}, (_, j) => {
      let re = 0, im = 0;
      for (let k = 0; k < n; k++) {
        re += c[k] * Math.cos(2 * Math.PI * j * k / n);
        im -= c[k] * Math.sin(2 * Math.PI * j * k / n);
      }
      return Math.hypot(re, im);
    }).sort((x, y) => y - x);
    assert.ok(maxAbsDiff(an.singularValues(C), dft) < 1e-12);
  });

  it('recovers a planted spectrum U diag(s) Vᵀ with orthogonal factors', () => {
    const n = 12;
    const q1 = an.svd(randMatrix(n, n, 3)).u!, q2 = an.svd(randMatrix(n, n, 4)).v!;
    const s = Array.from({length: n}, (_, k) => Math.pow(10, -k / 2));  // 1 … 3e-6
    const A = an.matMul(an.matMul(q1, {rows: n, cols: n, data: Float64Array.from({length: n * n}, (_, i) => (i % (n + 1) === 0 ? s[i / (n + 1)] : 0))}), an.transpose(q2));
    const got = an.singularValues(A);
    for (let k = 0; k < n; k++) assert.ok(Math.abs(got[k] - s[k]) < 1e-13 + 1e-9 * s[k], `σ_${k}`);
  });

  it('rejects bad input with a clear message', () => {
    assert.throws(() => an.svd({rows: 2, cols: 2, data: new Float64Array([1, NaN, 0, 1])}), /non-finite entry NaN/);
    assert.throws(() => an.svd({rows: 2, cols: 2, data: new Float64Array(3)}), /rows·cols/);
    assert.throws(() => an.matrix([[1, 2], [3]]), /row 1 has 1 entries, expected 2/);
  });

  it('PCA finds planted directions, coordinates and explained variance', () => {
    const P = 50;
    const d1 = randomArray(P, 5), d2 = randomArray(P, 6);
    // Orthonormalise d1, d2.
    const n1 = Math.hypot(...d1);
    const e1 = Array.from(d1, v => v / n1);
    const dot = e1.reduce((a, v, i) => a + v * d2[i], 0);
    const t2 = Array.from(d2, (v, i) => v - dot * e1[i]);
    const n2 = Math.hypot(...t2);
    const e2 = t2.map(v => v / n2);
    const base = randomArray(P, 7);
    const ab = [[3, 0.5], [-2, 1], [1, -1.5], [0, 0]];
    const vecs = ab.map(([a, b]) => Float64Array.from(base, (v, i) => v + a * e1[i] + b * e2[i]));
    const pcs = an.principalComponents(vecs, 2, vecs[vecs.length - 1]);
    assert.ok(Math.abs(pcs.explained[0] + pcs.explained[1] - 1) < 1e-12, 'two directions explain everything');
    // Reconstruct each deviation from coords and directions.
    vecs.forEach((v, i) => {
      const rec = Float64Array.from(base, (x, j) => x + pcs.coords[i][0] * pcs.directions[0][j] + pcs.coords[i][1] * pcs.directions[1][j]);
      assert.ok(maxAbsDiff(rec, v) < 1e-12, `vector ${i}`);
    });
    // The plane spanned is that of e1, e2.
    for (const d of pcs.directions) {
      const p1 = d.reduce((a, v, i) => a + v * e1[i], 0), p2 = d.reduce((a, v, i) => a + v * e2[i], 0);
      assert.ok(Math.abs(p1 * p1 + p2 * p2 - 1) < 1e-12);
    }
    assert.throws(() => an.principalComponents([vecs[0]], 1), /at least 2 vectors/);
  });
});

describe('analysis: PNG, colour maps, SVG', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('encodes RGBA and RGB PNGs that pngjs decodes to the same pixels (stored and zlib)', () => {
    for (const [w, h, ch] of [[7, 5, 4], [3, 9, 3], [200, 110, 4]] as const) {
      const px = Uint8Array.from(randomArray(w * h * ch, w + h), v => Math.floor((v + 1) * 127.9));
      for (const deflate of [undefined, (raw: Uint8Array) => new Uint8Array(deflateSync(raw))]) {
        const png = an.encodePNG(px, w, h, ch, {deflate});
        const dec = PNG.sync.read(Buffer.from(png));
        assert.equal(dec.width, w);
        assert.equal(dec.height, h);
        for (let i = 0; i < w * h; i++) {
          for (let c = 0; c < ch; c++) assert.equal(dec.data[i * 4 + c], px[i * ch + c]);
          if (ch === 3) assert.equal(dec.data[i * 4 + 3], 255);
        }
      }
    }
    assert.throws(() => an.encodePNG(new Uint8Array(10), 2, 2), /expected 2·2·4 = 16 bytes, got 10/);
    assert.equal(an.base64(Uint8Array.from([77, 97, 110, 77, 97])), Buffer.from('ManMa').toString('base64'));
  });

  it('uses a diverging scale, white at 0, for signed data and a sequential one otherwise', () => {
    const s = an.autoScale([-0.5, 0.2, 2]);
    assert.equal(s.colormap.diverging, true);
    assert.deepEqual([s.min, s.max], [-2, 2]);
    assert.deepEqual(s.color(0), [0xf7, 0xf7, 0xf7]);
    assert.ok(s.color(-2)[2] > s.color(-2)[0], 'negative is blue');
    assert.ok(s.color(2)[0] > s.color(2)[2], 'positive is red');
    const p = an.autoScale([0, 0.1, 0.3]);
    assert.equal(p.colormap.diverging, false);
    assert.deepEqual(p.color(0), [0x44, 0x01, 0x54]);
    assert.deepEqual(p.color(0.3), [0xfd, 0xe7, 0x25]);
  });

  it('renders overlays: image blended with the map colour, colour bar below', () => {
    const img = {width: 4, height: 4, data: new Uint8Array(48).fill(100)};
    const map = [-1, 0, 0, 1];  // 2 x 2 patch grid
    const o = an.renderOverlay(img, map, {scale: 2, alpha: 0.5, smooth: false, barHeight: 3});
    assert.equal(o.width, 8);
    assert.equal(o.height, 8 + 5);
    const px = (x: number, y: number) => Array.from(o.rgba.subarray((y * 8 + x) * 4, (y * 8 + x) * 4 + 3));
    const close = (got: number[], c: number[], what: string) =>
        assert.ok(maxAbsDiff(got, c.map(v => 0.5 * 100 + 0.5 * v)) <= 0.5, `${what}: ${got}`);
    close(px(5, 0), [0xf7, 0xf7, 0xf7], 'zero -> white blended');
    close(px(0, 0), [0x05, 0x30, 0x61], '-1 -> darkest blue');
    close(px(7, 7), [0x67, 0x00, 0x1f], '+1 -> darkest red');
    assert.deepEqual(px(Math.round(0.5 * 7), 11), [0, 0, 0], 'black zero tick on the colour bar');
    assert.throws(() => an.renderOverlay(img, [1, 2, 3]), /map has 3 values, grid 2x2 needs 4/);
  });

  it('draws contour segments of a linear field exactly on the level line', () => {
    const xs = [0, 1, 2, 3], ys = [0, 1, 2];
    const grid = ys.flatMap(y => xs.map(x => x + 2 * y));  // f = x + 2y
    const segs = an.contourSegments(grid, 4, 3, xs, ys, 2.5);
    assert.ok(segs.length >= 2);
    for (const s of segs) {
      assert.ok(Math.abs(s.x1 + 2 * s.y1 - 2.5) < 1e-12);
      assert.ok(Math.abs(s.x2 + 2 * s.y2 - 2.5) < 1e-12);
    }
    assert.equal(an.contourSegments(grid, 4, 3, xs, ys, 100).length, 0);
  });

  it('writes SVG plots with every series, ticks and legends and no NaN', () => {
    const line = an.linePlot({title: 'a < b', series: [{name: 'one', x: [1, 2, 3], y: [1, 0.1, 0.01]}, {name: 'two', x: [1, 2], y: [2, 3]}], logY: true});
    assert.match(line, /^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.equal((line.match(/<polyline/g) ?? []).length, 2);
    assert.match(line, /a &lt; b/);
    assert.ok(!line.includes('NaN'));
    assert.ok(line.trim().endsWith('</svg>'));
    const hist = an.histogramPlot({title: 'h', series: [{name: 'x', values: randomArray(500, 1)}, {name: 'y', values: randomArray(300, 2, 3)}]});
    assert.equal((hist.match(/<path/g) ?? []).length, 2);
    assert.match(hist, /x \(n=500\)/);
    assert.ok(!hist.includes('NaN'));
    const h = an.histogram([0, 0.1, 0.5, 0.99, 1, 2], 2, 0, 1);
    assert.deepEqual(h.counts, [2, 3]);
    const heat = an.heatmapPlot({title: 'heat', grid: [0, 1, 2, 3, 4, 5], xs: [0, 1, 2], ys: [0, 1], path: [[0, 0], [1, 1]], contours: 2});
    assert.equal((heat.match(/<rect x="[\d.]+" y="[\d.]+" width/g) ?? []).length >= 6, true);
    assert.match(heat, /viridis/);
    assert.ok(!heat.includes('NaN'));
    assert.deepEqual(an.niceTicks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  });
});

describe('analysis: attention rollout', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('equals ½(A+I) products for row-stochastic (softmax) attention', () => {
    const N = 4, h = 2;
    const blocks = [0, 1, 2].map(s => {
      const raw = randomArray(h * N * N, 20 + s);
      const data = new Float64Array(h * N * N);
      for (let r = 0; r < h * N; r++) {
        const row = Array.from(raw.subarray(r * N, (r + 1) * N), Math.exp);
        const z = row.reduce((a, b) => a + b, 0);
        row.forEach((v, j) => (data[r * N + j] = v / z));
      }
      return {heads: h, tokens: N, data};
    });
    // Reference: R = Π (½ mean + ½ I), computed with linalg matMul.
    let R: an.Matrix | null = null;
    for (const b of blocks) {
      const mean = an.headMean(b);
      const At = {rows: N, cols: N, data: mean.map((v, k) => 0.5 * v + (k % (N + 1) === 0 ? 0.5 : 0))};
      R = R == null ? At : an.matMul(At, R);
    }
    assert.ok(maxAbsDiff(an.rolloutMatrix(blocks), R!.data) < 1e-12);
    assert.ok(maxAbsDiff(an.attentionRollout(blocks), R!.data.subarray(1, N)) < 1e-12);
    // Rows stay stochastic.
    const Rm = an.rolloutMatrix(blocks);
    for (let i = 0; i < N; i++) assert.ok(Math.abs(Rm.subarray(i * N, (i + 1) * N).reduce((a, b) => a + b, 0) - 1) < 1e-12);
  });

  it('keeps signs of KArAt attention and bounds the rows by L1 normalisation', () => {
    const N = 3;
    const data = new Float64Array([
      -2, 1, 1,
      0, -3, 0,
      1, 1, -1,
    ]);
    const R = an.rolloutMatrix([{heads: 1, tokens: N, data}]);
    // Row 0: L1 = 4 -> ½·[-0.5, .25, .25] + ½·[1, 0, 0].
    assert.ok(maxAbsDiff(R.subarray(0, 3), [0.25, 0.125, 0.125]) < 1e-15);
    assert.ok(maxAbsDiff(R.subarray(3, 6), [0, 0, 0]) < 1e-15, 'row 1: −½ + ½ on the diagonal');
    assert.ok(R[8] < 0.5 && R[6] > 0);
    assert.deepEqual(Array.from(an.classTokenRow({heads: 1, tokens: N, data}, 0)), [1, 1]);
  });
});

describe('analysis: learned activation curves φ̂_pq(x)', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  const h = 2, N = 5, r = 3, G = 3;

  it('Fourier: the general (sliced operator) path equals Σ A cos(mx) + B sin(mx)', () => {
    const values = randomArray(h * 2 * r * N * G, 31);
    const coeffs = tf.tensor5d(values, [h, 2, r, N, G]);
    const proj = tf.tensor3d(randomArray(h * N * r, 32), [h, N, r]);
    const xs = an.linspace(-3, 3, 41);
    const pairs = [{head: 0, p: 0, q: 0}, {head: 1, p: 2, q: 4}, {head: 1, p: 1, q: 0}];
    const curves = an.activationCurves({basis: 'fourier', grid: G, rank: r}, {coeffs, proj}, pairs, xs);
    for (const c of curves) {
      const ref = an.fourierCurve(values, [h, 2, r, N, G], c, xs);
      // Hand-written single point as a further check.
      const at = (ab: number, m: number) => values[(((c.head * 2 + ab) * r + c.p) * N + c.q) * G + m];
      const x = xs[7];
      let manual = 0;
      for (let m = 0; m < G; m++) manual += at(0, m) * Math.cos((m + 1) * x) + at(1, m) * Math.sin((m + 1) * x);
      assert.ok(Math.abs(ref[7] - manual) < 1e-12);
      assert.ok(maxAbsDiff(c.y, ref) < 1e-5, `pair ${JSON.stringify(c)}`);
    }
    // Summing φ̂_pq over q at row scores s reproduces ĥ of the op.
    const s = randomArray(N, 33, 2);
    const rows = tf.tensor4d(Array.from({length: h * N}, () => Array.from(s)).flat(), [1, h, N, N]);
    const hidden = karat.fourierKArAtHidden(rows, coeffs);
    const hv = hidden.dataSync();  // [1, h, N, r]; every row i is the same
    for (let p = 0; p < r; p++) {
      let sum = 0;
      for (let q = 0; q < N; q++) sum += an.fourierCurve(values, [h, 2, r, N, G], {head: 1, p, q}, [s[q]])[0];
      assert.ok(Math.abs(sum - hv[(1 * N + 2) * r + p]) < 1e-5);
    }
    rows.dispose();
    tf.dispose([coeffs, proj, hidden]);
  });

  it('rational basis with a SiLU base term matches the formula', () => {
    const cfg = karat.resolveOperatorConfig({basis: 'rational', rank: r, rationalOrder: [2, 1], baseActivation: 'silu'});
    const num = randomArray(h * r * N * 3, 41), den = randomArray(h * r * N, 42), bw = randomArray(h * r * N, 43);
    const params = {
      numerator: tf.tensor4d(num, [h, r, N, 3]), denominator: tf.tensor4d(den, [h, r, N, 1]),
      proj: tf.tensor3d(randomArray(h * N * r, 44), [h, N, r]), baseWeight: tf.tensor3d(bw, [h, r, N]),
    };
    const xs = [-2, -0.5, 0, 0.7, 2.5];
    const pair = {head: 1, p: 2, q: 3};
    const [c] = an.activationCurves(cfg, params, [pair], xs);
    const i3 = (pair.head * r + pair.p) * N + pair.q;
    xs.forEach((x, k) => {
      const a = num.subarray(i3 * 3, i3 * 3 + 3);
      const ref = (a[0] + a[1] * x + a[2] * x * x) / (1 + Math.abs(den[i3] * x)) + bw[i3] * x / (1 + Math.exp(-x));
      assert.ok(Math.abs(c.y[k] - ref) < 1e-5, `x = ${x}: ${c.y[k]} vs ${ref}`);
    });
    tf.dispose(Object.values(params));
  });

  it('every registered basis: Σ_q φ̂_pq(s_q) equals operatorHidden', () => {
    for (const basis of karat.registeredBases()) {
      const cfg = karat.resolveOperatorConfig({basis: basis as karat.BasisName, rank: r, grid: 3, seed: 5});
      const specs = karat.operatorParamSpecs(cfg, h, N);
      const params: Record<string, tf.Tensor> = {};
      for (const s of specs) params[s.name] = tf.add(s.initializer.apply(s.shape), tf.randomUniform(s.shape, -0.2, 0.2, 'float32', 9));
      const s = randomArray(N, 50, 1.5);
      const scores = tf.tensor4d(Array.from({length: h * N}, () => Array.from(s)).flat(), [1, h, N, N]);
      const hidden = karat.operatorHidden(scores, params, cfg).dataSync();  // [1, h, N, r], equal rows
      const pairs = [];
      for (let q = 0; q < N; q++) pairs.push({head: 1, p: 1, q});
      const curves = pairs.map(pr => an.activationCurves(cfg, params, [pr], [s[pr.q]])[0].y[0]);
      const sum = curves.reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(sum - hidden[N * r + 1]) < 1e-4 * (1 + Math.abs(sum)), `${basis}: ${sum} vs ${hidden[N * r + 1]}`);
      tf.dispose([...Object.values(params), scores]);
    }
  });

  it('names the argument for bad pairs and params', () => {
    const coeffs = tf.zeros([h, 2, r, N, G]) as tf.Tensor5D;
    const proj = tf.zeros([h, N, r]);
    assert.throws(() => an.activationCurves({grid: G, rank: r}, {coeffs, proj}, [{head: 0, p: 3, q: 0}], [0]),
                  /p must be an integer in \[0, 2\], got 3/);
    assert.throws(() => an.activationCurves({grid: 2, rank: r}, {coeffs, proj}, [{head: 0, p: 0, q: 0}], [0]),
                  /params.coeffs must have shape \[2,2,3,5,2\]/);
    tf.dispose([coeffs, proj]);
  });
});
