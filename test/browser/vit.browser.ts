/**
 * A few SGD training steps of a small Fourier-KArAt ViT on webgl match the same steps on
 * the CPU backend (same page, same initial weights, same batch): the losses of every step
 * and the weight updates. The webgl run must go through the fused WebGL kernels
 * (FourierKArAt and FourierKArAtGrad appear in tf.profile's kernel list).
 *
 * Stock tfjs webgl ops (matmul, exp, log, layer norm on SwiftShader) already differ from
 * the CPU by ~1% of a weight update after 3 steps, with or without this plugin. So besides
 * loose absolute bounds, the test requires the fused run to be as close to the CPU as the
 * same training with KARAT_FUSED=false (the composite path on webgl).
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';

import {FourierKArAt, FourierKArAtGrad, KARAT_FUSED_FLAG, models} from '../../src/index';
import {describeWithBackends, onCpu, withFlags} from '../support/backend_suites';

import {WEBGL} from './backends';
import {expectClose, maxAbs, normalish, uniform} from './util';

const STEPS = 3;
const BATCH = 4, IMAGE = 8, PATCH = 4, CLASSES = 3;   // N = (8/4)² + 1 = 5 tokens

function build(): tfl.LayersModel {
  return models.vit({
    dim: 16, depth: 2, heads: 2, mlpRatio: 2, imageSize: IMAGE, patchSize: PATCH, numClasses: CLASSES,
    classifierActivation: 'linear',
    attention: {type: 'fourier', grid: 3, rank: 3, mode: 'blockwise'},
  });
}

interface Run {losses: number[]; weights: Float32Array[]; kernels: string[]}

async function train(initial: Float32Array[], x: Float32Array, labels: number[]): Promise<Run> {
  const model = build();
  const shapes = model.getWeights().map((w) => w.shape);
  if (shapes.length !== initial.length) throw new Error('weight lists differ');
  model.setWeights(initial.map((v, i) => tf.tensor(v, shapes[i])));
  const images = tf.tensor4d(x, [BATCH, IMAGE, IMAGE, 3]);
  const onehot = tf.oneHot(tf.tensor1d(labels, 'int32'), CLASSES);
  const opt = tf.train.sgd(0.02);
  const losses: number[] = [];
  const kernels = new Set<string>();
  const vars = model.trainableWeights.map((w) => (w as unknown as {read(): tf.Variable}).read());
  for (let step = 0; step < STEPS; step++) {
    const prof = await tf.profile(() => {
      const loss = opt.minimize(() => {
        const logits = model.apply(images, {training: true}) as tf.Tensor2D;
        return tf.losses.softmaxCrossEntropy(onehot, logits) as tf.Scalar;
      }, true, vars);
      losses.push(loss!.dataSync()[0]);
      loss!.dispose();
    });
    prof.kernels.forEach((k) => kernels.add(k.name));
  }
  const weights = model.getWeights().map((w) => w.dataSync() as Float32Array);
  tf.dispose([images, onehot]);
  opt.dispose();
  model.dispose();
  return {losses, weights, kernels: [...kernels]};
}

describeWithBackends('KArAt ViT training steps (browser) match cpu', {backends: [WEBGL.id]}, () => {
  it(`${STEPS} SGD steps of a 2-block Fourier-KArAt ViT (G3, r3, blockwise): losses and weights`, async function() {
    // Deterministic initial weights with the builder's structure: each tensor gets the
    // (rounded) mean and spread of its random initialiser, from a seeded generator, plus a
    // small deterministic offset so that zero-initialised biases take part.
    const initial = await onCpu(async () => {
      const init = build();
      const values = init.getWeights().map((w, i) => {
        const v = w.dataSync() as Float32Array;
        const mean = v.reduce((a, b) => a + b, 0) / v.length;
        const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
        const spread = std < 1e-6 ? 0 : Number(std.toPrecision(1));
        const noise = normalish(v.length, spread, 100 + i);
        return Float32Array.from(noise, (n, j) => Math.round(mean) + n + 0.02 * Math.sin(17 * i + j));
      });
      init.dispose();
      return values;
    });
    const x = uniform(BATCH * IMAGE * IMAGE * 3, 0, 1, 5);
    const labels = Array.from(normalish(BATCH, 1, 6), (v) => Math.abs(Math.floor(v * 7)) % CLASSES);

    const cpu = await onCpu(() => train(initial, x, labels));
    const composite = await withFlags({[KARAT_FUSED_FLAG]: false}, () => train(initial, x, labels));
    const gl = await train(initial, x, labels);

    for (const k of [FourierKArAt, FourierKArAtGrad]) {
      if (!gl.kernels.includes(k)) throw new Error(`webgl run did not use kernel ${k}: ${gl.kernels.join(', ')}`);
    }
    console.log(`ViT losses cpu ${cpu.losses.map((l) => l.toFixed(5)).join(' ')} | webgl fused ` +
                `${gl.losses.map((l) => l.toFixed(5)).join(' ')} | webgl composite ` +
                `${composite.losses.map((l) => l.toFixed(5)).join(' ')}`);
    expectClose('losses per step', gl.losses, cpu.losses, 1e-2, 1e-2);
    if (!(cpu.losses[STEPS - 1] < cpu.losses[0])) {
      throw new Error(`training did not reduce the loss on cpu: ${cpu.losses.join(', ')}`);
    }
    let worstFused = 0, worstComposite = 0;
    cpu.weights.forEach((w, i) => {
      const update = (v: Float32Array) => v.map((a, j) => a - initial[i][j]);
      const ref = update(w), fused = update(gl.weights[i]), comp = update(composite.weights[i]);
      const scale = Math.max(maxAbs(ref), 1e-12);
      const errFused = maxAbs(fused.map((a, j) => a - ref[j])) / scale;
      const errComp = maxAbs(comp.map((a, j) => a - ref[j])) / scale;
      worstFused = Math.max(worstFused, errFused);
      worstComposite = Math.max(worstComposite, errComp);
      expectClose(`update of weight ${i} after ${STEPS} steps`, fused, ref, 0.1, 0.1);
      if (!(errFused <= 1.5 * errComp + 1e-3)) {
        throw new Error(`weight ${i}: fused webgl is further from cpu (${errFused.toExponential(2)} of the ` +
                        `update) than the composite path on webgl (${errComp.toExponential(2)})`);
      }
    });
    console.log(`ViT weight updates after ${STEPS} steps, max error / max|cpu update|: ` +
                `fused ${worstFused.toExponential(2)}, composite ${worstComposite.toExponential(2)}`);
  });
});
