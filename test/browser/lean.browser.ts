/**
 * The lean backward pass in the browser: on webgl and on webgpu (SwiftShader in
 * headless Chromium), `leanVariableGrads` gives bitwise the gradients of `tf.variableGrads`
 * for a softmax ViT (which takes the fused softmax-attention kernels on webgpu) with a lower
 * tf.profile peak, and `enableLeanGradients()` makes an optimizer step take it.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

import {enableLeanGradients, leanVariableGrads, models} from '../../src/index';
import {describeWithBackends} from '../support/backend_suites';

import {BROWSER_GPU_BACKENDS} from './backends';
import {normalish} from './util';

describeWithBackends('lean backward pass (browser)', {backends: BROWSER_GPU_BACKENDS}, function(env) {
  this.timeout(240000);
  const backend = env.backend;

  it('bitwise the tf.variableGrads gradients with a lower peak; enableLeanGradients covers minimize', async function() {
    const model = models.vit({
      dim: 16, depth: 2, heads: 2, mlpRatio: 2, imageSize: 8, patchSize: 4, numClasses: 3, attention: 'softmax',
    });
    const x = tf.tensor4d(normalish(4 * 8 * 8 * 3, 1, 5), [4, 8, 8, 3]);
    const y = tf.oneHot(tf.tensor1d([0, 2, 1, 2], 'int32'), 3);
    const vars = model.trainableWeights.map((w) => (w as unknown as {val: tf.Variable}).val);
    const loss = () => tf.mean(tfl.metrics.categoricalCrossentropy(y, model.apply(x, {training: true}) as tf.Tensor)) as tf.Scalar;
    const run = async (fn: typeof tf.variableGrads) => {
      let out: {value: tf.Scalar, grads: tf.NamedTensorMap} | null = null;
      const prof = await tf.profile(() => {
        out = fn(loss, vars);
        return [];
      });
      const vals = await Promise.all(vars.map((v) => out!.grads[v.name].data()));
      tf.dispose([out!.value, ...Object.values(out!.grads)]);
      return {vals, peak: prof.peakBytes, kernels: prof.kernels.map((k) => k.name)};
    };
    const stock = await run(tf.variableGrads);
    const lean = await run(leanVariableGrads);
    stock.vals.forEach((g, i) => {
      for (let k = 0; k < g.length; k++) {
        if (g[k] !== lean.vals[i][k]) throw new Error(`${vars[i].name}[${k}]: ${g[k]} vs ${lean.vals[i][k]}`);
      }
    });
    if (!(lean.peak < stock.peak)) throw new Error(`peak: lean ${lean.peak} vs stock ${stock.peak}`);
    if (backend === 'webgpu' && !lean.kernels.includes('KArAtSoftmaxAttention')) {
      throw new Error(`the fused softmax attention did not run: ${[...new Set(lean.kernels)]}`);
    }
    // enableLeanGradients: optimizer.minimize goes through the lean pass (lower peak, same loss).
    const minimize = async () => {
      const opt = tf.train.sgd(0.1);
      const before = vars.map((v) => v.clone());
      const prof = await tf.profile(() => {
        const l = opt.minimize(loss, true, vars);
        if (l != null) l.dispose();
        return [];
      });
      const after = await Promise.all(vars.map((v) => v.data()));
      vars.forEach((v, i) => v.assign(before[i]));
      tf.dispose(before);
      opt.dispose();
      return {after, peak: prof.peakBytes};
    };
    const m1 = await minimize();
    enableLeanGradients();
    let m2: Awaited<ReturnType<typeof minimize>>;
    try {
      m2 = await minimize();
    } finally {
      enableLeanGradients(false);
    }
    if (!(m2.peak < m1.peak)) throw new Error(`minimize peak: lean ${m2.peak} vs stock ${m1.peak}`);
    m1.after.forEach((w, i) => {
      for (let k = 0; k < w.length; k++) {
        if (w[k] !== m2.after[i][k]) throw new Error(`after minimize ${vars[i].name}[${k}]: ${w[k]} vs ${m2.after[i][k]}`);
      }
    });
    tf.dispose([x, y]);
    model.dispose();
  });
});
