/**
 * Fine-tuning a ViT on an image list where the user is (browser-safe: no Node built-in):
 * a new head for the user's classes (adaptForFinetune), the weights to train chosen by a
 * freeze spec ('all-but-karat-and-head', or null to train everything), random crop + flip
 * augmentation, AdamW with a cosine-decayed rate and gradient clipping, and callbacks: onBatch
 * after every step, onEpochEnd with the mean training loss and the held-out accuracy, a stop
 * signal checked between steps, and a yield to the event loop after every step so that a page
 * stays responsive.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';

import {cropFlip, normalise} from '../data/augment';
import {ImageList, ImageListError} from '../data/image_list';
import {Rng} from '../data/rng';
import {adaptForFinetune, describeViT} from '../finetune';
import {leanVariableGrads} from '../../core/lean_grads';
import {KArAtArgumentError} from '../../core/validate';
import {AdamW, clipByGlobalNorm, Param} from './adamw';
import {decayApplies, freezeItems, isKArAtWeight, layerOfWeight, modelFacts, selects} from './select';

/** The loss or a logit became NaN or infinite: the run diverged (never reported as an accuracy). */
export class FineTuneDivergedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FineTuneDivergedError';
  }
}

export interface BatchProgress {
  epoch: number;
  epochs: number;
  /** Step within the epoch (1-based) and steps per epoch. */
  batch: number;
  batches: number;
  /** Steps done in all, and in the whole run. */
  step: number;
  steps: number;
  loss: number;
}

export interface EpochResult {
  /** 1-based. */
  epoch: number;
  epochs: number;
  /** Mean training loss over the epoch. */
  loss: number;
  /** Accuracy and mean loss on the held-out images (null without held-out images). */
  heldOutAccuracy: number | null;
  heldOutLoss: number | null;
  seconds: number;
}

export interface FineTuneOptions {
  /** Default 10. */
  epochs?: number;
  /** Default 16 (at most the number of training images). */
  batchSize?: number;
  /** Peak AdamW learning rate (default 1e-3), cosine-decayed to 1% over the run. */
  learningRate?: number;
  /** Decoupled weight decay (default 0.05; not on biases, norms, embeddings, KArAt coefficients). */
  weightDecay?: number;
  /** Gradient clipping to this global L2 norm (default 1; 0 = off). */
  clipGrad?: number;
  /**
   * Weights not to train: a freeze spec as `karat finetune --freeze` takes it (default
   * 'all-but-karat-and-head': only the KArAt operators and the head train); null trains everything.
   */
  freeze?: string | null;
  /** Random crop (zero padding in pixels, default imageSize / 8) and horizontal flip (default true); false turns both off. */
  augment?: false | {cropPadding?: number, hflip?: boolean};
  /** Per-channel mean and std of pixels in [0, 1] that the model was trained with. */
  mean: number[];
  std: number[];
  /** Seed of the data order and augmentation (default 1). */
  seed?: number;
  onBatch?: (p: BatchProgress) => void | Promise<void>;
  onEpochEnd?: (r: EpochResult) => void | Promise<void>;
  /** Checked before every step; when it returns true, the run stops after the current step. */
  shouldStop?: () => boolean;
  /** Awaited after every step to let the page draw (default: a macrotask, setTimeout 0). */
  yieldToUI?: () => Promise<void>;
}

export interface FineTuneResult {
  history: EpochResult[];
  /** True when shouldStop ended the run early. */
  stopped: boolean;
  steps: number;
  /** Names of the weights that were trained. */
  trained: string[];
}

const macrotask = () => new Promise<void>((r) => setTimeout(r, 0));

/**
 * The model with a new, freshly initialised classification head of `numClasses` outputs (logits),
 * every other weight kept bit for bit (adaptForFinetune with the model's own attention).
 * `random` draws the new weights: a seed (the same seed gives the same head), a function
 * returning numbers in [0, 1), or omitted for Math.random.
 */
export async function withNewHead(model: tfl.LayersModel, numClasses: number,
                                  random?: number | (() => number)): Promise<tfl.LayersModel> {
  if (typeof random === 'number') {
    if (!Number.isInteger(random)) throw new KArAtArgumentError(`withNewHead: a seed must be an integer, got ${random}`);
    const rng = new Rng(random);
    random = () => rng.uniform();
  }
  const d = await describeViT(model);
  const a = d.attention;
  const attention = a === 'softmax' ? 'softmax' as const : {
    basis: String(a.basis ?? 'fourier'), grid: Number(a.grid), rank: a.rank === 'full' ? 'full' : Number(a.rank), mode: String(a.mode ?? 'blockwise'),
    ...(a.base_activation != null ? {baseActivation: String(a.base_activation)} : {}),
  };
  // tslint:disable-next-line:no-any
  const r = await adaptForFinetune(model, {attention: attention as any, numClasses, random, logits: true});
  return r.model;
}

/** The trainable weights of `model` that a freeze spec leaves to train (throws KArAtArgumentError). */
export function trainableUnder(model: tfl.LayersModel, freeze: string | null): Array<{name: string, variable: tf.Variable}> {
  const seen = new Set<number>();
  const ws: Array<{name: string, variable: tf.Variable}> = [];
  for (const w of model.trainableWeights) {
    const v = w.read() as tf.Variable;
    if (seen.has(v.id)) continue;
    seen.add(v.id);
    ws.push({name: (w as unknown as {originalName?: string}).originalName ?? w.name, variable: v});
  }
  if (freeze == null) return ws;
  const facts = modelFacts(model, ws.map((w) => w.name));
  const items = freezeItems(freeze, (m) => new KArAtArgumentError(`fineTune: ${m}`));
  for (const it of items) {
    if (it.sels?.includes('new')) throw new KArAtArgumentError(`fineTune: the selection 'new' is not available here; use 'head' or 'karat'`);
  }
  const keep = ws.filter((w, i) => !items.some((it) => it.test(facts.weights[i], false, facts)));
  for (const it of items) {
    if (it.sels) {
      for (const sel of it.sels) {
        if (!facts.weights.some((w) => selects(sel, w, false, facts))) {
          throw new KArAtArgumentError(`fineTune: the selection '${sel}' in freeze '${it.item}' matches no trainable weight of the model`);
        }
      }
    } else if (!facts.weights.some((w) => it.test(w, false, facts))) {
      throw new KArAtArgumentError(`fineTune: freeze '${it.item}' matches no weight of the model`);
    }
  }
  if (keep.length === 0) throw new KArAtArgumentError(`fineTune: freeze ${JSON.stringify(freeze)} freezes every weight; nothing would train`);
  return keep;
}

function batchTensor(list: ImageList, idx: ArrayLike<number>, mean: number[], std: number[], aug: {pad: number, flip: boolean} | null,
                     rng: Rng): {x: tf.Tensor4D, y: Int32Array} {
  const S = list.imageSize, P = S * S * 3, n = idx.length;
  const g = {height: S, width: S, channels: 3};
  const px = new Uint8Array(n * P), y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const src = list.images.subarray(idx[i] * P, (idx[i] + 1) * P);
    if (aug) cropFlip(src, g, aug.pad, aug.flip, rng, px.subarray(i * P, (i + 1) * P));
    else px.set(src, i * P);
    y[i] = list.labels[idx[i]];
  }
  const f = new Float32Array(n * P);
  normalise(px, n, g, mean, std, f);
  return {x: tf.tensor4d(f, [n, S, S, 3]), y};
}

/** Accuracy and mean cross-entropy of `model` (logits) on an image list; a non-finite logit is a divergence. */
export async function evaluateImageList(model: tfl.LayersModel, list: ImageList, norm: {mean: number[], std: number[]},
                                        batchSize = 32): Promise<{accuracy: number, loss: number}> {
  const K = list.classNames.length;
  let correct = 0, lossSum = 0;
  for (let s = 0; s < list.count; s += batchSize) {
    const idx = Array.from({length: Math.min(batchSize, list.count - s)}, (_, i) => s + i);
    const {x, y} = batchTensor(list, idx, norm.mean, norm.std, null, new Rng(0));
    const out = model.predict(x) as tf.Tensor2D;
    const lg = await out.data() as Float32Array;
    tf.dispose([x, out]);
    if (out.shape[1] !== K) throw new KArAtArgumentError(`fineTune: the model has ${out.shape[1]} outputs, the images ${K} classes`);
    for (let i = 0; i < idx.length; i++) {
      const row = lg.subarray(i * K, (i + 1) * K);
      let best = 0, max = -Infinity;
      for (let k = 0; k < K; k++) {
        if (!Number.isFinite(row[k])) throw new FineTuneDivergedError(`fine-tuning diverged: a logit is ${row[k]} on held-out image ${s + i}`);
        if (row[k] > max) {
          max = row[k];
          best = k;
        }
      }
      let z = 0;
      for (let k = 0; k < K; k++) z += Math.exp(row[k] - max);
      lossSum += Math.log(z) + max - row[y[i]];
      if (best === y[i]) correct++;
    }
  }
  return {accuracy: correct / list.count, loss: lossSum / list.count};
}

/** fineTune's options with their defaults, checked against the model and the training images. */
function checkFineTuneOptions(model: tfl.LayersModel, train: ImageList, options: FineTuneOptions):
    {epochs: number, lr0: number, clip: number, K: number} {
  const epochs = options.epochs ?? 10;
  const lr0 = options.learningRate ?? 1e-3;
  const clip = options.clipGrad ?? 1;
  if (!(Number.isInteger(epochs) && epochs > 0)) throw new KArAtArgumentError(`fineTune: 'epochs' must be a positive integer, got ${epochs}`);
  if (!(lr0 > 0)) throw new KArAtArgumentError(`fineTune: 'learningRate' must be > 0, got ${lr0}`);
  if (!Array.isArray(options.mean) || options.mean.length !== 3 || !Array.isArray(options.std) || options.std.length !== 3 ||
      options.std.some((s) => !(s > 0))) {
    throw new KArAtArgumentError(`fineTune: 'mean' and 'std' must be 3 numbers each (std > 0), got ${JSON.stringify(options.mean)}, ${JSON.stringify(options.std)}`);
  }
  if (train.count === 0) throw new ImageListError('too-few-images', 'fineTune: no training images');
  const K = train.classNames.length;
  const outUnits = model.outputs[0].shape[model.outputs[0].shape.length - 1];
  if (outUnits !== K) throw new KArAtArgumentError(`fineTune: the model has ${outUnits} outputs, the images ${K} classes (give it a new head: withNewHead)`);
  return {epochs, lr0, clip, K};
}

/**
 * Fine-tunes `model` (which outputs logits for the image list's classes, e.g. from withNewHead)
 * in place on `train`, measuring `heldOut` after every epoch. Throws FineTuneDivergedError when
 * the loss or a held-out logit is not finite, KArAtArgumentError on bad options.
 */
export async function fineTune(model: tfl.LayersModel, train: ImageList, heldOut: ImageList | null,
                               options: FineTuneOptions): Promise<FineTuneResult> {
  const {epochs, lr0, clip, K} = checkFineTuneOptions(model, train, options);
  const bs = Math.min(options.batchSize ?? 16, train.count);
  const S = train.imageSize;
  const aug = options.augment === false ? null : {pad: options.augment?.cropPadding ?? Math.floor(S / 8), flip: options.augment?.hflip ?? true};
  const yieldToUI = options.yieldToUI ?? macrotask;
  const trained = trainableUnder(model, options.freeze === undefined ? 'all-but-karat-and-head' : options.freeze);
  const params: Param[] = trained.map((w) => ({
    name: w.name, variable: w.variable,
    rule: {decay: !isKArAtWeight(w.name) && decayApplies(w.name, w.variable.rank), lrScale: 1, group: layerOfWeight(w.name)},
  }));
  const opt = new AdamW(params, {weightDecay: options.weightDecay ?? 0.05});
  const vars = trained.map((w) => w.variable);
  const rng = new Rng(options.seed ?? 1);
  const batches = Math.ceil(train.count / bs), steps = batches * epochs;
  const history: EpochResult[] = [];
  let step = 0, stopped = false;
  try {
    for (let e = 0; e < epochs && !stopped; e++) {
      const t0 = Date.now();
      const order = rng.shuffle(Array.from({length: train.count}, (_, i) => i));
      let lossSum = 0, seen = 0;
      for (let b = 0; b < batches; b++) {
        if (options.shouldStop?.()) {
          stopped = true;
          break;
        }
        const idx = order.slice(b * bs, Math.min((b + 1) * bs, order.length));
        const {x, y} = batchTensor(train, idx, options.mean, options.std, aug, rng);
        const yT = tf.tidy(() => tf.oneHot(tf.tensor1d(y, 'int32'), K));
        const {value, grads} = leanVariableGrads(() => tf.tidy(() => {
          const lg = model.apply(x, {training: true}) as tf.Tensor2D;
          return tf.neg(tf.mean(tf.sum(tf.mul(yT, tf.logSoftmax(lg)), -1))) as tf.Scalar;
        }), vars);
        const gl = vars.map((v) => grads[v.name]);
        const {grads: clipped, norm} = clipByGlobalNorm(gl, clip);
        const loss = (await value.data())[0];
        if (!Number.isFinite(loss)) {
          tf.dispose([x, yT, value, norm, ...clipped, ...Object.values(grads)]);
          throw new FineTuneDivergedError(`fine-tuning diverged at epoch ${e + 1}, step ${b + 1}: the loss is ${loss}; lower the learning rate`);
        }
        const lr = lr0 * (0.01 + 0.99 * 0.5 * (1 + Math.cos(Math.PI * step / steps)));
        opt.apply(clipped, lr);
        tf.dispose([x, yT, value, norm, ...clipped, ...Object.values(grads)]);
        step++;
        lossSum += loss * idx.length;
        seen += idx.length;
        await options.onBatch?.({epoch: e + 1, epochs, batch: b + 1, batches, step, steps, loss});
        await yieldToUI();
      }
      if (seen === 0) break;
      const ev = heldOut != null && heldOut.count > 0 ? await evaluateImageList(model, heldOut, options) : null;
      const r: EpochResult = {
        epoch: e + 1, epochs, loss: lossSum / seen, heldOutAccuracy: ev?.accuracy ?? null, heldOutLoss: ev?.loss ?? null,
        seconds: (Date.now() - t0) / 1000,
      };
      history.push(r);
      await options.onEpochEnd?.(r);
      await yieldToUI();
    }
  } finally {
    opt.dispose();
  }
  return {history, stopped, steps: step, trained: trained.map((w) => w.name)};
}
