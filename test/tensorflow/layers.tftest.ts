/**
 * The layer and ViT suites on the `tensorflow` backend (tfjs-node) against the cpu backend on
 * the same weights and inputs, first with the composite Fourier-KArAt path, then with the fused
 * op loaded into TensorFlow: KArAtMultiHeadAttention (softmax, masks, Fourier-KArAt blockwise and
 * universal; forward, scores and every gradient), its softmax outputs also against tfjs-layers'
 * own MultiHeadAttention (test/support/stock_mha_cases.ts) on the same weights; a whole
 * models.vit forward and backward (softmax and G2B) with the plugin's LayerNorm layers, also
 * against tfjs-layers' stock LayerNormalization path on tensorflow; the fused layer ops
 * (layerNorm, biasGelu, AdamW) against cpu and tfjs-layers.
 *
 * The suites run on the test backends 'tensorflow' (composite path: the KARAT_FUSED flag off;
 * backend.tftest.ts may already have loaded the op library in this process) and
 * 'tensorflow-fused-op' (test/support/tensorflow_node.ts, describeWithBackends), and check the
 * path from the kernels that ran; the layer ops are the shared LAYER_OP_CASES
 * (test/support/fused_layer_cases.ts). Runs in the tensorflow mocha process (scripts/test.mjs);
 * without tfjs-node, or without the op library for the fused variants, the suites skip with the
 * reason.
 */
import {strict as assert} from 'node:assert';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

import * as karat from '../../src/index';
import {FourierKArAt, FourierKArAtGrad} from '../../src/index';
import {describeWithBackends, TestBackend, useBackend} from '../support/backend_suites';
import {describeLayerOpCases, lossAndGrads, rand, values} from '../support/fused_layer_cases';
import {maxErrorOverUnit} from '../support/reference';
import {StockArr, runStock} from '../support/stock_mha_run';
import {TENSORFLOW, TENSORFLOW_FUSED_OP} from '../support/tensorflow_node';

function below(x: number, limit: number, what: string) {
  assert.ok(x < limit, `${what}: ${x.toExponential(2)} is not below ${limit}`);
}

function arr(t: tf.Tensor): StockArr {
  return {shape: t.shape, data: Array.from(t.dataSync()), ...(t.dtype === 'bool' ? {bool: true} : {})};
}

type KArAtPath = 'composite' | 'fused';

const pathOf = (env: TestBackend): KArAtPath => env.id === TENSORFLOW_FUSED_OP.id ? 'fused' : 'composite';

/** The Fourier-KArAt kernels that ran say which path ran. */
function expectPath(path: KArAtPath, kernelNames: string[]): void {
  if (path === 'fused') {
    assert.ok(kernelNames.includes(FourierKArAt) && kernelNames.includes(FourierKArAtGrad),
        `the fused op did not run: ${kernelNames.filter((k) => /KArAt/.test(k)).join(', ')}`);
  } else {
    assert.ok(!kernelNames.includes(FourierKArAt) && !kernelNames.includes(FourierKArAtGrad), 'the composite path ran');
  }
}

interface MhaCase {
  name: string;
  args: {numHeads: number, keyDim: number, valueDim?: number, attentionActivation?: karat.AttentionActivation};
  q: number[];
  v?: number[];
  k?: number[];
  /** a bool attentionMask [B, T, S] */
  mask?: boolean;
  causal?: boolean;
}

const MHA_CASES: MhaCase[] = [
  {name: 'softmax, query/value/key of other widths, valueDim', args: {numHeads: 2, keyDim: 3, valueDim: 4}, q: [2, 4, 6], v: [2, 3, 6], k: [2, 3, 5]},
  {name: 'softmax, bool attentionMask [B, T, S] and useCausalMask, T != S', args: {numHeads: 2, keyDim: 2}, q: [2, 5, 8], v: [2, 3, 8],
   mask: true, causal: true},
  {name: 'Fourier-KArAt G2B r3, value and key honoured', args: {numHeads: 2, keyDim: 3, attentionActivation: {type: 'fourier', grid: 2, rank: 3}},
   q: [2, 6, 8], v: [2, 6, 8], k: [2, 6, 5]},
  {name: 'Fourier-KArAt G3U r2, self-attention', args: {numHeads: 3, keyDim: 2,
   attentionActivation: {type: 'fourier', grid: 3, rank: 2, mode: 'universal'}}, q: [2, 7, 6]},
];

/** Output, scores, and the gradients of sum(output · w) w.r.t. the query and every weight. */
function mhaAll(layer: karat.KArAtMultiHeadAttention, inp: Record<string, tf.Tensor>, c: MhaCase): tf.Tensor[] {
  const opts = () => ({
    value: inp.value ?? inp.query, ...(inp.key ? {key: inp.key} : {}),
    ...(inp.mask ? {attentionMask: inp.mask} : {}), ...(c.causal ? {useCausalMask: true} : {}),
  });
  const [out, scores] = layer.callAndReturnAttentionScores(inp.query, opts());
  const vars = layer.trainableWeights.map((w) => (w as unknown as {val: tf.Variable}).val);
  const f = (q: tf.Tensor) => tf.sum(tf.mul(layer.callAndReturnAttentionScores(q, opts())[0], inp.w)) as tf.Scalar;
  const dq = tf.grad(f)(inp.query);
  const {grads} = tf.variableGrads(() => f(inp.query), vars);
  return [out, scores, dq, ...vars.map((v) => grads[v.name])];
}

const TF_BACKENDS = [TENSORFLOW.id, TENSORFLOW_FUSED_OP.id];

describeWithBackends('KArAtMultiHeadAttention matches cpu and the stock layer', {backends: TF_BACKENDS}, (env) => {
  const path = pathOf(env);

  const ref: Float32Array[][] = [];
  const got: Float32Array[][] = [];
  const kernels: string[][] = [];
  let stock: ReturnType<typeof runStock> = [];

  before(async () => {
    const stockCases: unknown[] = [];
    for (const [i, c] of MHA_CASES.entries()) {
      await useBackend('cpu');
      const inp: Record<string, tf.Tensor> = {query: tf.randomNormal(c.q, 0, 1, 'float32', 10 * i + 1)};
      if (c.v) inp.value = tf.randomNormal(c.v, 0, 1, 'float32', 10 * i + 2);
      if (c.k) inp.key = tf.randomNormal(c.k, 0, 1, 'float32', 10 * i + 3);
      const S = (c.v ?? c.q)[1];
      if (c.mask) {
        inp.mask = tf.tidy(() => tf.logicalOr(tf.greater(tf.randomUniform([c.q[0], c.q[1], S], 0, 1, 'float32', 10 * i + 4), 0.4),
            tf.concat([tf.ones([c.q[0], c.q[1], 1], 'bool'), tf.zeros([c.q[0], c.q[1], S - 1], 'bool')], -1)));
      }
      const outShape = [c.q[0], c.q[1], c.q[2]];
      inp.w = tf.tensor(rand(outShape, 1, 10 * i + 5), outShape);
      const layer = new karat.KArAtMultiHeadAttention({...c.args, name: `tf_mha_${i}`, kernelInitializer: 'glorotNormal',
                                                       biasInitializer: 'randomNormal'});
      ref.push(await values(tf.tidy(() => mhaAll(layer, inp, c))));
      if (c.args.attentionActivation == null) {
        stockCases.push({kind: 'call', numHeads: c.args.numHeads, keyDim: c.args.keyDim, valueDim: c.args.valueDim,
                         weights: layer.getWeights().map(arr), query: arr(inp.query), ...(inp.value ? {value: arr(inp.value)} : {}),
                         ...(inp.key ? {key: arr(inp.key)} : {}), ...(inp.mask ? {attentionMask: arr(inp.mask)} : {}),
                         ...(c.causal ? {useCausalMask: true} : {})});
      }
      await useBackend(env.backend);
      const info = await tf.profile(async () => {
        got.push(await values(tf.tidy(() => mhaAll(layer, inp, c))));
      });
      kernels.push(info.kernelNames);
      tf.dispose(Object.values(inp));
      layer.weights.forEach((w) => w.dispose());  // called, never applied: Layer.dispose() refuses
    }
    stock = runStock(stockCases);
  });

  MHA_CASES.forEach((c, i) => {
    it(`${c.name}: output, scores and the gradients (query, every weight) equal cpu`, () => {
      assert.equal(got[i].length, ref[i].length);
      assert.ok(got[i].length >= 2 + 1 + 8, 'output, scores, dQuery and 8 weight gradients (KArAt: more)');
      below(maxErrorOverUnit(got[i][0], ref[i][0]), 1e-5, 'output');
      below(maxErrorOverUnit(got[i][1], ref[i][1]), 1e-5, 'scores');
      for (let j = 2; j < ref[i].length; j++) below(maxErrorOverUnit(got[i][j], ref[i][j]), 1e-4, `gradient ${j - 2}`);
      if (c.args.attentionActivation != null) expectPath(path, kernels[i]);
    });
  });

  it('softmax cases on tensorflow equal tfjs-layers\' own MultiHeadAttention (cpu) on the same weights', () => {
    const soft = MHA_CASES.map((c, i) => ({c, i})).filter(({c}) => c.args.attentionActivation == null);
    assert.equal(stock.length, soft.length);
    soft.forEach(({c, i}, j) => {
      const s = stock[j];
      assert.ok(s.error == null, `${c.name}: the stock layer failed: ${s.error}`);
      assert.deepEqual(s.output!.shape, [c.q[0], c.q[1], c.q[2]]);
      below(maxErrorOverUnit(got[i][0], Float32Array.from(s.output!.data)), 1e-5, `${c.name}: output vs stock`);
      below(maxErrorOverUnit(got[i][1], Float32Array.from(s.scores!.data)), 1e-5, `${c.name}: scores vs stock`);
    });
  });
});

describeWithBackends('models.vit forward and backward match cpu', {backends: TF_BACKENDS}, (env) => {
  const path = pathOf(env);

  for (const att of ['softmax', 'fourier'] as const) {
    it(`${att} ViT: logits, loss and every parameter gradient equal cpu; the plugin's LayerNorm equals the stock path on tensorflow`, async () => {
      await useBackend('cpu');
      const model = karat.models.vit({
        dim: 16, depth: 2, heads: 2, imageSize: 8, patchSize: 4, numClasses: 3, classifierActivation: 'linear',
        attention: att === 'softmax' ? 'softmax' : {type: 'fourier', grid: 2, rank: 3, mode: 'blockwise'},
      });
      const x = tf.tensor4d(rand([3, 8, 8, 3], 1, 31), [3, 8, 8, 3]);
      const y = tf.oneHot(tf.tensor1d([0, 2, 1], 'int32'), 3);
      const cpuLogits = await values([model.predict(x) as tf.Tensor]);
      const logits = {fromLogits: true};
      const cpu = await lossAndGrads(model, x, y, true, logits);
      await useBackend(env.backend);
      const tfLogits = await values([model.predict(x) as tf.Tensor]);
      const lean = await lossAndGrads(model, x, y, true, logits);
      const stock = await lossAndGrads(model, x, y, false, logits);
      tf.dispose([x, y]);
      model.dispose();
      below(maxErrorOverUnit(tfLogits[0], cpuLogits[0]), 1e-5, 'logits');
      assert.equal(lean.vals.length, cpu.vals.length);
      cpu.vals.forEach((r, i) => below(maxErrorOverUnit(lean.vals[i], r), 1e-4, `loss/grad ${i}`));
      // flag on: the composite layerNorm op; off: tfjs-layers' LayerNormalization (batchNorm formula)
      assert.ok(!lean.names.includes('FusedBatchNorm') && stock.names.includes('FusedBatchNorm'));
      stock.vals.forEach((r, i) => below(maxErrorOverUnit(lean.vals[i], r), 1e-4, `loss/grad ${i} vs the stock layers`));
      if (att === 'fourier') expectPath(path, lean.names);
    });
  }
});

describeLayerOpCases(['tensorflow']);
