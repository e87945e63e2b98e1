/**
 * `karat analyze`: the analyses of src/analysis from the command line (Node).
 *
 *   karat analyze --checkpoint runs/<run>/best.ckpt [--images 4] [--out runs/<run>/analysis]
 *   karat analyze --model dir/model.json --mean 0.49,0.48,0.45 --std 0.25,0.24,0.26 --image a.png,b.jpg
 *   karat analyze --checkpoint runs/<run>/last.ckpt --path runs/<run>/snapshots   (loss landscape)
 *
 * Writes attention/index.html (+ PNG overlays per image, block, head and the rollout),
 * spectra/block<j>.svg, curves.svg, weights.svg and, with --path, landscape.svg, plus
 * summary.json, into --out.
 */
import {existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync} from 'node:fs';
import {dirname, join} from 'node:path';
import {deflateSync} from 'node:zlib';

import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

import * as an from '../analysis/index';
import {loadDatasetPair} from '../data/registry';
import {decodeImage, resizeInto} from '../data/image_folder';
import {fileSystem} from '../io/file_system';
import {selectBackend} from '../training/backend';
import {assignWeights, Checkpoint, modelFromCheckpoint, readCheckpoint} from '../training/checkpoint';
import {BACKENDS, TrainConfig} from '../training/config';
import {commandFlags, UsageError} from './flags';

export const ANALYZE_HELP = `usage: karat analyze (--checkpoint FILE | --model DIR|model.json) [options]

  --checkpoint FILE     a checkpoint of 'karat train' (model, weights and input normalisation)
  --model PATH          a tfjs layers model (model.json + weights.bin), e.g. from exportModel
  --mean A,B,C --std A,B,C   input normalisation for --model (default: 0,0,0 and 1,1,1)
  --dataset NAME        dataset to take images from (default: the checkpoint's, else cifar10-subset)
  --data-dir PATH       dataset location
  --images N            first N test images (default 4)
  --image F1,F2,...     PNG/JPEG files instead (resized to the model's input size)
  --out DIR             output folder (default: <checkpoint dir>/analysis, or runs/analysis)
  --what LIST           any of maps,spectra,curves,weights,landscape (default: all available)
  --curves B:H:P:Q,...  activation curves to plot (block:head:p:q); default: last block, head 0,
                        q = 0 (class token), p = 0..3
  --path DIR|F1,F2,...  checkpoints along one training run, in order (>= 3; a directory: its
                        *.ckpt files sorted by training step) for the loss landscape
  --resolution N        landscape grid points per axis (default 15)
  --landscape-examples N  test images for the landscape loss (default 256)
  --backend NAME        ${BACKENDS.join(', ')} (default auto)`;

const KNOWN = new Set(['checkpoint', 'model', 'mean', 'std', 'dataset', 'dataDir', 'images', 'image', 'out', 'what',
  'curves', 'path', 'resolution', 'landscapeExamples', 'backend', 'help']);
const WHAT = ['maps', 'spectra', 'curves', 'weights', 'landscape'];

function numList(flag: string, v: unknown, n: number): number[] {
  const xs = String(v).split(',').map(Number);
  if (xs.length !== n || xs.some(x => !Number.isFinite(x))) {
    throw new UsageError(`karat analyze: --${flag} must be ${n} comma-separated numbers, got '${String(v)}'`);
  }
  return xs;
}

function posInt(flag: string, v: unknown, def: number): number {
  if (v == null) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`karat analyze: --${flag} must be an integer >= 1, got '${String(v)}'`);
  return n;
}

function pathCheckpoints(spec: string): string[] {
  if (existsSync(spec) && statSync(spec).isDirectory()) {
    const files = readdirSync(spec).filter(f => f.endsWith('.ckpt')).map(f => join(spec, f));
    const step = (f: string) => Number((readCheckpoint(f).header.trainer as {step?: number}).step ?? 0);
    const withStep = files.map(f => ({f, s: step(f)})).sort((a, b) => a.s - b.s || a.f.localeCompare(b.f));
    return withStep.map(x => x.f);
  }
  return spec.split(',').filter(Boolean);
}

type Flags = Record<string, unknown>;
/** One activation curve to draw: block index, then the curve's head, p and q. */
type CurveSpec = an.CurvePair & {block: number};
interface Normalisation {mean: number[], std: number[]}

/** The model to analyse, its input normalisation and the dataset it was trained on (if known). */
interface AnalysedModel {
  model: tfl.LayersModel;
  norm: Normalisation;
  savedDataset: string | null;
  savedDataDir: string | null;
}

/** The images to analyse (RGB bytes at the model's input size) and what to call them. */
interface AnalysisImages {
  rgb: Uint8Array[];
  captions: string[];
  classNames: string[] | null;
  /** Test images and labels for the loss landscape (dataset images only). */
  landscapeData: {px: Uint8Array, labels: number[]} | null;
}

/** Writes report files under one folder and remembers their paths. */
class ReportWriter {
  readonly written: string[] = [];
  constructor(readonly out: string) {}

  write(files: an.ReportFiles): void {
    for (const [name, data] of Object.entries(files)) {
      const p = join(this.out, name);
      mkdirSync(dirname(p), {recursive: true});
      writeFileSync(p, data);
      this.written.push(p);
    }
  }
}

/** Checks the flags; returns the analyses to run. */
function checkFlags(flags: Flags): Set<string> {
  if ((flags.checkpoint == null) === (flags.model == null)) {
    throw new UsageError('karat analyze: give exactly one of --checkpoint FILE or --model PATH');
  }
  const what = new Set(flags.what == null ? WHAT : String(flags.what).split(','));
  for (const w of what) {
    if (!WHAT.includes(w)) throw new UsageError(`karat analyze: --what must list some of ${WHAT.join(', ')}, got '${w}'`);
  }
  if (flags.what != null && what.has('landscape') && flags.path == null) {
    throw new UsageError('karat analyze: --what landscape needs --path (checkpoints along the run)');
  }
  const backendName = String(flags.backend ?? 'auto');
  if (!BACKENDS.includes(backendName as never)) {
    throw new UsageError(`karat analyze: unknown backend '${backendName}'; expected one of ${BACKENDS.join(', ')}`);
  }
  return what;
}

/** Builds the model from --checkpoint (with its normalisation) or loads --model; applies --mean/--std. */
async function loadAnalysedModel(flags: Flags): Promise<AnalysedModel> {
  let model: tfl.LayersModel;
  let norm: Normalisation = {mean: [0, 0, 0], std: [1, 1, 1]};
  let savedDataset: string | null = null, savedDataDir: string | null = null;
  if (flags.checkpoint != null) {
    const ck: Checkpoint = readCheckpoint(String(flags.checkpoint));
    model = await modelFromCheckpoint(ck, `checkpoint '${flags.checkpoint}'`);
    norm = (ck.header.trainer.normalisation as Normalisation | undefined) ?? norm;
    const cfg = (ck.header.trainer.config ?? {}) as Partial<TrainConfig>;
    savedDataset = cfg.dataset ?? null;
    savedDataDir = cfg.dataDir ?? null;
  } else {
    const p = String(flags.model);
    try {
      model = await tfl.loadLayersModel(fileSystem(p.endsWith('model.json') ? dirname(p) : p));
    } catch (e) {
      throw new UsageError(`karat analyze: --model '${p}' cannot be loaded: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  if (flags.mean != null) norm = {...norm, mean: numList('mean', flags.mean, 3)};
  if (flags.std != null) norm = {...norm, std: numList('std', flags.std, 3)};
  return {model, norm, savedDataset, savedDataDir};
}

/** --image files resized to H x W, or the first --images test images of the dataset. */
async function loadImages(flags: Flags, what: Set<string>, m: AnalysedModel, [H, W, C]: number[]): Promise<AnalysisImages> {
  if (flags.image != null) {
    const files = String(flags.image).split(',').filter(Boolean);
    const rgb = files.map(f => {
      if (!existsSync(f)) throw new UsageError(`karat analyze: --image '${f}' does not exist`);
      const out = new Uint8Array(H * W * C);
      resizeInto(decodeImage(readFileSync(f), f), H, W, C, out, 0);
      return out;
    });
    return {rgb, captions: files, classNames: null, landscapeData: null};
  }
  const n = posInt('images', flags.images, 4);
  const landscape = what.has('landscape') && flags.path != null;
  const dataset = String(flags.dataset ?? m.savedDataset ?? 'cifar10-subset');
  const {test} = await loadDatasetPair(dataset, {
    dataDir: (flags.dataDir as string | undefined) ?? (flags.dataset ? null : m.savedDataDir),
    testLimit: Math.max(n, landscape ? posInt('landscape-examples', flags.landscapeExamples, 256) : 0),
    imageSize: H,
  });
  if (test.height !== H || test.width !== W || test.channels !== C) {
    throw new UsageError(`karat analyze: the model takes ${H}x${W}x${C} images, dataset ${test.name} has ` +
                         `${test.height}x${test.width}x${test.channels}; give --image files or a matching --dataset`);
  }
  const count = Math.min(n, test.size);
  const all = new Uint8Array(count * H * W * C);
  await test.readImages(Array.from({length: count}, (_, i) => i), all);
  const rgb = Array.from({length: count}, (_, i) => all.slice(i * H * W * C, (i + 1) * H * W * C));
  const labels = Array.from(test.labels.subarray(0, count));
  const captions = labels.map((l, i) => `${test.name} #${i}, label ${test.classNames[l]}`);
  let landscapeData: AnalysisImages['landscapeData'] = null;
  if (landscape) {
    const k = Math.min(test.size, posInt('landscape-examples', flags.landscapeExamples, 256));
    const px = new Uint8Array(k * H * W * C);
    await test.readImages(Array.from({length: k}, (_, i) => i), px);
    landscapeData = {px, labels: Array.from(test.labels.subarray(0, k))};
  }
  return {rgb, captions, classNames: test.classNames, landscapeData};
}

/** Which activation curves to draw: --curves block:head:p:q,..., else p = 0..3 of the last KArAt block. */
function curveSpecs(flags: Flags, karatLayers: an.AttentionLayerInfo[]): CurveSpec[] {
  if (flags.curves != null) {
    return String(flags.curves).split(',').map(s => {
      const v = s.split(':').map(Number);
      if (v.length !== 4 || v.some(n => !Number.isInteger(n) || n < 0)) {
        throw new UsageError(`karat analyze: --curves entries must be block:head:p:q (integers), got '${s}'`);
      }
      return {block: v[0], head: v[1], p: v[2], q: v[3]};
    });
  }
  const last = karatLayers[karatLayers.length - 1];
  const r = last.config!.rank === 'full' ? last.layer.operator!.tokens : last.config!.rank as number;
  return Array.from({length: Math.min(4, r)}, (_, p) => ({block: last.index, head: 0, p, q: 0}));
}

/** curves.svg (or curves_<i>.svg, one per block): learned φ̂_pq over the observed score range. */
function writeCurves(flags: Flags, model: tfl.LayersModel, x: tf.Tensor4D, layers: an.AttentionLayerInfo[],
                     report: ReportWriter): unknown[] {
  const karatLayers = layers.filter(l => l.kind === 'karat');
  const ranges = an.scoreRanges(model, x);
  const specs = curveSpecs(flags, karatLayers);
  const byBlock = new Map<number, typeof specs>();
  for (const s of specs) {
    if (s.block >= layers.length || layers[s.block].kind !== 'karat') {
      throw new UsageError(`karat analyze: --curves block ${s.block} is not a KArAt block (KArAt blocks: ${karatLayers.map(l => l.index).join(', ')})`);
    }
    byBlock.set(s.block, [...(byBlock.get(s.block) ?? []), s]);
  }
  const svgs: string[] = [];
  const curveSummary: unknown[] = [];
  for (const [block, list] of byBlock) {
    const op = layers[block].layer.operator!;
    const rs = list.map(s => ranges[block][s.head] ?? ranges[block][0]);
    const lo = Math.min(...rs.map(r => r.min)), hi = Math.max(...rs.map(r => r.max));
    const curves = an.activationCurves(op.cfg, op.params(), list, an.linspace(lo, hi, 160));
    svgs.push(an.renderCurves(curves, `Learned φ̂_pq(x), ${layers[block].name} (observed score range)`,
                              {min: lo, max: hi, p01: Math.min(...rs.map(r => r.p01)), p99: Math.max(...rs.map(r => r.p99))}));
    curveSummary.push({block, range: [lo, hi], pairs: list});
  }
  svgs.forEach((s, i) => report.write({[svgs.length === 1 ? 'curves.svg' : `curves_${i}.svg`]: s}));
  return curveSummary;
}

/** weights.svg: Fourier A/B, W and the Q/K kernels; returns their count, mean and std. */
function writeWeights(model: tfl.LayersModel, report: ReportWriter): Record<string, unknown> {
  const d = an.weightDistributions(model);
  report.write({'weights.svg': an.renderWeightHistograms(d)});
  const stats = (a: Float32Array) => {
    if (a.length === 0) return null;
    let m = 0, s = 0;
    for (const v of a) m += v / a.length;
    for (const v of a) s += (v - m) * (v - m) / a.length;
    return {count: a.length, mean: m, std: Math.sqrt(s)};
  };
  return {fourierA: stats(d.fourierA), fourierB: stats(d.fourierB), proj: stats(d.proj), query: stats(d.query), key: stats(d.key)};
}

/** landscape.svg: the loss surface around the --path checkpoints, on the landscape test images. */
async function writeLandscape(flags: Flags, model: tfl.LayersModel, images: AnalysisImages,
                              toTensor: (px: Uint8Array, n: number) => tf.Tensor4D, report: ReportWriter): Promise<unknown> {
  const files = pathCheckpoints(String(flags.path));
  if (files.length < 3) throw new UsageError(`karat analyze: --path needs >= 3 checkpoints, got ${files.length}`);
  const ld = images.landscapeData;
  if (ld == null) throw new UsageError('karat analyze: the loss landscape needs dataset images (not --image)');
  const current = model.getWeights().map(t => t.dataSync().slice() as Float32Array);
  const snapshots = files.map(f => {
    assignWeights(model, readCheckpoint(f), `checkpoint '${f}'`);
    return model.getWeights().map(t => t.dataSync().slice() as Float32Array);
  });
  model.setWeights(current.map((d, i) => tf.tensor(d, model.weights[i].shape as number[])));
  const xl = toTensor(ld.px, ld.labels.length);
  const res = posInt('resolution', flags.resolution, 15);
  let last = 0;
  const land = await an.lossLandscape({
    model, checkpoints: snapshots, loss: an.crossEntropyLoss(xl, ld.labels), resolution: res,
    onProgress: (d, t) => {
      if (d - last >= t / 10 || d === t) {
        last = d;
        console.log(`landscape: ${d}/${t} loss evaluations`);
      }
    },
  });
  xl.dispose();
  report.write({'landscape.svg': an.renderLandscape(land)});
  return {checkpoints: files, explained: land.explained, path: land.path, pathLosses: land.pathLosses,
          minLoss: Math.min(...land.losses), maxLoss: Math.max(...land.losses)};
}

export async function cmdAnalyze(argv: string[]): Promise<number> {
  const flags = commandFlags('analyze', argv, ['help'], KNOWN);
  if (flags.help) {
    console.log(ANALYZE_HELP);
    return 0;
  }
  const what = checkFlags(flags);
  const backend = await selectBackend(String(flags.backend ?? 'auto') as TrainConfig['backend']);
  console.log(`backend: ${backend.name} — ${backend.detail}`);

  const analysed = await loadAnalysedModel(flags);
  const {model, norm} = analysed;
  const inShape = model.inputs[0].shape;
  if (inShape.length !== 4 || inShape.slice(1).some(d => d == null || d < 1)) {
    throw new UsageError(`karat analyze: the model must take images [batch, height, width, channels], its input is [${inShape.map(d => d ?? 'null')}]`);
  }
  const [, H, W, C] = inShape as number[];
  const images = await loadImages(flags, what, analysed, [H, W, C]);
  if (C !== 3) throw new UsageError(`karat analyze: the maps need RGB models (3 channels), this one has ${C}`);
  const toTensor = (px: Uint8Array, n: number) => tf.tidy(() => {
    const x = tf.div(tf.tensor4d(px, [n, H, W, C], 'float32'), 255);
    return tf.div(tf.sub(x, tf.tensor1d(norm.mean)), tf.tensor1d(norm.std)) as tf.Tensor4D;
  });
  const batch = new Uint8Array(images.rgb.length * H * W * C);
  images.rgb.forEach((r, i) => batch.set(r, i * H * W * C));
  const x = toTensor(batch, images.rgb.length);
  const probs = (model.predict(x) as tf.Tensor).arraySync() as number[][];
  const captions = images.captions.map((c, i) => {
    const k = probs[i].indexOf(Math.max(...probs[i]));
    return `${c}; predicted ${images.classNames ? images.classNames[k] : `class ${k}`}`;
  });

  const report = new ReportWriter(String(flags.out ?? (flags.checkpoint ? join(dirname(String(flags.checkpoint)), 'analysis') : 'runs/analysis')));
  const layers = an.findAttentionLayers(model);
  const summary: Record<string, unknown> = {
    model: flags.checkpoint ?? flags.model, images: captions, blocks: layers.map(l => ({name: l.name, kind: l.kind, heads: l.heads})),
  };
  if (what.has('maps')) {
    const maps = an.attentionMaps(model, x);
    report.write(an.renderAttentionReport(maps, images.rgb.map(d => ({width: W, height: H, data: d})),
                                          {deflate: (b: Uint8Array) => new Uint8Array(deflateSync(b)), captions}));
    summary.mapsSigned = maps.signed;
  }
  if (what.has('spectra')) {
    const sp = an.attentionSpectra(model, x);
    report.write(an.renderSpectra(sp));
    summary.spectra = sp.blocks.map(b => ({name: b.name, heads: b.heads.map(h => ({
      scores: Array.from(h.scores.slice(0, 16)), softmax: Array.from(h.softmax.slice(0, 16)), activated: Array.from(h.activated.slice(0, 16)),
    }))}));
  }
  if (what.has('curves') && layers.some(l => l.kind === 'karat')) summary.curves = writeCurves(flags, model, x, layers, report);
  if (what.has('weights')) summary.weights = writeWeights(model, report);
  if (what.has('landscape') && flags.path != null) summary.landscape = await writeLandscape(flags, model, images, toTensor, report);
  x.dispose();
  report.write({'summary.json': JSON.stringify(summary, null, 2) + '\n'});

  const {out, written} = report;
  console.log(`wrote ${written.length} files to ${out}:`);
  for (const f of written.filter(f => !f.endsWith('.png'))) console.log(`  ${f}`);
  console.log(`  (+ ${written.filter(f => f.endsWith('.png')).length} PNG overlays under ${join(out, 'attention')})`);
  return 0;
}
