/**
 * The browser demo (bundled by scripts/build-demo.mjs into examples/demo/dist/demo.js):
 * loads model/model.json (a Fourier-KArAt ViT saved by train_demo_model.ts), picks WebGPU,
 * WebGL or wasm (or ?backend=NAME), classifies a bundled CIFAR-10 sample or a user image, and
 * shows the class-token attention maps, their rollout and the learned activation curves; the
 * fine-tuning panel (finetune_ui.ts) teaches the model the user's own classes.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-webgl';
import '@tensorflow/tfjs-backend-webgpu';
import {setWasmPaths} from '@tensorflow/tfjs-backend-wasm';
import * as tfl from '@tensorflow/tfjs-layers';

import * as karat from '../../src/index';
import {headCurvesSvg} from './curves';
import {setupFineTune} from './finetune_ui';

const an = karat.analysis;

interface Meta {
  classNames: string[];
  mean: number[];
  std: number[];
  testAccuracy: number;
  testImages: number;
  samples: Array<{file: string, label: number, className: string}>;
}

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

let model: tfl.LayersModel;
let meta: Meta;
let lastAttention: karat.analysis.BlockAttentionData[] | null = null;
let busy: Promise<void> = Promise.resolve();

function fail(e: unknown) {
  const msg = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  $('error').textContent = msg;
  $('status').textContent = 'error';
  console.error(e);
}

async function pickBackend(): Promise<string> {
  const forced = new URLSearchParams(location.search).get('backend');
  const order = forced ? [forced] : ['webgpu', 'webgl', 'wasm'];
  setWasmPaths(new URL('dist/', location.href).href);  // the .wasm binaries copied next to demo.js
  for (const name of order) {
    if (name === 'webgpu' && !('gpu' in navigator)) continue;
    try {
      if (await tf.setBackend(name)) {
        await tf.ready();
        return name;
      }
    } catch (e) {
      console.warn(`backend ${name} unavailable:`, e);
    }
  }
  await tf.setBackend('cpu');
  return 'cpu';
}

/** Draws an image source into a 32 x 32 canvas and returns its RGB bytes. */
function toRGB32(src: CanvasImageSource): Uint8Array {
  const c = document.createElement('canvas');
  c.width = 32;
  c.height = 32;
  const ctx = c.getContext('2d')!;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(src, 0, 0, 32, 32);
  const rgba = ctx.getImageData(0, 0, 32, 32).data;
  const rgb = new Uint8Array(32 * 32 * 3);
  for (let i = 0; i < 32 * 32; i++) for (let ch = 0; ch < 3; ch++) rgb[i * 3 + ch] = rgba[i * 4 + ch];
  return rgb;
}

function drawRGBA(canvas: HTMLCanvasElement, rgba: Uint8ClampedArray, w: number, h: number) {
  canvas.width = w;
  canvas.height = h;
  canvas.getContext('2d')!.putImageData(new ImageData(new Uint8ClampedArray(rgba), w, h), 0, 0);
}

function showInput(rgb: Uint8Array) {
  const o = an.renderOverlay({width: 32, height: 32, data: rgb}, [0], {grid: [1, 1], alpha: 0, scale: 4, barHeight: 0});
  drawRGBA($<HTMLCanvasElement>('input'), o.rgba, o.width, o.height);
}

async function classify(rgb: Uint8Array, source: string) {
  showInput(rgb);
  $('status').textContent = `classifying ${source}…`;
  const x = tf.tidy(() => {
    const mean = tf.tensor1d(meta.mean), std = tf.tensor1d(meta.std);
    const img = tf.div(tf.tensor4d(rgb, [1, 32, 32, 3], 'int32'), 255);
    return tf.div(tf.sub(img, mean), std) as tf.Tensor4D;
  });
  try {
    const out = model.predict(x) as tf.Tensor;
    const probs = Array.from(await out.data());
    out.dispose();
    const order = probs.map((p, i) => [p, i]).sort((a, b) => b[0] - a[0]);
    const best = meta.classNames[order[0][1]];
    const pred = $('prediction');
    pred.textContent = best;
    pred.dataset.label = best;
    $('probs').innerHTML = order.slice(0, 3)
        .map(([p, i]) => `<div class="prob">${meta.classNames[i].padEnd(10, '\u00a0')} ${(100 * p).toFixed(1)}%</div>`).join('');
    lastAttention = await an.computeAttentionAsync(model, x);
    const maps = an.attentionMapsFromData(model, lastAttention);
    renderMaps(maps, rgb);
    renderCurves();
    $('status').textContent = `done (${source})`;
    document.body.dataset.classified = String(Number(document.body.dataset.classified ?? 0) + 1);
  } finally {
    x.dispose();
  }
}

function renderMaps(maps: karat.analysis.AttentionMapsResult, rgb: Uint8Array) {
  const im = maps.images[0];
  const image = {width: 32, height: 32, data: rgb};
  const all = im.maps.flatMap(m => m.flatMap(r => Array.from(r)));
  const sc = an.autoScale(all, maps.signed ? true : undefined);
  const rsc = an.autoScale(im.rollout, maps.signed ? true : undefined);
  const ro = an.renderOverlay(image, im.rollout, {grid: maps.grid, scale: 6, colorScale: rsc});
  drawRGBA($<HTMLCanvasElement>('rollout'), ro.rgba, ro.width, ro.height);
  const table = document.createElement('table');
  const head = table.insertRow();
  head.insertCell().textContent = '';
  im.maps[0].forEach((_, h) => (head.insertCell().textContent = `head ${h}`));
  im.maps.forEach((heads, j) => {
    const row = table.insertRow();
    row.insertCell().textContent = `block ${j}`;
    heads.forEach(m => {
      const c = document.createElement('canvas');
      const o = an.renderOverlay(image, m, {grid: maps.grid, scale: 3, colorScale: sc});
      drawRGBA(c, o.rgba, o.width, o.height);
      row.insertCell().appendChild(c);
    });
  });
  $('maps').replaceChildren(table);
  $('legend').textContent = sc.colormap.diverging ?
      `Diverging colour scale: blue = negative, white = 0, red = positive (range ±${an.fmt(sc.max)}). ` +
      'KArAt attention is a learned operator, not a softmax: its weights can be negative. ' +
      'The strip under each map is the colour bar; the black tick marks 0.' :
      `Sequential colour scale (viridis) from ${an.fmt(sc.min)} to ${an.fmt(sc.max)}; all values are >= 0.`;
}

async function renderCurves() {
  if (lastAttention == null) return;
  const j = Number($<HTMLSelectElement>('curve-block').value), h = Number($<HTMLSelectElement>('curve-head').value);
  const d = lastAttention[j];
  const qIn = $<HTMLInputElement>('curve-q');
  qIn.max = String(d.tokens - 1);
  const q = Math.min(d.tokens - 1, Math.max(0, Math.floor(Number(qIn.value) || 0)));
  const svg = await headCurvesSvg(model, lastAttention, {block: j, head: h, q, maxCurves: Infinity,
    title: `φ̂_pq(x), block ${j}, head ${h}, q = ${q}${q === 0 ? ' (class token)' : ''}`});
  if (svg == null) $('curves').textContent = 'This block uses softmax attention or a non-Fourier basis.';
  else $('curves').innerHTML = svg;
}

async function loadSample(file: string, name: string, button?: HTMLElement) {
  document.querySelectorAll('#samples button').forEach(b => b.classList.remove('active'));
  button?.classList.add('active');
  const blob = await (await fetch(file)).blob();
  const bmp = await createImageBitmap(blob);
  await classify(toRGB32(bmp), name);
}

async function loadFile(f: File) {
  const bmp = await createImageBitmap(f);
  await classify(toRGB32(bmp), f.name);
}

function queue(job: () => Promise<void>) {
  busy = busy.then(job).catch(fail);
}

async function main() {
  const backend = await pickBackend();
  $('backend').textContent = backend;
  document.body.dataset.backend = backend;
  meta = await (await fetch('samples.json')).json() as Meta;
  model = await tfl.loadLayersModel('model/model.json');
  const blocks = an.findAttentionLayers(model);
  $('model-info').textContent =
      `ViT with ${blocks.length} blocks, ${blocks[0].heads} heads, ${blocks[0].kind === 'karat' ?
      `Fourier-KArAt (grid ${blocks[0].config!.grid}, rank ${blocks[0].config!.rank})` : 'softmax'} attention, ` +
      `${model.countParams()} parameters; ${(100 * meta.testAccuracy).toFixed(1)}% accuracy on ` +
      `${meta.testImages} CIFAR-10 test images. The bundled samples are test images it classifies correctly.`;
  const bs = $<HTMLSelectElement>('curve-block'), hs = $<HTMLSelectElement>('curve-head');
  blocks.forEach((_, j) => bs.add(new Option(String(j), String(j), j === blocks.length - 1, j === blocks.length - 1)));
  for (let h = 0; h < blocks[0].heads; h++) hs.add(new Option(String(h), String(h)));
  for (const el of [bs, hs, $('curve-q')]) el.addEventListener('change', () => queue(renderCurves));
  for (const s of meta.samples) {
    const b = document.createElement('button');
    b.title = s.className;
    b.dataset.className = s.className;
    const img = document.createElement('img');
    img.src = s.file;
    img.width = 64;
    img.height = 64;
    img.alt = s.className;
    b.appendChild(img);
    b.addEventListener('click', () => queue(() => loadSample(s.file, s.className, b)));
    $('samples').appendChild(b);
  }
  const drop = $('drop');
  drop.addEventListener('dragover', e => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', e => {
    e.preventDefault();
    drop.classList.remove('over');
    const f = e.dataTransfer?.files[0];
    if (f) queue(() => loadFile(f));
  });
  $<HTMLInputElement>('file').addEventListener('change', e => {
    const f = (e.target as HTMLInputElement).files?.[0];
    if (f) queue(() => loadFile(f));
  });
  setupFineTune({model, mean: meta.mean, std: meta.std, imageSize: model.inputs[0].shape[1] as number, backend});
  $('status').textContent = 'ready';
  document.body.dataset.ready = '1';
}

main().catch(fail);
