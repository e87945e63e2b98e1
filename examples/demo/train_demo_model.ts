/**
 * The model shipped with the browser demo, its bundled sample images and example analyses.
 * Run from the project root:
 *
 *     npx tsx examples/demo/train_demo_model.ts --from-run RUN_DIR [--out examples/demo]
 *         ships a `karat train` run: its best.ckpt becomes <out>/model (softmax output), scored
 *         on the CIFAR-10 test split of the subset data package (packages/cifar10-subset/cifar10-subset.kds)
 *     npx tsx examples/demo/train_demo_model.ts [--data cifar-10-binary.tar.gz]   (default: the --download cache)
 *         [--train 10000] [--epochs 2] [--out examples/demo] [--analysis runs/demo-analysis]
 *         trains the earlier, smaller demo model here (ViT patch 8, dim 32, depth 3, 2 heads,
 *         Fourier-KArAt G3B rank 8, ~30 k parameters; about 35% test accuracy)
 *     npx tsx examples/demo/train_demo_model.ts --select-only   (re-pick samples for the saved model)
 *
 * The shipped model is trained with the study's recipe (docs/results/study-cifar10/config.json:
 * ViT 32x32, patch 4, dim 48, depth 3, 3 heads, MLP ratio 2, Fourier-KArAt G3B rank 12, AdamW
 * 2e-3 cosine, 5 epochs on 10,000 CIFAR-10 training images, wasm backend on one core):
 *
 *     karat train --config docs/results/study-cifar10/config.json --data-dir cifar-10-binary.tar.gz \
 *         --seed 1 --test-limit 2000 --run-name demo
 *     npx tsx examples/demo/train_demo_model.ts --from-run runs/demo
 *
 * Writes: <out>/model/{model.json,weights.bin}, <out>/samples/*.png, <out>/samples.json (file,
 * label, class name — samples are test images the model classifies correctly with a top-2
 * margin >= 0.15, one per class where possible; the test accuracy is recorded next to them)
 * and, under --analysis (training here only), attention maps, spectra, curves, histograms and
 * the loss landscape of the run's checkpoints.
 */
import {mkdirSync, readdirSync, readFileSync, unlinkSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';
import {deflateSync} from 'node:zlib';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';

import * as karat from '../../src/node';
import {loadCifar} from '../../src/data/cifar';
import type {ImageDataset} from '../../src/data/dataset';
import {defaultCacheDir} from '../../src/data/download';
import {mulberry32} from '../../src/data/rng';

/** Where `karat train --dataset cifar10 --download` puts the archive. */
const CIFAR10_ARCHIVE = join(defaultCacheDir(), 'cifar-10-binary.tar.gz');

const an = karat.analysis;

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
}

export const DEMO_MODEL = {
  dim: 32, depth: 3, heads: 2, mlpRatio: 2, imageSize: 32, patchSize: 8, numClasses: 10,
  attention: {type: 'fourier', grid: 3, rank: 8, mode: 'blockwise', seed: 7} as const,
};
/** Per-channel mean and std of CIFAR-10 training images (pixel / 255). */
export const MEAN = [0.4914, 0.4822, 0.4465];
export const STD = [0.2470, 0.2435, 0.2616];

function normalise(px: Uint8Array, n: number): tf.Tensor4D {
  const out = new Float32Array(n * 32 * 32 * 3);
  for (let i = 0; i < out.length; i++) out[i] = (px[i] / 255 - MEAN[i % 3]) / STD[i % 3];
  return tf.tensor4d(out, [n, 32, 32, 3]);
}

function augment(px: Uint8Array, n: number, rnd: () => number): Uint8Array {
  const out = new Uint8Array(px.length);
  for (let b = 0; b < n; b++) {
    const dx = Math.floor(rnd() * 9) - 4, dy = Math.floor(rnd() * 9) - 4, flip = rnd() < 0.5;
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) {
        const sx = (flip ? 31 - x : x) + dx, sy = y + dy;
        for (let c = 0; c < 3; c++) {
          out[((b * 32 + y) * 32 + x) * 3 + c] = sx < 0 || sx > 31 || sy < 0 || sy > 31 ? 0 :
              px[((b * 32 + sy) * 32 + sx) * 3 + c];
        }
      }
    }
  }
  return out;
}

/**
 * Accuracy on the first 2,000 test images, and up to 6 samples (one per class, in class order)
 * among the test images the model classifies correctly with a margin of at least 0.15 between
 * the top two probabilities (so that float differences between backends cannot flip them).
 */
async function selectSamples(model: tfl.LayersModel, test: ImageDataset, outDir: string,
                             info: Record<string, unknown>, nTest = 2000): Promise<Array<Record<string, unknown>>> {
  const P = 32 * 32 * 3;
  const preds = new Int32Array(nTest), margins = new Float32Array(nTest);
  for (let s = 0; s < nTest; s += 250) {
    const n = Math.min(250, nTest - s);
    const x = normalise(test.images!.subarray(s * P, (s + n) * P), n);
    const probs = model.predict(x) as tf.Tensor2D;  // softmax head: probabilities
    const {values, indices} = tf.topk(probs, 2);
    const v = values.dataSync(), ix = indices.dataSync();
    for (let i = 0; i < n; i++) {
      preds[s + i] = ix[2 * i];
      margins[s + i] = v[2 * i] - v[2 * i + 1];
    }
    tf.dispose([x, probs, values, indices]);
  }
  let correct = 0;
  for (let i = 0; i < nTest; i++) if (preds[i] === test.labels[i]) correct++;
  const acc = correct / nTest;
  console.log(`test accuracy on ${nTest} test images (${test.name}): ${(100 * acc).toFixed(2)}%`);
  mkdirSync(join(outDir, 'samples'), {recursive: true});
  for (const f of readdirSync(join(outDir, 'samples'))) unlinkSync(join(outDir, 'samples', f));
  const samples: Array<Record<string, unknown>> = [];
  for (let c = 0; c < 10 && samples.length < 6; c++) {
    const i = Array.from({length: nTest}, (_, k) => k).find(k => test.labels[k] === c && preds[k] === c && margins[k] >= 0.15);
    if (i == null) continue;
    const rgb = test.images!.subarray(i * P, (i + 1) * P);
    const file = `samples/${test.classNames[c]}_${i}.png`;
    writeFileSync(join(outDir, file), an.encodePNG(rgb, 32, 32, 3, {deflate: b => deflateSync(b)}));
    samples.push({file, label: c, className: test.classNames[c], testIndex: i, margin: Number(margins[i].toFixed(3))});
  }
  writeFileSync(join(outDir, 'samples.json'), JSON.stringify({
    classNames: test.classNames, mean: MEAN, std: STD, testAccuracy: acc, testImages: nTest, ...info,
    note: 'samples are CIFAR-10 test images that this model classifies correctly (top-2 probability margin >= 0.15)',
    samples,
  }, null, 2) + '\n');
  return samples;
}

/**
 * --from-run DIR: ships DIR/best.ckpt of a `karat train` run as <out>/model, its head ending in
 * softmax (the page shows probabilities), scored on the embedded CIFAR-10 test split.
 */
async function fromRun(runDir: string) {
  await tf.setBackend('cpu');
  const outDir = arg('out', 'examples/demo');
  const ck = karat.training.readCheckpoint(join(runDir, 'best.ckpt'));
  const trained = await karat.training.modelFromCheckpoint(ck, 'best.ckpt');
  let art: tf.io.ModelArtifacts | null = null;
  await trained.save(tf.io.withSaveHandler(async (a) => {
    art = a;
    return {modelArtifactsInfo: {dateSaved: new Date(), modelTopologyType: 'JSON'}};
  }));
  const a = art! as tf.io.ModelArtifacts;
  // tslint:disable-next-line:no-any
  const topo = a.modelTopology as any;
  const mc = topo.model_config ?? topo;
  const out = mc.config.output_layers[0][0];
  const head = mc.config.layers.find((l: {config: {name: string}}) => l.config.name === out);
  head.config.activation = 'softmax';
  const model = await tfl.loadLayersModel(tf.io.fromMemory(a));
  mkdirSync(join(outDir, 'model'), {recursive: true});
  await model.save(karat.io.fileSystem(join(outDir, 'model')));
  const test = karat.data.loadSubset('test');
  const log = readFileSync(join(runDir, 'log.csv'), 'utf8').trim().split('\n');
  await selectSamples(model, test, outDir, {
    trainImages: (() => {
      const c = JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8'));
      return c.trainLimit - c.valSplit;
    })(), epochs: log.length - 1,
    recipe: 'karat train --config docs/results/study-cifar10/config.json --seed 1 (best.ckpt by validation top-1)',
    testSet: `CIFAR-10 test split of the subset data package (packages/cifar10-subset/cifar10-subset.kds, ${test.size} images)`,
  }, test.size);
}

/** --select-only: re-pick the samples for the saved model in <out>/model. */
async function selectOnly() {
  await tf.setBackend('cpu');
  const outDir = arg('out', 'examples/demo');
  const test = await loadCifar(arg('data', CIFAR10_ARCHIVE), 'cifar10', 'test');
  const model = await tfl.loadLayersModel(karat.io.fileSystem(join(outDir, 'model')));
  const old = JSON.parse(readFileSync(join(outDir, 'samples.json'), 'utf8'));
  await selectSamples(model, test, outDir, {trainImages: old.trainImages, epochs: old.epochs});
}

async function main() {
  await tf.setBackend('cpu');
  const dataPath = arg('data', CIFAR10_ARCHIVE);
  const nTrain = Number(arg('train', '10000'));
  const epochs = Number(arg('epochs', '2'));
  const outDir = arg('out', 'examples/demo');
  const anDir = arg('analysis', 'runs/demo-analysis');
  const train = await loadCifar(dataPath, 'cifar10', 'train');
  const test = await loadCifar(dataPath, 'cifar10', 'test');
  const P = 32 * 32 * 3;
  const trainPx = train.images!.subarray(0, nTrain * P), trainY = train.labels.subarray(0, nTrain);
  const model = karat.models.vit({...DEMO_MODEL, attention: {...DEMO_MODEL.attention}});
  console.log(`model: ${model.countParams()} parameters`);
  const batch = 32, steps = Math.floor(nTrain / batch) * epochs;
  const lr0 = 2e-3;
  const opt = tf.train.adam(lr0);
  const rnd = mulberry32(1);
  const checkpoints: Float32Array[][] = [model.getWeights().map(w => w.dataSync().slice() as Float32Array)];
  let step = 0;
  const t0 = Date.now();
  for (let e = 0; e < epochs; e++) {
    const order = tf.util.createShuffledIndices(nTrain);
    let lossSum = 0, seen = 0;
    for (let s = 0; s + batch <= nTrain; s += batch, step++) {
      const idx = order.subarray(s, s + batch);
      const px = new Uint8Array(batch * P);
      const y = new Int32Array(batch);
      idx.forEach((k, i) => {
        px.set(trainPx.subarray(k * P, (k + 1) * P), i * P);
        y[i] = trainY[k];
      });
      const lr = 0.5 * lr0 * (1 + Math.cos(Math.PI * step / steps));
      (opt as unknown as {learningRate: number}).learningRate = lr;
      const x = normalise(augment(px, batch, rnd), batch);
      const yt = tf.oneHot(tf.tensor1d(y, 'int32'), 10);
      // The classifier ends in softmax (the page shows probabilities): cross-entropy on probabilities.
      const loss = opt.minimize(() => {
        const p = model.apply(x, {training: true}) as tf.Tensor2D;
        return tf.neg(tf.mean(tf.sum(tf.mul(yt, tf.log(tf.add(p, 1e-7))), 1))) as tf.Scalar;
      }, true)!;
      lossSum += loss.dataSync()[0] * batch;
      seen += batch;
      tf.dispose([x, yt, loss]);
      if (step % 25 === 0 && step > 0) checkpoints.push(model.getWeights().map(w => w.dataSync().slice() as Float32Array));
      if (step % 25 === 0) console.log(`epoch ${e} step ${step}/${steps} loss ${(lossSum / seen).toFixed(3)} ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    }
  }
  checkpoints.push(model.getWeights().map(w => w.dataSync().slice() as Float32Array));
  mkdirSync(join(outDir, 'model'), {recursive: true});
  await model.save(karat.io.fileSystem(join(outDir, 'model')));
  const samples = await selectSamples(model, test, outDir, {trainImages: nTrain, epochs});

  // Example analyses.
  mkdirSync(anDir, {recursive: true});
  const write = (files: Record<string, string | Uint8Array>) => {
    for (const [name, data] of Object.entries(files)) {
      mkdirSync(join(anDir, name, '..'), {recursive: true});
      writeFileSync(join(anDir, name), data);
    }
  };
  const k = samples.length;
  const px = new Uint8Array(k * P);
  samples.forEach((s, i) => px.set(test.images!.subarray((s.testIndex as number) * P, (s.testIndex as number + 1) * P), i * P));
  const x = normalise(px, k);
  const maps = an.attentionMaps(model, x);
  write(an.renderAttentionReport(maps, samples.map((_, i) => ({width: 32, height: 32, data: px.subarray(i * P, (i + 1) * P)})),
                                 {deflate: b => deflateSync(b), captions: samples.map(s => s.className as string)}));
  write(an.renderSpectra(an.attentionSpectra(model, x)));
  const ranges = an.scoreRanges(model, x);
  const layer = an.findAttentionLayers(model)[DEMO_MODEL.depth - 1].layer;
  const r = ranges[DEMO_MODEL.depth - 1][0];
  const curves = an.activationCurves(layer.operator!.cfg, layer.operator!.params(),
      [0, 1, 2, 3].map(p => ({head: 0, p, q: 0})), an.linspace(r.min, r.max, 120));
  write({'curves.svg': an.renderCurves(curves, `Learned φ̂_pq, last block, head 0, q = 0 (class token)`, r)});
  write({'weights.svg': an.renderWeightHistograms(an.weightDistributions(model))});
  const xl = normalise(test.images!.subarray(0, 128 * P), 128);
  const land = await an.lossLandscape({model, checkpoints, loss: an.crossEntropyLoss(xl, test.labels.subarray(0, 128)), resolution: 9});
  write({'landscape.svg': an.renderLandscape(land)});
  console.log(`analyses written to ${anDir}; total ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}

if (process.argv[1]?.endsWith('train_demo_model.ts')) (process.argv.includes('--select-only') ? selectOnly() :
    process.argv.includes('--from-run') ? fromRun(arg('from-run', '')) : main()).catch(e => {
  console.error(e);
  process.exit(1);
});
