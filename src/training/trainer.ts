/**
 * The training loop: data with augmentation and prefetch, AdamW with warm-up + cosine
 * schedule and gradient clipping, evaluation every epoch (loss, top-1, top-5), last and
 * best checkpoints, and exact resume at epoch boundaries.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';

import {AugmentConfig, NO_AUGMENT} from '../data/augment';
import {DataError, ImageDataset, takeSubset} from '../data/dataset';
import {DownloadProgress} from '../data/download';
import {BatchLoader, epochSeed} from '../data/loader';
import {loadDatasetPair, normalisationFor} from '../data/registry';
import {Rng} from '../data/rng';
import {AdamW, clipByGlobalNorm} from './adamw';
import {leanVariableGrads} from '../../core/lean_grads';
import {checkCompositeMemory} from '../../core/composite_limits';
import {hasFusedKernel} from '../../core/flags';
import {FourierKArAt, FourierKArAtGrad} from '../../core/kernel_names';
import {BackendInfo, selectBackend} from './backend';
import {enableWasmMatMulNN} from '../../kernels-wasm/matmul_nn';
import {assignWeights, Checkpoint, CheckpointError, checkSpecFitsWeights, modelWeights, readWeights, writeCheckpoint} from './checkpoint';
import {ConfigError, TrainConfig} from './config';
import {openResume} from './resume';
import {defaultRunName, prepareRunDir, removeIfEmpty} from './run_dir';
import {specProblems} from './checkpoint_validate';
import {confusionMatrix, softCrossEntropy, topKCorrect} from './metrics';
import {buildModel, countParams, initRandom, isTopologySpec, ModelSpec, modelFromSpec, modelSpecFor, withMathRandom} from './model';
import {modelFacts, parameterPlan, ParamPlanEntry} from './param_groups';
import {learningRate, ScheduleConfig} from './schedule';
import * as nodeFs from 'node:fs';
import * as nodePath from 'node:path';


export interface StepInfo {
  epoch: number;          // 1-based
  epochs: number;
  batch: number;          // 1-based within the epoch
  batches: number;
  step: number;           // global optimiser steps done
  loss: number;
  /** Running mean loss over the epoch so far. */
  meanLoss: number;
  /** Running top-1 on the (possibly mixed) training batches against the original labels. */
  trainAcc: number;
  lr: number;
  gradNorm: number;
  imagesPerSec: number;
  epochElapsed: number;
  epochEta: number;
}

export interface EvalResult {
  /** Mean loss; NaN or Infinity when the model diverged (see `diverged`). */
  loss: number;
  /** True when the loss is not finite: the model is broken, whatever top-1 says. */
  diverged: boolean;
  /** Examples whose logits held a NaN or an infinity (counted as wrong, not in `confusion`). */
  nonFinite: number;
  /** Per true class, the examples with non-finite logits. */
  nonFiniteByClass: number[];
  top1: number;
  top5: number;
  confusion: number[][];
  examples: number;
  seconds: number;
}

export interface EpochRecord {
  epoch: number;
  step: number;
  lr: number;
  trainLoss: number;
  trainAcc: number;
  /** Loss and top-1 on the validation split (runs with --val-split only). */
  valLoss?: number;
  valTop1?: number;
  testLoss: number;
  testTop1: number;
  testTop5: number;
  epochSeconds: number;
  imagesPerSec: number;
  /**
   * CPU seconds this process used for the epoch's training steps (user + system). With the
   * single-threaded cpu backend this is the wall time the epoch would take on an idle core.
   */
  cpuSeconds: number;
  best: boolean;
}

export interface StartInfo {
  runDir: string;
  backend: BackendInfo & {auto: boolean};
  params: number;
  train: ImageDataset;
  test: ImageDataset;
  batchesPerEpoch: number;
  startEpoch: number;
  resumedFrom: string | null;
  spec: ModelSpec;
  /** Per trainable weight: frozen or not, learning-rate multiplier, decay. */
  plan: ParamPlanEntry[];
}

/** Shape of the data a model is built for. */
export interface DataShape {
  height: number;
  width: number;
  channels: number;
  numClasses: number;
}

/**
 * A model the trainer starts from instead of building one from the configuration (karat
 * finetune): its spec (stored in checkpoints, so resume and eval rebuild it) and the names of
 * the weights newly created for it (fine-tuning's 'new' parameters).
 */
export interface InitialModel {
  model: tfl.LayersModel;
  spec: ModelSpec;
  newParams: string[];
}

/** Makes the initial model for the loaded data; called unless the run resumes from a checkpoint. */
export type ModelFactory = (data: DataShape, seed: number) => Promise<InitialModel>;

export interface TrainerEvents {
  onStart?(info: StartInfo): void;
  onStep?(s: StepInfo): void;
  onEpoch?(r: EpochRecord, ev: EvalResult): void;
  /** Download progress (with --download). */
  onDownload?(p: DownloadProgress): void;
}

export interface TrainResult {
  runDir: string;
  history: EpochRecord[];
  best: {epoch: number, top1: number} | null;
  lastCheckpoint: string;
  bestCheckpoint: string | null;
  model: tfl.LayersModel;
  backend: string;
  params: number;
  seconds: number;
}

/** Raised when a training step produces a non-finite loss. */
export class TrainingDivergedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrainingDivergedError';
  }
}

export function augmentFor(cfg: TrainConfig, norm: {mean: number[], std: number[]}): AugmentConfig {
  return {
    mean: norm.mean, std: norm.std, cropPadding: cfg.cropPadding, hflip: cfg.hflip, mixupAlpha: cfg.mixup,
    cutmixAlpha: cfg.cutmix, mixProb: cfg.mixProb, switchProb: cfg.switchProb, labelSmoothing: cfg.labelSmoothing,
    randomErasing: cfg.randomErasing,
  };
}

/** Evaluates `model` on `loader` (loss with hard labels, top-1, top-5, confusion matrix). */
export async function evaluate(model: tfl.LayersModel, loader: BatchLoader, numClasses: number): Promise<EvalResult> {
  const t0 = performance.now();
  let lossSum = 0, c1 = 0, c5 = 0, n = 0;
  const confusion = Array.from({length: numClasses}, () => new Array<number>(numClasses).fill(0));
  const nonFiniteByClass = new Array<number>(numClasses).fill(0);
  const {height: H, width: W, channels: C} = loader.ds;
  for await (const b of loader.epoch(0)) {
    const [logits, loss] = tf.tidy(() => {
      const x = tf.tensor4d(b.x, [b.size, H, W, C]);
      const lg = model.apply(x, {training: false}) as tf.Tensor2D;
      const l = tf.mul(softCrossEntropy(lg, tf.tensor2d(b.y, [b.size, numClasses])), b.size);
      return [lg, l];
    });
    const lg = await logits.data() as Float32Array;
    lossSum += (await loss.data())[0];
    tf.dispose([logits, loss]);
    c1 += topKCorrect(lg, b.labels, numClasses, 1);
    c5 += topKCorrect(lg, b.labels, numClasses, Math.min(5, numClasses));
    confusionMatrix(lg, b.labels, numClasses, confusion, nonFiniteByClass);
    n += b.size;
  }
  if (n === 0) throw new DataError(`evaluation: the test set '${loader.ds.name}' is empty`);
  const loss = lossSum / n;
  return {
    loss, diverged: !Number.isFinite(loss), nonFinite: nonFiniteByClass.reduce((a, v) => a + v, 0), nonFiniteByClass,
    top1: c1 / n, top5: c5 / n, confusion, examples: n, seconds: (performance.now() - t0) / 1000,
  };
}

/**
 * Whether an epoch's evaluation beats the best so far: a higher top-1, and never an
 * evaluation that diverged (non-finite loss), whose top-1 means nothing.
 */
export function isBetterEpoch(ev: Pick<EvalResult, 'diverged' | 'top1'>, best: {top1: number} | null): boolean {
  if (ev.diverged || !Number.isFinite(ev.top1)) return false;
  return best == null || ev.top1 > best.top1;
}

/**
 * Splits off the last `n` examples of `train` as a validation set: the same examples for every
 * seed, disjoint from the training batches. `n` = 0 keeps everything for training.
 */
export function splitValidation(train: ImageDataset, n: number): {train: ImageDataset, val: ImageDataset | null} {
  if (n === 0) return {train, val: null};
  if (!(Number.isInteger(n) && n > 0 && n < train.size)) {
    throw new ConfigError(`'val-split' must be an integer in [0, ${train.size}) (the training set has ${train.size} examples), got ${n}`);
  }
  const keep = train.size - n;
  return {
    train: takeSubset(train, Array.from({length: keep}, (_, i) => i)),
    val: takeSubset(train, Array.from({length: n}, (_, i) => keep + i), `${train.name} (validation)`),
  };
}

/**
 * Trains as configured; resumes when cfg.resume is set. With `factory`, the run starts from
 * the model it returns (fine-tuning) instead of one built from cfg.
 */
export async function train(cfg: TrainConfig, events: TrainerEvents = {}, runName?: string, factory?: ModelFactory): Promise<TrainResult> {
  const t0 = performance.now();
  const rd = prepareRunDir(cfg.outDir, runName ?? cfg.runName ?? null, defaultRunName(cfg), {resume: !!cfg.resume, overwrite: cfg.overwrite});
  try {
    return await trainIn(rd.dir, cfg, events, t0, factory);
  } catch (e) {
    removeIfEmpty(rd);
    throw e;
  }
}

interface RunData {
  trainDs: ImageDataset;
  testDs: ImageDataset;
  norm: {mean: number[], std: number[]};
  trainLoader: BatchLoader;
  evalLoader: BatchLoader;
  /** Loader of the validation split (--val-split), else null. */
  valLoader: BatchLoader | null;
}

/** Datasets (with the validation split), normalisation, augmentation and the three loaders. */
async function loadRunData(cfg: TrainConfig, seed: number, events: TrainerEvents): Promise<RunData> {
  const pair = await loadDatasetPair(cfg.dataset, {
    dataDir: cfg.dataDir, download: cfg.download, downloadOptions: {onProgress: events.onDownload}, trainLimit: cfg.trainLimit, testLimit: cfg.testLimit, imageSize: cfg.imageSize,
  });
  const testDs = pair.test;
  const {train: trainDs, val: valDs} = splitValidation(pair.train, cfg.valSplit);
  const norm = normalisationFor(cfg.dataset, trainDs);
  const evalLoaderOf = (ds: ImageDataset) => new BatchLoader(ds, {
    batchSize: Math.min(cfg.evalBatchSize, ds.size), train: false, augment: {...NO_AUGMENT, mean: norm.mean, std: norm.std},
    seed, prefetch: cfg.prefetch,
  });
  return {
    trainDs, testDs, norm,
    trainLoader: new BatchLoader(trainDs, {batchSize: cfg.batchSize, train: true, augment: augmentFor(cfg, norm), seed, prefetch: cfg.prefetch}),
    evalLoader: evalLoaderOf(testDs),
    valLoader: valDs == null ? null : evalLoaderOf(valDs),
  };
}

/**
 * The run's model: rebuilt from a resumed checkpoint's stored topology, made by `factory`
 * (fine-tuning), or built from cfg — after checking the sizes against a resumed checkpoint and
 * the composite path's memory where no fused kernel runs.
 */
async function buildRunModel(cfg: TrainConfig, resume: {ck: Checkpoint, from: string} | null, factory: ModelFactory | undefined,
                             data: RunData, seed: number, backendName: string):
    Promise<{spec: ModelSpec, model: tfl.LayersModel, newParams: string[] | null}> {
  const {height: H, width: W, channels: C, numClasses: K} = data.trainDs;
  const savedSpec = resume?.ck.header.modelSpec;
  let out: {spec: ModelSpec, model: tfl.LayersModel, newParams: string[] | null};
  if (resume && isTopologySpec(savedSpec)) {
    checkSpecFitsWeights(resume.ck, `--resume: checkpoint '${resume.from}'`);
    out = {spec: savedSpec, model: await modelFromSpec(savedSpec, initRandom(seed)), newParams: (resume.ck.header.trainer.newParams as string[] | undefined) ?? []};
  } else if (factory && !resume) {
    out = await factory({height: H, width: W, channels: C, numClasses: K}, seed);
  } else {
    const vitSpec = modelSpecFor(cfg, {height: H, width: W, channels: C, numClasses: K});
    if (resume) {
      // the configuration may come from the checkpoint itself: its sizes must match the stored weights
      const problems = specProblems(vitSpec as unknown as Record<string, unknown>, resume.ck.header.weights);
      if (problems.length) {
        throw new CheckpointError(`--resume: checkpoint '${resume.from}' does not fit this run's model: ${problems.slice(0, 3).join('; ')}`);
      }
    }
    if (cfg.attention === 'fourier') {
      // Where the composite path runs (no fused kernel), refuse a configuration whose memory
      // is known to be too large before building anything.
      const N = (H / cfg.patchSize) * (W / cfg.patchSize) + 1;
      if (!hasFusedKernel(FourierKArAt) || !hasFusedKernel(FourierKArAtGrad)) {
        checkCompositeMemory(`training on ${backendName}`, cfg.batchSize, cfg.heads, N, cfg.grid);
      }
      if (!hasFusedKernel(FourierKArAt)) {
        checkCompositeMemory(`evaluation on ${backendName}`, Math.min(cfg.evalBatchSize, data.testDs.size), cfg.heads, N, cfg.grid);
      }
    }
    out = {spec: vitSpec, model: buildModel(vitSpec, initRandom(seed)), newParams: null};
  }
  const spec = out.spec;
  if (isTopologySpec(spec) && (spec.imageSize[0] !== H || spec.imageSize[1] !== W || spec.channels !== C || spec.numClasses !== K)) {
    throw new ConfigError(`the model takes ${spec.imageSize.join('x')}x${spec.channels} images and has ${spec.numClasses} classes; ` +
        `dataset ${data.trainDs.name} has ${H}x${W}x${C} images and ${K} classes`);
  }
  return out;
}

interface EpochTotals {
  lossSum: number;
  accSum: number;
  seen: number;
  lr: number;
  step: number;
  trainSeconds: number;
  cpuSeconds: number;
}

/** One epoch of optimiser steps (at most `batches`); stops the run on a non-finite loss. */
async function trainEpoch(model: tfl.LayersModel, opt: AdamW, vars: tf.Variable[], data: RunData, cfg: TrainConfig,
                          sched: ScheduleConfig, batches: number, epoch: number, startStep: number, seed: number,
                          events: TrainerEvents): Promise<EpochTotals> {
  const {height: H, width: W, channels: C, numClasses: K} = data.trainDs;
  const stepRng = new Rng(epochSeed(seed ^ 0x2545f491, epoch));
  const te = performance.now();
  const cpu0 = process.cpuUsage();
  let lossSum = 0, accSum = 0, seen = 0, lastNorm = 0, lr = 0, step = startStep;
  let b = 0;
  for await (const batch of data.trainLoader.epoch(epoch)) {
    if (b >= batches) break;
    lr = learningRate(sched, step);
    const xT = tf.tensor4d(batch.x, [batch.size, H, W, C]);
    const yT = tf.tensor2d(batch.y, [batch.size, K]);
    let logits: tf.Tensor | null = null;
    const {value, grads} = withMathRandom(stepRng, () => leanVariableGrads(() => {
      const lg = model.apply(xT, {training: true}) as tf.Tensor2D;
      logits = tf.keep(lg);
      return softCrossEntropy(lg, yT);
    }, vars));
    const gl = vars.map((v) => grads[v.name]);
    const {grads: clipped, norm} = clipByGlobalNorm(gl, cfg.clipGrad);
    opt.apply(clipped, lr);
    const loss = (await value.data())[0];
    lastNorm = (await norm.data())[0];
    const lg = await logits!.data() as Float32Array;
    tf.dispose([xT, yT, value, norm, logits!, ...clipped, ...Object.values(grads)]);
    if (!Number.isFinite(loss)) {
      throw new TrainingDivergedError(
          `training diverged at epoch ${epoch + 1}, step ${step + 1}: loss is ${loss} (lower --lr or enable --clip-grad); ` +
          `checkpoints of earlier epochs are kept`);
    }
    step++;
    b++;
    lossSum += loss * batch.size;
    accSum += topKCorrect(lg, batch.labels, K, 1);
    seen += batch.size;
    const el = (performance.now() - te) / 1000;
    events.onStep?.({
      epoch: epoch + 1, epochs: cfg.epochs, batch: b, batches, step, loss, meanLoss: lossSum / seen, trainAcc: accSum / seen,
      lr, gradNorm: lastNorm, imagesPerSec: el > 0 ? seen / el : 0, epochElapsed: el, epochEta: el / b * (batches - b),
    });
  }
  const cpu = process.cpuUsage(cpu0);
  return {lossSum, accSum, seen, lr, step, trainSeconds: (performance.now() - te) / 1000, cpuSeconds: (cpu.user + cpu.system) / 1e6};
}

/** The optimiser over the trainable, unfrozen weights, with the parameter plan that sets their rules. */
function optimiserFor(model: tfl.LayersModel, cfg: TrainConfig, newParams: string[] | null): {opt: AdamW, vars: tf.Variable[], plan: ParamPlanEntry[]} {
  const weights = modelWeights(model).filter((w) => w.trainable);
  const plan = parameterPlan(modelFacts(model, weights.map((w) => w.name)), new Map(weights.map((w) => [w.name, w.variable.rank])), cfg, newParams);
  const params = weights.map((w, i) => ({name: w.name, variable: w.variable, rule: plan[i].rule})).filter((_, i) => !plan[i].frozen);
  const opt = new AdamW(params, {beta1: cfg.beta1, beta2: cfg.beta2, weightDecay: cfg.weightDecay});
  return {opt, vars: params.map((p) => p.variable), plan};
}

interface TrainingState {
  startEpoch: number;
  step: number;
  history: EpochRecord[];
  best: {epoch: number, top1: number} | null;
}

/** Weights, optimiser state, epoch, step, history and best epoch of a resumed checkpoint (a fresh run: epoch 0). */
function restoreTrainingState(model: tfl.LayersModel, opt: AdamW, resume: {ck: Checkpoint, from: string} | null): TrainingState {
  if (!resume) return {startEpoch: 0, step: 0, history: [], best: null};
  assignWeights(model, resume.ck, `checkpoint '${resume.from}'`);
  if (!resume.ck.optimizer) throw new CheckpointError(`checkpoint '${resume.from}' has no optimizer state, cannot resume`);
  try {
    opt.setState(resume.ck.optimizer);
  } catch (e) {
    throw new CheckpointError(`checkpoint '${resume.from}': ${(e as Error).message}`);
  }
  const tr = resume.ck.header.trainer;
  return {
    startEpoch: Number(tr.epoch), step: Number(tr.step), history: (tr.history as EpochRecord[]) ?? [],
    best: (tr.best as {epoch: number, top1: number} | null) ?? null,
  };
}

/** What an epoch's checkpoint records besides the model and optimiser. */
interface EpochCheckpointInfo {
  cfg: TrainConfig;
  spec: ModelSpec;
  seed: number;
  backend: string;
  data: RunData;
  newParams: string[] | null;
}

/** The checkpoint at the end of an epoch: weights, optimiser state, and the trainer's record. */
async function epochCheckpoint(model: tfl.LayersModel, opt: AdamW, info: EpochCheckpointInfo, state: TrainingState,
                               epoch: number, ev: EvalResult): Promise<Checkpoint> {
  const {cfg, spec, seed, data, newParams} = info;
  const w = await readWeights(model);
  return {
    header: {
      format: 1, createdAt: new Date().toISOString(), modelSpec: spec, weights: w.entries, optimizer: null,
      trainer: {epoch: epoch + 1, step: state.step, seed, config: {...cfg, resume: null, overwrite: false}, history: state.history,
        best: state.best, backend: info.backend, classNames: data.trainDs.classNames, normalisation: data.norm,
        lastEval: {loss: ev.loss, top1: ev.top1, top5: ev.top5}, ...(newParams != null ? {newParams} : {})},
      weightFloats: 0, optimizerFloats: 0,
    },
    weights: w.data, optimizer: await opt.getState(),
  };
}

async function trainIn(runDir: string, cfg: TrainConfig, events: TrainerEvents, t0: number, factory?: ModelFactory): Promise<TrainResult> {
  const resume = openResume(cfg, runDir);
  const resumedFrom = resume?.from ?? null;
  const seed = resume ? resume.ck.header.trainer.seed as number : cfg.seed;

  const backend = await selectBackend(cfg.backend);
  const data = await loadRunData(cfg, seed, events);
  const {spec, model, newParams} = await buildRunModel(cfg, resume, factory, data, seed, backend.name);
  const K = data.trainDs.numClasses;

  const {opt, vars, plan} = optimiserFor(model, cfg, newParams);
  const batches = cfg.stepsPerEpoch > 0 ? Math.min(cfg.stepsPerEpoch, data.trainLoader.length) : data.trainLoader.length;
  const sched: ScheduleConfig = {
    baseLr: cfg.lr, minLr: cfg.minLr, warmupStartLr: cfg.warmupLr,
    warmupSteps: Math.round(cfg.warmupEpochs * batches), totalSteps: cfg.epochs * batches,
  };

  const state = restoreTrainingState(model, opt, resume);
  const {startEpoch, history} = state;
  const nParams = countParams(model);
  events.onStart?.({runDir, backend, params: nParams, train: data.trainDs, test: data.testDs, batchesPerEpoch: batches, startEpoch, resumedFrom, spec, plan});

  const lastPath = nodePath.join(runDir, 'last.ckpt'), bestPath = nodePath.join(runDir, 'best.ckpt');
  const info: EpochCheckpointInfo = {cfg, spec, seed, backend: backend.name, data, newParams};
  for (let epoch = startEpoch; epoch < cfg.epochs; epoch++) {
    // on wasm the backward pass's transposed matrix products run through XNNPACK during the steps only
    const restoreMatMul = enableWasmMatMulNN();
    let t: EpochTotals;
    try {
      t = await trainEpoch(model, opt, vars, data, cfg, sched, batches, epoch, state.step, seed, events);
    } finally {
      restoreMatMul();
    }
    state.step = t.step;
    const ev = await evaluate(model, data.evalLoader, K);
    // model selection on the validation split when there is one, else on the test set
    const evVal = data.valLoader == null ? null : await evaluate(model, data.valLoader, K);
    const isBest = isBetterEpoch(evVal ?? ev, state.best);
    if (isBest) state.best = {epoch: epoch + 1, top1: (evVal ?? ev).top1};
    const rec: EpochRecord = {
      epoch: epoch + 1, step: state.step, lr: t.lr, trainLoss: t.lossSum / t.seen, trainAcc: t.accSum / t.seen,
      ...(evVal != null ? {valLoss: evVal.loss, valTop1: evVal.top1} : {}), testLoss: ev.loss,
      testTop1: ev.top1, testTop5: ev.top5, epochSeconds: t.trainSeconds, imagesPerSec: t.trainSeconds > 0 ? t.seen / t.trainSeconds : 0,
      cpuSeconds: t.cpuSeconds, best: isBest,
    };
    history.push(rec);
    writeEpochCheckpoints(runDir, cfg, epoch, await epochCheckpoint(model, opt, info, state, epoch, ev), isBest);
    events.onEpoch?.(rec, ev);
  }
  opt.dispose();
  if (history.length === 0) throw new ConfigError(`nothing to train: the run is already at epoch ${startEpoch} of ${cfg.epochs}`);
  return {
    runDir, history, best: state.best, lastCheckpoint: lastPath, bestCheckpoint: nodeFs.existsSync(bestPath) ? bestPath : null, model,
    backend: backend.name, params: nParams, seconds: (performance.now() - t0) / 1000,
  };
}

/** last.ckpt (with the optimizer state), best.ckpt when this epoch is the best, and the per-epoch snapshot if asked. */
function writeEpochCheckpoints(runDir: string, cfg: TrainConfig, epoch: number, ck: Checkpoint, isBest: boolean): void {
  writeCheckpoint(nodePath.join(runDir, 'last.ckpt'), ck);
  if (isBest) writeCheckpoint(nodePath.join(runDir, 'best.ckpt'), {...ck, optimizer: null});
  if (cfg.keepEpochCheckpoints) {
    const dir = nodePath.join(runDir, 'epochs');
    nodeFs.mkdirSync(dir, {recursive: true});
    writeCheckpoint(nodePath.join(dir, `epoch-${String(epoch + 1).padStart(3, '0')}.ckpt`), {...ck, optimizer: null});
  }
}
