/**
 * The demo's fine-tuning panel: the user's classes (file picker, drag and drop, camera), a new
 * head trained in the page with karat.fineTune (progress bar, per-epoch loss and held-out
 * accuracy, Stop), predictions on new images with attention maps and KArAt curves before and
 * after, and saving (IndexedDB, download) and reloading with tf.loadLayersModel. Only the
 * package's public API is used. Bad input gets a message in #ft-message; nothing added is lost.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

import * as karat from '../../src/index';
import {headCurvesSvg} from './curves';

const an = karat.analysis;
const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

/** Largest file read (bytes) and decoded image (pixels) accepted. */
const MAX_FILE_BYTES = 20e6;
const MAX_PIXELS = 4096 * 4096;
const MAX_CLASSES = 10, MAX_IMAGES_PER_CLASS = 200;
const IDB_URL = 'indexeddb://karat-demo-finetuned';

interface UserImage {
  pixels: ImageData;
  thumb: string;
  name: string;
}

interface ClassEntry {
  id: number;
  name: HTMLInputElement;
  images: UserImage[];
  el: HTMLElement;
}

export interface DemoContext {
  model: tfl.LayersModel;
  mean: number[];
  std: number[];
  imageSize: number;
  backend: string;
}

let ctx: DemoContext;
const classes: ClassEntry[] = [];
let nextId = 0;
let tuned: tfl.LayersModel | null = null;
let tunedClasses: string[] = [];
let stopRequested = false;
let training = false;
let lastTry: {rgb: Uint8Array, before: karat.analysis.BlockAttentionData[], after: karat.analysis.BlockAttentionData[]} | null = null;

function message(text: string) {
  $('ft-message').textContent = text;
}

function describeError(e: unknown): string {
  if (e instanceof karat.ImageListError || (e instanceof Error && e.name === 'Error')) return e.message;
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** Decodes a file into ImageData, after checking its type and size; throws an Error with a message for the page. */
async function decode(file: File): Promise<ImageData> {
  if (file.size > MAX_FILE_BYTES) {
    throw new Error(`${file.name} is ${(file.size / 1e6).toFixed(1)} MB; images up to ${MAX_FILE_BYTES / 1e6} MB are accepted`);
  }
  let bmp: ImageBitmap;
  try {
    bmp = await createImageBitmap(file);
  } catch {
    throw new Error(`${file.name} is not an image this browser can read${file.type ? ` (type ${file.type})` : ''}`);
  }
  try {
    if (bmp.width * bmp.height > MAX_PIXELS) {
      throw new Error(`${file.name} is ${bmp.width} x ${bmp.height} pixels; images up to ${MAX_PIXELS / (1 << 20)} megapixels are accepted`);
    }
    return bitmapPixels(bmp);
  } finally {
    bmp.close();
  }
}

/** The pixels of an image source, scaled down (keeping the aspect) so that the short side is at most 128. */
function bitmapPixels(src: CanvasImageSource & {width: number, height: number}): ImageData {
  const w = (src as {videoWidth?: number}).videoWidth || src.width, h = (src as {videoHeight?: number}).videoHeight || src.height;
  const s = Math.min(1, 128 / Math.min(w, h));
  const c = document.createElement('canvas');
  c.width = Math.max(1, Math.round(w * s));
  c.height = Math.max(1, Math.round(h * s));
  const g = c.getContext('2d')!;
  g.imageSmoothingQuality = 'high';
  g.drawImage(src, 0, 0, c.width, c.height);
  return g.getImageData(0, 0, c.width, c.height);
}

function thumbOf(px: ImageData): string {
  const c = document.createElement('canvas');
  c.width = px.width;
  c.height = px.height;
  c.getContext('2d')!.putImageData(px, 0, 0);
  return c.toDataURL();
}

function renderClass(c: ClassEntry) {
  const thumbs = c.el.querySelector('.thumbs')!;
  thumbs.replaceChildren(...c.images.map((im) => {
    const img = document.createElement('img');
    img.src = im.thumb;
    img.title = im.name;
    return img;
  }));
  c.el.querySelector('.count')!.textContent = `${c.images.length} image${c.images.length === 1 ? '' : 's'}`;
  c.el.dataset.count = String(c.images.length);
}

/** Adds files to a class; a file that is not an acceptable image is skipped with a message, the rest are kept. */
async function addFiles(c: ClassEntry, files: Iterable<File>) {
  const problems: string[] = [];
  for (const f of files) {
    if (c.images.length >= MAX_IMAGES_PER_CLASS) {
      problems.push(`class '${c.name.value}' has ${MAX_IMAGES_PER_CLASS} images, the most accepted; ${f.name} was not added`);
      continue;
    }
    try {
      const pixels = await decode(f);
      c.images.push({pixels, thumb: thumbOf(pixels), name: f.name});
    } catch (e) {
      problems.push(describeError(e));
    }
  }
  renderClass(c);
  message(problems.join('\n'));
  document.body.dataset.ftImages = String(classes.reduce((a, k) => a + k.images.length, 0));
}

function addClass(name: string) {
  if (classes.length >= MAX_CLASSES) {
    message(`at most ${MAX_CLASSES} classes`);
    return;
  }
  const id = nextId++;
  const el = document.createElement('div');
  el.className = 'ft-class';
  el.id = `ft-class-${id}`;
  el.innerHTML = `<input class="name" value=""> <input type="file" class="files" id="ft-files-${id}" accept="image/*" multiple>
    <button class="camera" hidden>take a photo</button> <button class="remove">remove class</button>
    <span class="count">0 images</span> <span class="legend">(or drop images here)</span><div class="thumbs"></div>`;
  const entry: ClassEntry = {id, name: el.querySelector('input.name')!, images: [], el};
  entry.name.value = name;
  const files = el.querySelector<HTMLInputElement>('input.files')!;
  files.addEventListener('change', () => {
    const list = Array.from(files.files ?? []);
    files.value = '';
    void addFiles(entry, list);
  });
  el.addEventListener('dragover', (e) => {
    e.preventDefault();
    el.classList.add('over');
  });
  el.addEventListener('dragleave', () => el.classList.remove('over'));
  el.addEventListener('drop', (e) => {
    e.preventDefault();
    el.classList.remove('over');
    void addFiles(entry, Array.from(e.dataTransfer?.files ?? []));
  });
  const cam = el.querySelector<HTMLButtonElement>('button.camera')!;
  if (typeof navigator.mediaDevices?.getUserMedia === 'function') {
    cam.hidden = false;
    cam.addEventListener('click', () => void snap(entry));
  }
  el.querySelector('button.remove')!.addEventListener('click', () => {
    if (classes.length <= 2) {
      message('fine-tuning needs at least 2 classes; this one stays');
      return;
    }
    classes.splice(classes.indexOf(entry), 1);
    el.remove();
  });
  classes.push(entry);
  $('ft-classes').appendChild(el);
  renderClass(entry);
}

let stream: MediaStream | null = null;
async function snap(c: ClassEntry) {
  try {
    const video = $<HTMLVideoElement>('ft-video');
    if (stream == null) {
      stream = await navigator.mediaDevices.getUserMedia({video: {width: 320, height: 240}});
      video.srcObject = stream;
      $('ft-camera').hidden = false;
      await video.play();
    }
    const px = bitmapPixels(video as unknown as CanvasImageSource & {width: number, height: number});
    c.images.push({pixels: px, thumb: thumbOf(px), name: 'camera'});
    renderClass(c);
  } catch (e) {
    message(`the camera is not available: ${describeError(e)}`);
  }
}

function setBusy(on: boolean) {
  training = on;
  $<HTMLButtonElement>('ft-start').disabled = on;
  $<HTMLButtonElement>('ft-stop').disabled = !on;
}

async function startFineTune() {
  if (training) return;
  message('');
  const classNames = classes.map((c, k) => c.name.value.trim() || `class ${k + 1}`);
  let list: karat.ImageList, split: {train: karat.ImageList, heldOut: karat.ImageList};
  try {
    const items = classes.flatMap((c, k) => c.images.map((im) => ({image: im.pixels, label: k})));
    list = karat.imageList(items, {classNames, imageSize: ctx.imageSize, maxPixels: MAX_PIXELS, maxClasses: MAX_CLASSES});
    split = karat.splitHeldOut(list, {fraction: Number($<HTMLInputElement>('ft-heldout').value) || 0.25, seed: 1});
  } catch (e) {
    message(describeError(e));
    return;
  }
  const epochs = Math.max(1, Math.min(100, Math.floor(Number($<HTMLInputElement>('ft-epochs').value) || 8)));
  const trainAll = document.querySelector<HTMLInputElement>('input[name="ft-train"]:checked')?.value === 'all';
  setBusy(true);
  stopRequested = false;
  const bar = $<HTMLProgressElement>('ft-progress');
  const body = $('ft-log').querySelector('tbody')!;
  body.replaceChildren();
  bar.value = 0;
  const status = $('ft-status');
  let model: tfl.LayersModel | null = null;
  try {
    status.textContent = 'new head…';
    model = await karat.withNewHead(ctx.model, classNames.length, 1);  // seeded: the same images give the same run
    const t0 = performance.now();
    const r = await karat.fineTune(model, split.train, split.heldOut, {
      epochs, batchSize: 8, learningRate: trainAll ? 5e-4 : 2e-3, freeze: trainAll ? null : 'all-but-karat-and-head',
      augment: $<HTMLInputElement>('ft-augment').checked ? {} : false, mean: ctx.mean, std: ctx.std,
      shouldStop: () => stopRequested,
      onBatch: (p) => {
        bar.max = p.steps;
        bar.value = p.step;
        status.textContent = `epoch ${p.epoch}/${p.epochs}, step ${p.batch}/${p.batches}, loss ${p.loss.toFixed(3)} · ${((performance.now() - t0) / 1000).toFixed(0)} s`;
        document.body.dataset.ftSteps = String(p.step);
      },
      onEpochEnd: (e) => {
        const row = body.insertRow();
        for (const v of [String(e.epoch), e.loss.toFixed(3), e.heldOutLoss?.toFixed(3) ?? '–',
                         e.heldOutAccuracy == null ? '–' : `${(100 * e.heldOutAccuracy).toFixed(1)}%`, e.seconds.toFixed(1)]) {
          row.insertCell().textContent = v;
        }
        row.dataset.accuracy = String(e.heldOutAccuracy);
      },
    });
    const last = r.history[r.history.length - 1];
    status.textContent = `${r.stopped ? 'stopped' : 'done'} after ${r.steps} steps on ${ctx.backend}` +
        (last ? `: held-out accuracy ${(100 * (last.heldOutAccuracy ?? 0)).toFixed(1)}% on ${split.heldOut.count} images` : '');
    tuned?.dispose();
    tuned = model;
    model = null;
    tunedClasses = classNames;
    $('ft-after').hidden = false;
    setupCurveSelectors();
    document.body.dataset.finetuned = String(Number(document.body.dataset.finetuned ?? 0) + 1);
    document.body.dataset.ftStopped = String(r.stopped);
  } catch (e) {
    message(describeError(e));
    status.textContent = 'fine-tuning failed';
  } finally {
    model?.dispose();
    setBusy(false);
  }
}

function rgbOf(px: ImageData): Uint8Array {
  const out = new Uint8Array(ctx.imageSize * ctx.imageSize * 3);
  karat.resizeToSquareRGB({w: px.width, h: px.height, c: 4, data: px.data}, ctx.imageSize, out);
  return out;
}

function normalised(rgb: Uint8Array): tf.Tensor4D {
  const S = ctx.imageSize;
  return tf.tidy(() => tf.div(tf.sub(tf.div(tf.tensor4d(rgb, [1, S, S, 3], 'int32'), 255), ctx.mean), ctx.std) as tf.Tensor4D);
}

/** Class probabilities of the fine-tuned model (logits -> softmax) on one RGB image. */
async function probabilities(model: tfl.LayersModel, rgb: Uint8Array): Promise<Float32Array> {
  const x = normalised(rgb);
  const p = tf.tidy(() => tf.softmax(model.predict(x) as tf.Tensor2D));
  const out = await p.data() as Float32Array;
  tf.dispose([x, p]);
  return out;
}

function drawRGBA(canvas: HTMLCanvasElement, rgba: Uint8ClampedArray, w: number, h: number) {
  canvas.width = w;
  canvas.height = h;
  canvas.getContext('2d')!.putImageData(new ImageData(new Uint8ClampedArray(rgba), w, h), 0, 0);
}

function renderMaps(model: tfl.LayersModel, data: karat.analysis.BlockAttentionData[], rgb: Uint8Array, rollout: string, mapsId: string) {
  const maps = an.attentionMapsFromData(model, data);
  const im = maps.images[0];
  const S = ctx.imageSize;
  const image = {width: S, height: S, data: rgb};
  const sc = an.autoScale(im.maps.flatMap((m) => m.flatMap((r) => Array.from(r))), maps.signed ? true : undefined);
  const rsc = an.autoScale(im.rollout, maps.signed ? true : undefined);
  const ro = an.renderOverlay(image, im.rollout, {grid: maps.grid, scale: 4, colorScale: rsc});
  drawRGBA($<HTMLCanvasElement>(rollout), ro.rgba, ro.width, ro.height);
  const table = document.createElement('table');
  im.maps.forEach((heads, j) => {
    const row = table.insertRow();
    row.insertCell().textContent = `block ${j}`;
    heads.forEach((m) => {
      const c = document.createElement('canvas');
      const o = an.renderOverlay(image, m, {grid: maps.grid, scale: 2, colorScale: sc});
      drawRGBA(c, o.rgba, o.width, o.height);
      row.insertCell().appendChild(c);
    });
  });
  $(mapsId).replaceChildren(table);
}

function setupCurveSelectors() {
  const blocks = an.findAttentionLayers(ctx.model);
  const bs = $<HTMLSelectElement>('ft-curve-block'), hs = $<HTMLSelectElement>('ft-curve-head');
  if (bs.options.length) return;
  blocks.forEach((_, j) => bs.add(new Option(String(j), String(j), j === blocks.length - 1, j === blocks.length - 1)));
  for (let h = 0; h < blocks[0].heads; h++) hs.add(new Option(String(h), String(h)));
  for (const el of [bs, hs]) el.addEventListener('change', () => void renderCurvePair());
}

async function curvesOf(model: tfl.LayersModel, data: karat.analysis.BlockAttentionData[], j: number, h: number, title: string): Promise<string> {
  const svg = await headCurvesSvg(model, data, {block: j, head: h, q: 0, maxCurves: 4,
    title: `${title}: block ${j}, head ${h}, q = 0 (class token)`});
  return svg ?? 'softmax attention or a non-Fourier basis: no learned curves';
}

async function renderCurvePair() {
  if (lastTry == null || tuned == null) return;
  const j = Number($<HTMLSelectElement>('ft-curve-block').value), h = Number($<HTMLSelectElement>('ft-curve-head').value);
  $('ft-curves-before').innerHTML = await curvesOf(ctx.model, lastTry.before, j, h, 'before');
  $('ft-curves-after').innerHTML = await curvesOf(tuned, lastTry.after, j, h, 'after');
}

async function tryImage(file: File) {
  if (tuned == null) return;
  message('');
  let px: ImageData;
  try {
    px = await decode(file);
  } catch (e) {
    message(describeError(e));
    return;
  }
  const rgb = rgbOf(px);
  const probs = await probabilities(tuned, rgb);
  const order = Array.from(probs).map((p, i) => [p, i]).sort((a, b) => b[0] - a[0]);
  const pred = $('ft-prediction');
  pred.textContent = tunedClasses[order[0][1]];
  pred.dataset.label = tunedClasses[order[0][1]];
  $('ft-probs').textContent = order.slice(0, 3).map(([p, i]) => `${tunedClasses[i]} ${(100 * p).toFixed(1)}%`).join(' · ');
  const x = normalised(rgb);
  try {
    const before = await an.computeAttentionAsync(ctx.model, x);
    const after = await an.computeAttentionAsync(tuned, x);
    lastTry = {rgb, before, after};
    renderMaps(ctx.model, before, rgb, 'ft-rollout-before', 'ft-maps-before');
    renderMaps(tuned, after, rgb, 'ft-rollout-after', 'ft-maps-after');
    await renderCurvePair();
  } finally {
    x.dispose();
  }
  document.body.dataset.ftTried = String(Number(document.body.dataset.ftTried ?? 0) + 1);
}

/** Saves to IndexedDB, with the class names next to it in localStorage. */
async function save() {
  if (tuned == null) return;
  try {
    await tuned.save(IDB_URL);
    localStorage.setItem('karat-demo-finetuned-classes', JSON.stringify(tunedClasses));
    $('ft-save-status').textContent = `saved to ${IDB_URL}`;
    document.body.dataset.ftSaved = '1';
  } catch (e) {
    message(`saving failed: ${describeError(e)}`);
  }
}

/** Reloads the saved model with tf.loadLayersModel and compares its predictions on the held-out and tried images. */
async function reload() {
  try {
    const loaded = await tfl.loadLayersModel(IDB_URL);
    const probe = lastTry?.rgb ?? new Uint8Array(ctx.imageSize * ctx.imageSize * 3).fill(128);
    const a = await probabilities(tuned!, probe), b = await probabilities(loaded, probe);
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i] - b[i]));
    loaded.dispose();
    $('ft-save-status').textContent = `reloaded from ${IDB_URL} with tf.loadLayersModel: largest probability difference ${diff.toExponential(2)}`;
    document.body.dataset.ftReloadDiff = String(diff);
  } catch (e) {
    message(`reloading failed: ${describeError(e)}`);
  }
}

async function download() {
  if (tuned == null) return;
  try {
    await tuned.save('downloads://karat-finetuned');
    $('ft-save-status').textContent = 'downloaded karat-finetuned.json and karat-finetuned.weights.bin (load with tf.loadLayersModel after importing tfjs-karat)';
  } catch (e) {
    message(`download failed: ${describeError(e)}`);
  }
}

export function setupFineTune(c: DemoContext) {
  ctx = c;
  $('ft-backend').textContent = c.backend;
  addClass('class A');
  addClass('class B');
  $('ft-add-class').addEventListener('click', () => addClass(`class ${String.fromCharCode(65 + classes.length)}`));
  $('ft-start').addEventListener('click', () => void startFineTune());
  $('ft-stop').addEventListener('click', () => {
    stopRequested = true;
    $('ft-status').textContent = 'stopping after this step…';
  });
  const tryIn = $<HTMLInputElement>('ft-try');
  tryIn.addEventListener('change', () => {
    const f = tryIn.files?.[0];
    tryIn.value = '';
    if (f) void tryImage(f);
  });
  $('ft-save').addEventListener('click', () => void save());
  $('ft-load').addEventListener('click', () => void reload());
  $('ft-download').addEventListener('click', () => void download());
}

