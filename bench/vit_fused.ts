/**
 * ViT training-step cases (fast training on WebGPU), before/after side by side in
 * one process:
 *   impl 'stock'  : KARAT_FUSED_LAYERS=false, tf.train.adam (what bench/vit.ts measures)
 *   impl 'fused'  : KARAT_FUSED_LAYERS=true (fused LayerNorm, bias+GELU), fused AdamW
 *                   (adamWUpdateVariables: one in-place dispatch per parameter; weight decay 0
 *                   so the math equals Adam)
 * for softmax and G3B attention, train step (fwd + bwd + update) and inference, plus
 * WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE variants. Used by bench/webgpu.ts (--vit) and
 * bench/webgpu_profile.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

import * as karat from '../src/index';
import {KARAT_FUSED_LAYERS_FLAG} from '../core/flags';

export const ATTENTION_BY_NAME: Record<string, unknown> = {
  softmax: 'softmax',
  G3B: {type: 'fourier', grid: 3, rank: 12, mode: 'blockwise'},
  G3U: {type: 'fourier', grid: 3, rank: 12, mode: 'universal'},
};

export interface TrainStepOptions {
  preset: 'tiny' | 'small' | 'base';
  depth?: number;
  imageSize: number;
  patchSize: number;
  batch: number;
  numClasses: number;
  attentionName: string;
  /** 'adam': tf.train.adam; 'adamw-fused': karat.adamWUpdate per parameter (default: by flag). */
  optimizer?: 'adam' | 'adamw-fused';
  /** 'tfjs': tf.variableGrads (default); 'lean': karat.leanVariableGrads (frees memory during backward). */
  gradients?: 'tfjs' | 'lean';
}

export interface TrainStep {
  /** fwd + bwd + update; returns the loss. */
  step: () => tf.Scalar;
  /** fwd + bwd only. */
  grads: () => {value: tf.Scalar, grads: tf.NamedTensorMap};
  /** Applies gradients (as returned by grads) with the optimizer. */
  update: (grads: tf.NamedTensorMap) => void;
  infer: () => tf.Tensor;
  params: number;
  dispose: () => void;
}

/** Builds a ViT, inputs and an optimizer; the fused/stock choice follows the tf.env flag. */
export function makeTrainStep(o: TrainStepOptions): TrainStep {
  const attention = ATTENTION_BY_NAME[o.attentionName];
  if (attention == null) throw new Error(`unknown attention '${o.attentionName}'`);
  const model = karat.models.vit({
    preset: o.preset, ...(o.depth != null ? {depth: o.depth} : {}), imageSize: o.imageSize,
    patchSize: o.patchSize, channels: 3, numClasses: o.numClasses, attention: attention as never,
  });
  const x = tf.randomNormal([o.batch, o.imageSize, o.imageSize, 3]);
  const labels = tf.oneHot(tf.randomUniform([o.batch], 0, o.numClasses, 'int32') as tf.Tensor1D, o.numClasses);
  const vars = model.trainableWeights.map((w) => (w as unknown as {val: tf.Variable}).val);
  const fusedOpt = (o.optimizer ?? (tf.env().getBool(KARAT_FUSED_LAYERS_FLAG) ? 'adamw-fused' : 'adam')) === 'adamw-fused';
  const adam = fusedOpt ? null : tf.train.adam(1e-4);
  const zeros = (v: tf.Variable) => tf.tidy(() => tf.variable(tf.zerosLike(v), false));
  const ms = fusedOpt ? vars.map(zeros) : [];
  const vs = fusedOpt ? vars.map(zeros) : [];
  let t = 0;
  const loss = () => tf.mean(tfl.metrics.categoricalCrossentropy(
      labels, model.apply(x, {training: true}) as tf.Tensor)) as tf.Scalar;
  const grads = () => (o.gradients === 'lean' ? karat.leanVariableGrads : tf.variableGrads)(loss, vars);
  const update = (g: tf.NamedTensorMap) => {
    if (adam != null) {
      adam.applyGradients(g as never);
      return;
    }
    t++;
    vars.forEach((v, i) => karat.adamWUpdateVariables(v, ms[i], vs[i], g[v.name], {
      learningRate: 1e-4, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0, step: t,
    }));
  };
  const step = () => {
    const r = grads();
    update(r.grads);
    tf.dispose(Object.values(r.grads));
    return r.value;
  };
  return {
    step, grads, update, infer: () => model.predict(x) as tf.Tensor, params: model.countParams(),
    dispose: () => {
      tf.dispose([x, labels, ...ms, ...vs]);
      adam?.dispose();
      model.dispose();
    },
  };
}

/** One bench case per (attention, impl, pass, batch size): see bench/webgpu.ts's BenchCase. */
export interface ViTFusedCase {
  case: string;
  impl: string;
  pass: 'train-step' | 'inference';
  flags: Record<string, boolean | number>;
  options: TrainStepOptions;
}

/**
 * Cases for the GPU run: ViT-Tiny 224/16 batch 32 (N = 197), softmax and G3B, stock vs fused,
 * plus fused with WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE 400. `quick` = depth 2, 32x32/8, batch 2.
 */
export function vitFusedCases(quick: boolean, attentions = ['softmax', 'G3B']): ViTFusedCase[] {
  const base = quick ?
      {preset: 'tiny' as const, depth: 2, imageSize: 32, patchSize: 8, batch: 2, numClasses: 10} :
      {preset: 'tiny' as const, imageSize: 224, patchSize: 16, batch: 32, numClasses: 1000};
  const name = `vit-tiny${quick ? '-d2' : ''} ${base.imageSize}/${base.patchSize} b${base.batch}`;
  const out: ViTFusedCase[] = [];
  const variants: Array<{impl: string, flags: Record<string, boolean | number>, gradients?: 'lean'}> = [
    {impl: 'stock', flags: {[KARAT_FUSED_LAYERS_FLAG]: false}},
    {impl: 'fused', flags: {[KARAT_FUSED_LAYERS_FLAG]: true}},
    {impl: 'fused+lean', flags: {[KARAT_FUSED_LAYERS_FLAG]: true}, gradients: 'lean'},
    {impl: 'fused+lean+submit400', flags: {[KARAT_FUSED_LAYERS_FLAG]: true, WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE: 400}, gradients: 'lean'},
  ];
  for (const a of attentions) {
    for (const v of variants) {
      // Lean gradients change only the backward pass: its inference case would repeat 'fused'.
      const passes = v.impl === 'fused+lean' ? ['train-step'] as const : ['train-step', 'inference'] as const;
      for (const pass of passes) {
        out.push({case: `${name} ${a}`, impl: v.impl, pass, flags: v.flags,
                  options: {...base, attentionName: a, ...(v.gradients ? {gradients: v.gradients} : {})}});
      }
    }
  }
  return out;
}
