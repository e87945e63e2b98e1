/**
 * Interop with files made by the real tools, generated in the test run by
 * test/support/interop_fixtures.py (one Python process for all fixtures): ViTs built in tf_keras
 * and converted by tensorflowjs 4.22's Keras converter, and timm VisionTransformers saved with
 * safetensors (random weights, fixed seeds). The Python tools environment comes from
 * scripts/python-tools.sh; its interpreter is $KARAT_PYTHON_TOOLS or .venv-tools/bin/python.
 * Without it every test here is skipped with the reason.
 */
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {strict as assert} from 'assert';
import {spawnSync} from 'node:child_process';
import {existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join, resolve} from 'node:path';

import * as karat from '../src/index';
import '../src/io/node';
import {runCliInProcess} from './support/cli';

const ROOT = resolve(__dirname, '..');
const PYTHON = process.env.KARAT_PYTHON_TOOLS || join(ROOT, '.venv-tools', 'bin', 'python');
const SCRIPT = join(__dirname, 'support', 'interop_fixtures.py');
const ENV = {...process.env, TF_CPP_MIN_LOG_LEVEL: '3', CUDA_VISIBLE_DEVICES: ''};

interface TimmFixture {
  name: string; arch: string; dir: string; batch: number; imageSize: [number, number]; heads: number; numClasses: number;
}
interface KerasFixture {
  name: string; dir: string; batch: number; imageSize: number; numClasses: number;
}

/** Why the tools are unusable, or null when they work. */
function toolsMissing(): string | null {
  if (!existsSync(PYTHON)) return `no Python tools at ${PYTHON} (run scripts/python-tools.sh or set KARAT_PYTHON_TOOLS)`;
  const r = spawnSync(PYTHON, ['-c', 'import tensorflowjs, tf_keras, timm, safetensors, torch'],
                      {encoding: 'utf8', timeout: 180000, env: ENV});
  if (r.status !== 0) return `${PYTHON} cannot import tensorflowjs, tf_keras, timm, safetensors, torch: ${(r.stderr || '').trim().split('\n').pop()}`;
  return null;
}

function f32(path: string): Float32Array {
  const b = readFileSync(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

function bitIdentical(a: tf.Tensor, b: tf.Tensor): boolean {
  if (a.shape.join() !== b.shape.join()) return false;
  const x = new Uint32Array((a.dataSync() as Float32Array).slice().buffer);
  const y = new Uint32Array((b.dataSync() as Float32Array).slice().buffer);
  return x.every((v, i) => v === y[i]);
}

/** The weights exactly as the converter stored them (Keras names). */
async function converterWeights(modelJson: string): Promise<{artifacts: tf.io.ModelArtifacts, weights: Map<string, tf.Tensor>}> {
  const artifacts = await tf.io.getLoadHandlers(`file://${modelJson}`)[0].load!();
  const weights = new Map(Object.entries(tf.io.decodeWeights(artifacts.weightData!, artifacts.weightSpecs!)));
  return {artifacts, weights};
}

async function fitLosses(m: tfl.LayersModel, x: tf.Tensor, y: tf.Tensor, epochs: number): Promise<number[]> {
  m.compile({optimizer: tf.train.adam(3e-3), loss: 'categoricalCrossentropy'});
  const h = await m.fit(x, y, {epochs, batchSize: x.shape[0], verbose: 0, shuffle: false});
  return h.history.loss as number[];
}

/** max |a - b| / max |b|. */
function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

describe('interop with real producers: tensorflowjs_converter (tf_keras) and timm', function() {
  this.timeout(900000);
  let tmp = '';
  let timm: TimmFixture[] = [];
  let keras: KerasFixture[] = [];
  let skipReason: string | null = null;
  const errors: Record<string, number> = {};

  before(async function() {
    await tf.setBackend('cpu');
    skipReason = toolsMissing();
    if (skipReason != null) {
      console.log(`      (skipped: ${skipReason})`);
      return;
    }
    tmp = mkdtempSync(join(tmpdir(), 'karat-interop-'));
    const r = spawnSync(PYTHON, [SCRIPT, 'make', tmp], {encoding: 'utf8', timeout: 600000, env: ENV});
    assert.equal(r.status, 0, `interop_fixtures.py make failed:\n${r.stderr}`);
    const manifest = JSON.parse(readFileSync(join(tmp, 'manifest.json'), 'utf8'));
    timm = manifest.timm;
    keras = manifest.keras;
  });
  beforeEach(function() {
    if (skipReason != null) this.skip();
  });
  after(() => {
    if (Object.keys(errors).length) console.log(`      max relative errors: ${JSON.stringify(errors)}`);
    if (tmp) rmSync(tmp, {recursive: true, force: true});
  });

  const timmOf = (name: string) => timm.find(e => e.name === name)!;
  const kerasOf = (name: string) => keras.find(e => e.name === name)!;

  // ------------------------------------------------------------------ timm

  const SUPPORTED_TIMM: Array<[string, string]> = [
    ['vit_tiny_patch16_224', 'class token, 224 px, patch 16'],
    ['deit_tiny_patch16_224', 'DeiT-Tiny (by arch name)'],
    ['vit_small_patch16_224', 'ViT-Small, 224 px'],
    ['tiny_avg_nocls_32', "class_token=False, global_pool='avg' (fc_norm), 32 px, patch 4"],
    ['tiny_32_p4', 'img_size=32, patch_size=4'],
  ];
  const exported: string[] = [];
  for (const [name, what] of SUPPORTED_TIMM) {
    it(`timm ${name} (${what}): karat convert logits = timm's forward (<= 1e-5 rel), export writes timm names`, async () => {
      const e = timmOf(name);
      const bytes = new Uint8Array(readFileSync(join(e.dir, 'model.safetensors')));
      const opts = e.arch === name ? {arch: name} : {heads: e.heads};
      const rep = karat.io.vitFromSafetensorsWithReport(bytes, opts);
      try {
        assert.deepEqual(rep.initialised, []);
        assert.deepEqual(rep.zeroFilled, []);
        assert.equal(rep.config.fcNorm ?? false, name === 'tiny_avg_nocls_32');
        const [H, W] = e.imageSize;
        const x = tf.tensor4d(f32(join(e.dir, 'input.bin')), [e.batch, H, W, 3]);
        const y = rep.model.predict(x) as tf.Tensor;
        const err = maxRel(y.dataSync(), f32(join(e.dir, 'logits.bin')));
        tf.dispose([x, y]);
        errors[`timm ${name}`] = err;
        assert.ok(err <= 1e-5, `max relative error ${err}`);
        const out = join(tmp, `${name}.export.safetensors`);
        writeFileSync(out, karat.io.vitToSafetensors(rep.model));
        exported.push(`${name}=${out}`);
      } finally {
        rep.model.dispose();
      }
    });
  }

  it('karat export files load into the same timm models with load_state_dict(strict=True); logits match again', function() {
    if (exported.length !== SUPPORTED_TIMM.length) this.skip();
    const r = spawnSync(PYTHON, [SCRIPT, 'check', tmp, ...exported], {encoding: 'utf8', timeout: 600000, env: ENV});
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split('\n').map(l => JSON.parse(l) as {name: string, maxRel: number});
    assert.equal(lines.length, SUPPORTED_TIMM.length);
    for (const l of lines) {
      errors[`timm ${l.name} (exported, in timm)`] = l.maxRel;
      assert.ok(l.maxRel <= 1e-5, `${l.name}: max relative error ${l.maxRel}`);
    }
  });

  it('the karat CLI converts a timm checkpoint (karat convert) and exports it back (karat export)', async () => {
    const e = timmOf('tiny_avg_nocls_32');
    const out = join(tmp, 'cli-model');
    const c = await runCliInProcess(['convert', '--from', join(e.dir, 'model.safetensors'), '--heads', String(e.heads), '--out', out]);
    assert.equal(c.code, 0, c.err);
    const model = await tfl.loadLayersModel(`file://${join(out, 'model.json')}`);
    const x = tf.tensor4d(f32(join(e.dir, 'input.bin')), [e.batch, 32, 32, 3]);
    const y = model.predict(x) as tf.Tensor;
    assert.ok(maxRel(y.dataSync(), f32(join(e.dir, 'logits.bin'))) <= 1e-5);
    tf.dispose([x, y]);
    model.dispose();
    const exp = join(tmp, 'cli-export.safetensors');
    const x2 = await runCliInProcess(['export', '--model', join(out, 'model.json'), '--to', exp]);
    assert.equal(x2.code, 0, x2.err);
    assert.ok(existsSync(exp));
  });

  const REFUSED_TIMM: Array<[string, RegExp]> = [
    ['tiny_reg4_32', /tensor 'reg_token': register tokens \(timm reg_tokens > 0\) are not supported/],
    ['tiny_no_embed_class_32', /no position for the class token \(timm's no_embed_class=True\): not supported/],
    ['tiny_cls_avg_32', /timm's global_pool='avg' with a class token .* is not supported/],
  ];
  for (const [name, re] of REFUSED_TIMM) {
    it(`timm ${name}: refused with a named error`, () => {
      const e = timmOf(name);
      const bytes = new Uint8Array(readFileSync(join(e.dir, 'model.safetensors')));
      assert.throws(() => karat.io.vitFromSafetensors(bytes, {heads: e.heads}),
                    (err: Error) => err.name === 'KArAtArgumentError' && re.test(err.message));
    });
  }

  // ------------------------------------------------------------------ Keras

  for (const name of ['keras_token_s', 'keras_gap_m']) {
    it(`Keras ${name} (tensorflowjs_converter): loadKerasViT predictions = Keras' model.predict (<= 1e-5 rel)`, async () => {
      const e = kerasOf(name);
      const model = await karat.loadKerasViT(`file://${join(e.dir, 'model.json')}`);
      try {
        assert.ok(model.layers.some(l => l.getClassName() === 'KArAtMultiHeadAttention'));
        const x = tf.tensor4d(f32(join(e.dir, 'input.bin')), [e.batch, e.imageSize, e.imageSize, 3]);
        const y = model.predict(x) as tf.Tensor;
        const err = maxRel(y.dataSync(), f32(join(e.dir, 'expected.bin')));
        tf.dispose([x, y]);
        errors[`keras ${name}`] = err;
        assert.ok(err <= 1e-5, `max relative error ${err}`);
      } finally {
        model.dispose();
      }
    });
  }

  it('Keras: swapAttention to Fourier-KArAt carries every non-attention-operator weight bit for bit; ' +
     'the result saves and loads with plain tf.loadLayersModel', async () => {
    const e = kerasOf('keras_token_s');
    const url = `file://${join(e.dir, 'model.json')}`;
    const {artifacts, weights} = await converterWeights(join(e.dir, 'model.json'));
    // Stock tfjs-layers 4.22 cannot load the converter's file by itself.
    await assert.rejects(tfl.loadLayersModel(tf.io.fromMemory(artifacts)), /MultiHeadAttention/);
    const src = await karat.loadKerasViT(url);
    const rep = await karat.swapAttentionWithReport(src, {type: 'fourier', grid: 3, rank: 4, mode: 'blockwise'});
    assert.deepEqual(rep.attentionLayers, ['mha_0', 'mha_1']);
    assert.deepEqual(rep.initialised.sort(), ['mha_0/karat/coeffs', 'mha_0/karat/proj', 'mha_1/karat/coeffs', 'mha_1/karat/proj']);
    assert.equal(rep.copied.length, weights.size);
    for (const [name, t] of weights) {
      const n = name.replace('/attention_output/', '/attentionOutput/');
      const w = rep.model.weights.find(v => v.originalName === n);
      assert.ok(w != null && bitIdentical(w.read(), t), `${name} not carried over bit for bit`);
    }
    tf.dispose([...weights.values()]);
    const dir = mkdtempSync(join(tmp, 'saved-'));
    await rep.model.save(`file://${dir}`);
    const back = await tfl.loadLayersModel(`file://${join(dir, 'model.json')}`);
    const x = tf.tensor4d(f32(join(e.dir, 'input.bin')), [e.batch, e.imageSize, e.imageSize, 3]);
    const a = rep.model.predict(x) as tf.Tensor, b = back.predict(x) as tf.Tensor;
    assert.ok(bitIdentical(a, b));
    // Both the loaded softmax model and the swapped KArAt model train: the loss falls.
    const y = tf.oneHot(tf.tensor1d([0, 3], 'int32'), e.numClasses);
    for (const m of [src, back]) {
      const losses = await fitLosses(m, x, y, 6);
      assert.ok(losses[losses.length - 1] < losses[0], `loss should fall: ${losses}`);
    }
    tf.dispose([x, a, b, y]);
    [src, rep.model, back].forEach(m => m.dispose());
  });

  it('Keras: swapAttention refuses an attention node called with a causal mask, a mask tensor or returned scores, ' +
     "by name; the defaults Keras writes are accepted", async () => {
    const e = kerasOf('keras_gap_m');
    const {artifacts, weights} = await converterWeights(join(e.dir, 'model.json'));
    const cases: Array<[string, unknown]> = [['use_causal_mask', true], ['attention_mask', ['mask_input', 0, 0, {}]],
      ['return_attention_scores', true], ['some_future_option', 1]];
    const variant = (kwargs: Record<string, unknown>) => {
      const topo = JSON.parse(JSON.stringify(artifacts.modelTopology));
      const mha = topo.model_config.config.layers.find((l: {class_name: string}) => l.class_name === 'MultiHeadAttention');
      Object.assign(mha.inbound_nodes[0][0][3], kwargs);
      return {a: {...artifacts, modelTopology: topo}, layer: mha.config.name as string};
    };
    for (const [key, val] of cases) {
      const {a, layer} = variant({[key]: val});
      await assert.rejects(karat.swapAttention(a, 'softmax'),
          (err: Error) => err.name === 'KArAtArgumentError' && err.message.includes(`layer '${layer}'`) && err.message.includes(`'${key}'`), key);
      await assert.rejects(karat.loadKerasViT(a), (err: Error) => err.name === 'KerasViTError' && err.message.includes(`layer '${layer}'`), key);
    }
    const {a} = variant({use_causal_mask: false, return_attention_scores: false, attention_mask: null, training: false});
    const m = await karat.loadKerasViT(a);
    m.dispose();
    tf.dispose([...weights.values()]);
  });

  it('Keras: adaptForFinetune moves the converted model to another size (the Reshape target follows) and class count', async () => {
    const e = kerasOf('keras_gap_m');  // 24x24, patch 8: 9 tokens, 7 classes
    const {weights} = await converterWeights(join(e.dir, 'model.json'));
    const a = await karat.adaptForFinetune(`file://${join(e.dir, 'model.json')}`,
                                           {attention: {type: 'fourier', grid: 2, rank: 3}, imageSize: [32, 16], numClasses: 4});
    assert.deepEqual(a.model.inputs[0].shape, [null, 32, 16, 3]);
    assert.deepEqual(a.model.getLayer('tokens').outputShape, [null, 8, 48]);
    assert.deepEqual([a.from.tokens, a.to.tokens], [9, 8]);
    for (const [n, t] of weights) {
      if (n.startsWith('head/') || n.startsWith('pos_embed/')) continue;  // new head; resampled position embedding
      const w = a.model.weights.find(v => v.originalName === n.replace('/attention_output/', '/attentionOutput/'));
      assert.ok(w != null && bitIdentical(w.read(), t), `${n} changed`);
    }
    const y = a.model.predict(tf.ones([1, 32, 16, 3])) as tf.Tensor;
    assert.deepEqual(y.shape, [1, 4]);
    tf.dispose([y, ...weights.values()]);
    a.model.dispose();
  });

  it('Keras: karat finetune --model <converted model.json> trains and evaluates', async () => {
    const e = kerasOf('keras_token_s');
    const r = await runCliInProcess(['finetune', '--model', join(e.dir, 'model.json'), '--grid', '3', '--rank', '4',
      '--train-limit', '32', '--test-limit', '16', '--batch-size', '16', '--eval-batch-size', '16', '--backend', 'cpu',
      '--mixup', '0', '--cutmix', '0', '--progress', 'none', '--seed', '3', '--epochs', '1', '--steps-per-epoch', '1',
      '--out-dir', tmp, '--run-name', 'keras-ft']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /\(softmax attention, 16x16x3, 5 classes, 17 tokens\) -> fourier KArAt \(grid 3, rank 4, blockwise\), 32x32x3, 10 classes, 65 tokens; attention layers: mha_0, mha_1/);
    // every converter weight but the head and the resampled position embedding is kept bit for bit
    const {weights} = await converterWeights(join(e.dir, 'model.json'));
    assert.match(r.out, new RegExp(`kept \\(bit-identical\\): ${weights.size - 3} weights`));
    assert.match(r.out, /replaced: 3 weights: head\/kernel \(new head: 5 -> 10 classes, initialised\), head\/bias .*pos_embed\/embedding \(resampled bicubic 4x4 -> 8x8/);
    assert.match(r.out, /epoch 1\/1: train loss \d+\.\d+ .* top-1 \d+\.\d\d%/);
    tf.dispose([...weights.values()]);
    // the fine-tuned model loads with plain tf.loadLayersModel (the package imported)
    const m = await tfl.loadLayersModel(`file://${join(tmp, 'keras-ft', 'model', 'model.json')}`);
    assert.deepEqual(m.outputs[0].shape, [null, 10]);
    m.dispose();
  });

  it('Keras: karat finetune names an unmappable layer of a converted model in one line, exit code 2', async () => {
    const e = kerasOf('keras_custom_layer');
    const r = await runCliInProcess(['finetune', '--model', join(e.dir, 'model.json'), '--grid', '3', '--rank', '4',
      '--backend', 'cpu', '--progress', 'none', '--out-dir', tmp, '--run-name', 'keras-bad']);
    assert.equal(r.code, 2, r.out + r.err);
    assert.match(r.err, /^karat: error: .*finetune: layer 'token_scale' has class 'TokenScale', which neither tfjs-layers nor tfjs-karat implements/);
    assert.equal(r.err.trim().split('\n').length, 1, r.err);
  });

  const REFUSED_KERAS: Array<[string, RegExp]> = [
    ['keras_causal_mask', /layer 'mha_0' \(MultiHeadAttention\) is called with use_causal_mask=true; attention masks/],
    ['keras_dot_attention', /layer 'dot_attn_0' is a Keras Attention layer; only MultiHeadAttention can be mapped/],
    ['keras_custom_layer', /layer 'token_scale' has class 'TokenScale', which neither tfjs-layers nor tfjs-karat implements/],
  ];
  for (const [name, re] of REFUSED_KERAS) {
    it(`Keras ${name}: loadKerasViT refuses it with a KerasViTError naming the layer`, async () => {
      const e = kerasOf(name);
      await assert.rejects(karat.loadKerasViT(`file://${join(e.dir, 'model.json')}`),
                           (err: Error) => err.name === 'KerasViTError' && re.test(err.message));
    });
  }
});
