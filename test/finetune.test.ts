/**
 * Fine-tuning a pretrained ViT with KArAt (`karat finetune`, adaptForFinetune) on the cpu
 * backend with tiny models: position-embedding resampling against an independent float64
 * reference and known values, the swap keeping every weight bit-identical, a softmax model
 * trained by the library fine-tuned to G3B and G3U (the loss on a fixed set falls), a
 * Keras-format model.json, a model moved to another image size, --freeze, layer decay and
 * the new-parameter learning rate in the optimiser, and every bad input as one line, exit 2.
 */
import '@tensorflow/tfjs-backend-cpu';

import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {strict as assert} from 'assert';
import {spawnSync} from 'node:child_process';
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';

import * as karat from '../src/index';
import {finetuneRandom} from '../src/cli/finetune';
import {NO_AUGMENT} from '../src/data/augment';
import {BatchLoader} from '../src/data/loader';
import {loadDatasetPair, normalisationFor} from '../src/data/registry';
import {fileSystem} from '../src/io/node';
import {AdamW} from '../src/training/adamw';
import {assignWeights, Checkpoint, readCheckpoint} from '../src/training/checkpoint';
import {ConfigError, resolveConfig, TrainConfig} from '../src/training/config';
import {ModelSpec, modelFromSpec} from '../src/training/model';
import {modelFacts, parameterPlan} from '../src/training/param_groups';
import {evaluate, train} from '../src/training/trainer';
import {runCliInProcess} from './support/cli';

const tmp = mkdtempSync(join(tmpdir(), 'karat-finetune-test-'));
after(() => rmSync(tmp, {recursive: true, force: true}));

// ------------------------------------------------------------------ independent reference

/** Keys' cubic convolution kernel W(d) with a = -0.75 (PyTorch's bicubic), written from its definition. */
function keys(d: number): number {
  const a = -0.75, x = Math.abs(d);
  if (x <= 1) return (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1;
  if (x < 2) return a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a;
  return 0;
}

/**
 * F.interpolate(align_corners=False, antialias=False) of one [h, w] channel to [H, W], in
 * float64, directly in 2-D (every output pixel sums its 4x4 or 2x2 neighbourhood).
 */
function refResize(img: number[][], H: number, W: number, mode: 'bicubic' | 'bilinear'): number[][] {
  const h = img.length, w = img[0].length;
  const at = (y: number, x: number) => img[Math.min(Math.max(y, 0), h - 1)][Math.min(Math.max(x, 0), w - 1)];
  const out: number[][] = [];
  for (let Y = 0; Y < H; Y++) {
    const row: number[] = [];
    for (let X = 0; X < W; X++) {
      let sy = (Y + 0.5) * h / H - 0.5, sx = (X + 0.5) * w / W - 0.5;
      let v = 0;
      if (mode === 'bicubic') {
        const fy = Math.floor(sy), fx = Math.floor(sx);
        for (let j = fy - 1; j <= fy + 2; j++) {
          for (let i = fx - 1; i <= fx + 2; i++) v += keys(sy - j) * keys(sx - i) * at(j, i);
        }
      } else {
        sy = Math.max(sy, 0);
        sx = Math.max(sx, 0);
        const y0 = Math.floor(sy), x0 = Math.floor(sx), ty = sy - y0, tx = sx - x0;
        v = (1 - ty) * ((1 - tx) * at(y0, x0) + tx * at(y0, x0 + 1)) + ty * ((1 - tx) * at(y0 + 1, x0) + tx * at(y0 + 1, x0 + 1));
      }
      row.push(v);
    }
    out.push(row);
  }
  return out;
}

/** Reference position-embedding resampling [1, prefix + gh·gw, D] -> [1, prefix + GH·GW, D]. */
function refResample(pe: Float32Array, prefix: number, [gh, gw]: number[], [GH, GW]: number[], D: number, mode: 'bicubic' | 'bilinear'): Float64Array {
  const out = new Float64Array((prefix + GH * GW) * D);
  for (let i = 0; i < prefix * D; i++) out[i] = pe[i];
  for (let c = 0; c < D; c++) {
    const img = Array.from({length: gh}, (_, y) => Array.from({length: gw}, (_, x) => pe[(prefix + y * gw + x) * D + c]));
    const r = refResize(img, GH, GW, mode);
    for (let y = 0; y < GH; y++) for (let x = 0; x < GW; x++) out[(prefix + y * GW + x) * D + c] = r[y][x];
  }
  return out;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function bitIdentical(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  const x = new Float32Array(Array.from(a)), y = new Float32Array(Array.from(b));
  return Buffer.from(x.buffer).equals(Buffer.from(y.buffer));
}

const weightOf = (m: tfl.LayersModel, name: string) => m.weights.find((w) => w.originalName === name)!.read().dataSync() as Float32Array;

const cli = runCliInProcess;

async function modelOfCheckpoint(ck: Checkpoint): Promise<tfl.LayersModel> {
  const m = await modelFromSpec(ck.header.modelSpec as ModelSpec, 0);
  assignWeights(m, ck, 'test checkpoint');
  return m;
}

/** Data and run flags shared by the fine-tuning runs: 48 fixed training images, no augmentation. */
const DATA = ['--train-limit', '48', '--test-limit', '20', '--batch-size', '16', '--eval-batch-size', '20', '--backend', 'cpu',
  '--mixup', '0', '--cutmix', '0', '--label-smoothing', '0', '--crop-padding', '0', '--no-hflip', '--progress', 'none', '--seed', '11'];

/** Cross-entropy of `model` on the first 48 training images, without augmentation. */
async function fixedSetLoss(model: tfl.LayersModel): Promise<number> {
  const {train: ds} = await loadDatasetPair('cifar10-subset', {trainLimit: 48});
  const norm = normalisationFor('cifar10-subset', ds);
  const loader = new BatchLoader(ds, {batchSize: 48, train: false, augment: {...NO_AUGMENT, ...norm}, seed: 0});
  return (await evaluate(model, loader, 10)).loss;
}

describe('finetune: position-embedding resampling', function() {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('1-D known values of PyTorch F.interpolate (align_corners=False): [0, 1] -> 4 samples', () => {
    const cubic = karat.resizeGrid([0, 1], [1, 2], [1, 4], 1, 'bicubic');
    assert.deepEqual(Array.from(cubic), [-0.10546875, 0.2265625, 0.7734375, 1.10546875]);
    const linear = karat.resizeGrid([0, 1], [1, 2], [1, 4], 1, 'bilinear');
    assert.deepEqual(Array.from(linear), [0, 0.25, 0.75, 1]);
    // same size is the identity, exactly
    const x = [0.3, -1.7, 2.5, 8, 1e-3, 4];
    assert.deepEqual(Array.from(karat.resizeGrid(x, [2, 3], [2, 3], 1, 'bicubic')), x);
  });

  for (const mode of ['bicubic', 'bilinear'] as const) {
    it(`${mode}: matches a float64 2-D reference on square and non-square grids, up and down, class token kept`, () => {
      const D = 3;
      for (const [from, to] of [[[4, 4], [7, 7]], [[3, 5], [4, 2]], [[6, 4], [3, 9]], [[5, 5], [2, 3]]]) {
        const n = 1 + from[0] * from[1];
        const pe = tf.randomNormal([1, n, D], 0, 1, 'float32', from[0] * 10 + to[1]);
        const got = karat.resamplePositionEmbedding(pe, from as [number, number], to as [number, number], {interpolation: mode});
        assert.deepEqual(got.shape, [1, 1 + to[0] * to[1], D]);
        const g = got.dataSync() as Float32Array, src = pe.dataSync() as Float32Array;
        const want = refResample(src, 1, from, to, D, mode);
        assert.ok(bitIdentical(g.subarray(0, D), src.subarray(0, D)), 'class token kept bit for bit');
        const d = maxAbsDiff(g, want);
        assert.ok(d < 2e-6, `${from} -> ${to}: max |difference| ${d}`);
        tf.dispose([pe, got]);
      }
    });
  }

  it('rejects a position embedding that does not fit the grid', () => {
    const pe = tf.zeros([1, 17, 4]);
    assert.throws(() => karat.resamplePositionEmbedding(pe, [4, 5], [2, 2]), /must have shape \[1, 1 \+ 4x5, dim\], got \[1,17,4\]/);
    assert.throws(() => karat.resamplePositionEmbedding(pe, [4, 4], [2, 2], {interpolation: 'nearest' as never}), /'bicubic' or 'bilinear'/);
    pe.dispose();
  });
});

describe('finetune: adaptForFinetune', function() {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('moves a models.vit to another non-square size and class count: pos embed resampled, new head, the rest bit-identical', async () => {
    const src = karat.models.vit({dim: 12, depth: 2, heads: 2, mlpRatio: 1, imageSize: [12, 20], patchSize: 4, numClasses: 5, classifierActivation: 'softmax'});
    const a = await karat.adaptForFinetune(src, {
      attention: {type: 'fourier', grid: 3, rank: 4, mode: 'blockwise'}, imageSize: [20, 8], numClasses: 7,
    });
    assert.deepEqual(a.model.inputs[0].shape, [null, 20, 8, 3]);
    assert.deepEqual(a.model.outputs[0].shape, [null, 7]);
    assert.deepEqual(a.from.tokens, 1 + 3 * 5);
    assert.deepEqual(a.to.tokens, 1 + 5 * 2);
    const pe = weightOf(a.model, 'pos_embed/embedding');
    const want = refResample(weightOf(src, 'pos_embed/embedding'), 1, [3, 5], [5, 2], 12, 'bicubic');
    assert.ok(maxAbsDiff(pe, want) < 2e-6, `pos embed differs from the reference by ${maxAbsDiff(pe, want)}`);
    assert.deepEqual(a.replaced.map((r) => r.name).sort(), ['head/bias', 'head/kernel', 'pos_embed/embedding']);
    assert.deepEqual(a.initialised.sort(), ['block0_attn/karat/coeffs', 'block0_attn/karat/proj', 'block1_attn/karat/coeffs', 'block1_attn/karat/proj']);
    assert.deepEqual(a.newParams.sort(), [...a.initialised, 'head/bias', 'head/kernel'].sort());
    assert.deepEqual(a.discarded, []);
    assert.match(a.notes.join('\n'), /head 'head': softmax activation removed/);
    // every other weight (attention projections included) is copied bit for bit
    const others = src.weights.map((w) => w.originalName).filter((n) => !/^head\/|^pos_embed\//.test(n));
    assert.deepEqual(a.kept.sort(), others.slice().sort());
    for (const n of others) assert.ok(bitIdentical(weightOf(a.model, n), weightOf(src, n)), `${n} changed`);
    const y = a.model.predict(tf.randomUniform([2, 20, 8, 3], 0, 1, 'float32', 3)) as tf.Tensor;
    assert.deepEqual(y.shape, [2, 7]);
    assert.ok(Array.from(y.dataSync()).every(Number.isFinite));
    tf.dispose(y);
    src.dispose();
    a.model.dispose();
  });

  it('bilinear option; same size and classes keep the position embedding and head bit-identical', async () => {
    const src = karat.models.vit({dim: 8, depth: 1, heads: 2, mlpRatio: 1, imageSize: 16, patchSize: 4, numClasses: 3});
    const same = await karat.adaptForFinetune(src, {attention: {type: 'fourier', grid: 2, rank: 3}});
    for (const n of ['pos_embed/embedding', 'head/kernel', 'head/bias']) assert.ok(bitIdentical(weightOf(same.model, n), weightOf(src, n)));
    assert.deepEqual(same.replaced, []);
    const bl = await karat.adaptForFinetune(src, {attention: 'softmax', imageSize: 8, interpolation: 'bilinear'});
    const want = refResample(weightOf(src, 'pos_embed/embedding'), 1, [4, 4], [2, 2], 8, 'bilinear');
    assert.ok(maxAbsDiff(weightOf(bl.model, 'pos_embed/embedding'), want) < 2e-6);
    for (const m of [src, same.model, bl.model]) m.dispose();
  });
});

describe('karat finetune (cpu)', function() {
  let softmaxCk = '';
  let softmax: Checkpoint;
  before(async () => {
    await tf.setBackend('cpu');
    // a small softmax ViT trained briefly by the library's trainer
    const cfg = resolveConfig([{from: 'test', values: {
      dataset: 'cifar10-subset', trainLimit: 48, testLimit: 20, dim: 16, depth: 2, heads: 2, mlpRatio: 1, patchSize: 8,
      attention: 'softmax', batchSize: 16, evalBatchSize: 20, epochs: 1, stepsPerEpoch: 3, lr: 3e-3, mixup: 0, cutmix: 0,
      backend: 'cpu', progress: 'none', outDir: tmp, seed: 5,
    }}]);
    const r = await train(cfg, {}, 'pretrained');
    r.model.dispose();
    softmaxCk = r.lastCheckpoint;
    softmax = readCheckpoint(softmaxCk);
  });

  const weightsOf = (ck: Checkpoint) => new Map(ck.header.weights.map((w, i) => [w.name, ck.weights[i]]));

  for (const mode of ['blockwise', 'universal'] as const) {
    const tag = mode === 'blockwise' ? 'G3B' : 'G3U';
    it(`softmax -> ${tag}: non-attention weights bit-identical after the swap, and the loss falls`, async () => {
      const src = await modelOfCheckpoint(softmax);
      // the run's initial model, reproduced with the run's random source (seed 11)
      const a = await karat.adaptForFinetune(src, {attention: {type: 'fourier', grid: 3, rank: 4, mode}, random: finetuneRandom(11)});
      const before = weightsOf(softmax);
      for (const w of a.model.weights) {
        const n = w.originalName;
        if (/\/karat\//.test(n)) continue;
        assert.ok(bitIdentical(w.read().dataSync(), before.get(n)!), `${n} not bit-identical after the swap`);
      }
      assert.equal(a.kept.length, softmax.header.weights.length);
      assert.deepEqual(a.initialised.sort(), mode === 'blockwise' ?
          ['block0_attn/karat/coeffs', 'block0_attn/karat/proj', 'block1_attn/karat/coeffs', 'block1_attn/karat/proj'] :
          ['block0_attn/karat/coeffs', 'block0_attn/karat/proj']);
      const lossBefore = await fixedSetLoss(a.model);

      const r = await cli(['finetune', '--model', softmaxCk, '--grid', '3', '--rank', '4', '--mode', mode, ...DATA,
        '--epochs', '2', '--steps-per-epoch', '3', '--lr', '3e-3', '--out-dir', tmp, '--run-name', `ft-${tag}`]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, new RegExp(`finetune: ${softmaxCk.replace(/[.]/g, '\\.')} \\(softmax attention, 32x32x3, 10 classes, 17 tokens\\) -> fourier KArAt \\(grid 3, rank 4, ${mode}\\)`));
      assert.match(r.out, new RegExp(`kept \\(bit-identical\\): ${softmax.header.weights.length} weights: patch_embed/kernel, `));
      assert.match(r.out, new RegExp(`initialised \\(KArAt operators\\): ${a.initialised.length} weights: block0_attn/karat/coeffs \\[2x2x4x17x3\\]`));
      assert.match(r.out, /replaced: 0 weights/);
      assert.match(r.out, /epoch 2\/2: train loss/);
      const ck = readCheckpoint(join(tmp, `ft-${tag}`, 'last.ckpt'));
      assert.deepEqual(ck.header.trainer.newParams, a.newParams);
      // fine-tuning default: warm-up a tenth of --epochs; the architecture is read from the model
      const saved = ck.header.trainer.config as TrainConfig;
      assert.equal(saved.warmupEpochs, 0.2);
      assert.equal(saved.lr, 3e-3);
      assert.deepEqual([saved.dim, saved.depth, saved.heads, saved.mlpRatio, saved.patchSize], [16, 2, 2, 1, 8]);
      const after = await modelOfCheckpoint(ck);
      const lossAfter = await fixedSetLoss(after);
      assert.ok(lossAfter < lossBefore - 0.02, `loss on the fixed set: ${lossBefore} -> ${lossAfter}`);
      for (const m of [src, a.model, after]) m.dispose();
    });
  }

  it('--freeze leaves frozen weights bit-identical; resume continues the run; eval reads its checkpoint', async () => {
    const r = await cli(['finetune', '--model', softmaxCk, '--grid', '3', '--rank', '4', ...DATA, '--epochs', '2', '--steps-per-epoch', '2',
      '--freeze', 'all-but-karat-and-head', '--new-param-lr', '1e-3', '--warmup-epochs', '0', '--out-dir', tmp, '--run-name', 'frozen']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /optimiser: 6 weights trained \(block0_attn\/karat\/coeffs, block0_attn\/karat\/proj, block1_attn\/karat\/coeffs, block1_attn\/karat\/proj, head\/kernel, head\/bias\), 38 frozen; lr multipliers 2, 1; new weights: 4/);
    const ck = readCheckpoint(join(tmp, 'frozen', 'last.ckpt'));
    const saved = ck.header.trainer.config as TrainConfig;
    assert.deepEqual([saved.warmupEpochs, saved.lr, saved.newParamLr, saved.freeze], [0, 5e-4, 1e-3, 'all-but-karat-and-head']);
    const before = weightsOf(softmax), after = weightsOf(ck);
    let trained = 0;
    for (const [n, v] of after) {
      if (/\/karat\/|^head\//.test(n)) {
        if (before.has(n) && !bitIdentical(v, before.get(n)!)) trained++;
        continue;
      }
      assert.ok(bitIdentical(v, before.get(n)!), `frozen weight ${n} changed`);
    }
    assert.equal(trained, 2, 'the head was trained');
    // resume from the run folder (no --model): the model comes from the checkpoint
    const res = await cli(['finetune', '--resume', join(tmp, 'frozen'), '--epochs', '3', '--progress', 'none']);
    assert.equal(res.code, 0, res.err);
    assert.match(res.out, /resumed from .*last\.ckpt at epoch 2/);
    assert.equal(readCheckpoint(join(tmp, 'frozen', 'last.ckpt')).header.trainer.epoch, 3);
    const ev = await cli(['eval', '--checkpoint', join(tmp, 'frozen', 'last.ckpt'), '--backend', 'cpu', '--test-limit', '20']);
    assert.equal(ev.code, 0, ev.err);
    assert.match(ev.out, /top-1 \d+\.\d\d%/);
  });

  it('a PyTorch-format .safetensors file (timm names, as karat export writes it) fine-tunes like a model.json', async () => {
    const src = karat.models.vit({dim: 16, depth: 1, heads: 2, mlpRatio: 2, imageSize: 32, patchSize: 8, numClasses: 10, classifierActivation: 'linear'});
    const file = join(tmp, 'vit.safetensors');
    writeFileSync(file, karat.io.vitToSafetensors(src));
    const r = await cli(['finetune', '--model', file, '--grid', '3', '--rank', '4', ...DATA, '--epochs', '1', '--steps-per-epoch', '1',
      '--out-dir', tmp, '--run-name', 'from-safetensors']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /finetune: .*vit\.safetensors \(softmax attention, 32x32x3, 10 classes, 17 tokens\) -> fourier KArAt \(grid 3, rank 4, blockwise\)/);
    assert.match(r.out, new RegExp(`kept \\(bit-identical\\): ${src.weights.length} weights`));
    const bad = await cli(['finetune', '--model', softmaxCk, '--arch', 'vit_tiny_patch16_224', ...DATA]);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /karat: error: karat finetune: --arch applies to a \.safetensors --model/);
    src.dispose();
  });

  it("a pooled timm-layout file with fc_norm (global_pool='avg', no class token) fine-tunes and exports fc_norm back", async () => {
    const src = karat.models.vit({dim: 16, depth: 1, heads: 2, mlpRatio: 2, imageSize: 32, patchSize: 8, numClasses: 10, pool: 'gap',
                                  fcNorm: true, classifierActivation: 'linear'});
    const file = join(tmp, 'vit-fcnorm.safetensors');
    writeFileSync(file, karat.io.writeSafetensors(karat.io.vitToTorchTensors(src).tensors));  // no metadata, as timm's
    const r = await cli(['finetune', '--model', file, '--heads', '2', '--grid', '3', '--rank', '4', ...DATA, '--epochs', '1',
      '--steps-per-epoch', '1', '--out-dir', tmp, '--run-name', 'fcnorm']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, new RegExp(`kept \\(bit-identical\\): ${src.weights.length} weights`));
    const out = join(tmp, 'fcnorm.safetensors');
    const e = await cli(['export', '--model', join(tmp, 'fcnorm', 'last.ckpt'), '--to', out]);
    assert.equal(e.code, 0, e.err);
    const f = karat.io.parseSafetensors(new Uint8Array(readFileSync(out)));
    assert.ok(f.has('fc_norm.weight') && !f.has('norm.weight') && f.has('blocks.0.attn.karat.coeffs'));
    src.dispose();
  });

  it('a model moved to another image size: 16x16 (4x4 patches) -> the 32x32 data (8x8), position embedding resampled', async () => {
    const src = karat.models.vit({dim: 8, depth: 1, heads: 2, mlpRatio: 1, imageSize: 16, patchSize: 4, numClasses: 10, classifierActivation: 'linear'});
    const dir = join(tmp, 'small16');
    await src.save(fileSystem(dir));
    const r = await cli(['finetune', '--model', dir, '--grid', '3', '--rank', '4', ...DATA, '--epochs', '1', '--steps-per-epoch', '2',
      '--freeze', 'pos_embed/*,cls_token/token', '--out-dir', tmp, '--run-name', 'moved']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /\(softmax attention, 16x16x3, 10 classes, 17 tokens\) -> fourier KArAt \(grid 3, rank 4, blockwise\), 32x32x3, 10 classes, 65 tokens/);
    assert.match(r.out, /replaced: 1 weights: pos_embed\/embedding \(resampled bicubic 4x4 -> 8x8 patch grid \(1 class token kept\)\)/);
    const ck = readCheckpoint(join(tmp, 'moved', 'last.ckpt'));
    const pe = ck.weights[ck.header.weights.findIndex((w) => w.name === 'pos_embed/embedding')];
    assert.deepEqual(ck.header.weights.find((w) => w.name === 'pos_embed/embedding')!.shape, [1, 65, 8]);
    const want = refResample(weightOf(src, 'pos_embed/embedding'), 1, [4, 4], [8, 8], 8, 'bicubic');
    assert.ok(maxAbsDiff(pe, want) < 2e-6, `resampled position embedding differs from the reference by ${maxAbsDiff(pe, want)}`);
    src.dispose();
  });

  it('bad input: one clear line and exit code 2', async function() {
    // models that cannot be fine-tuned
    const noAtt = tfl.sequential({layers: [tfl.layers.flatten({inputShape: [32, 32, 3]}), tfl.layers.dense({units: 10})]});
    await noAtt.save(fileSystem(join(tmp, 'noatt')));
    const patch5 = karat.models.vit({dim: 8, depth: 1, heads: 2, mlpRatio: 1, imageSize: 15, patchSize: 5, numClasses: 10});
    await patch5.save(fileSystem(join(tmp, 'patch5')));
    const gray = karat.models.vit({dim: 8, depth: 1, heads: 2, mlpRatio: 1, imageSize: 32, patchSize: 8, channels: 1, numClasses: 10});
    await gray.save(fileSystem(join(tmp, 'gray')));
    const karatModel = karat.models.vit({dim: 16, depth: 2, heads: 2, mlpRatio: 1, imageSize: 32, patchSize: 8, numClasses: 10,
      attention: {type: 'fourier', grid: 3, rank: 4, mode: 'blockwise'}});
    const g3b = join(tmp, 'g3b-model');
    await karatModel.save(fileSystem(g3b));
    const base = [...DATA, '--epochs', '1', '--steps-per-epoch', '1', '--out-dir', tmp];
    const cases: Array<[string[], RegExp]> = [
      [['--model', join(tmp, 'noatt')], /karat: error: finetune: the model has no attention layer \(MultiHeadAttention or KArAtMultiHeadAttention\); layers: /],
      [['--model', g3b, '--attention', 'softmax'], /karat: error: finetune: swapping to softmax attention would discard trained weights \(block0_attn\/karat\/coeffs, .*\); pass allowInitialised \(CLI: --allow-initialised\) to accept/],
      [['--model', g3b, '--rank', '5'], /karat: error: finetune: swapping to fourier KArAt \(grid 3, rank 5, blockwise\) would discard trained weights/],
      [['--model', softmaxCk, '--rank', '18'], /karat: error: finetune: KArAt rank 18 exceeds the number of tokens N = 17 \(32x32 images, patch 8, 1 class token\); the rank must be <= N/],
      [['--model', join(tmp, 'patch5')], /karat: error: finetune: image size 32x32 is not divisible by the model's patch size 5/],
      [['--model', join(tmp, 'gray')], /karat: error: finetune: the model takes 1-channel images, the data has 3 channels/],
      [['--model', softmaxCk, '--dim', '32'], /karat: error: karat finetune: --dim is fixed by the pretrained model/],
      [['--model', join(tmp, 'missing')], /karat: error: --model: '.*missing' does not exist/],
      [[], /karat: error: karat finetune: --model <model.json \| run folder \| file.ckpt> is required/],
      [['--model', softmaxCk, '--freeze', 'nothing_like_this*'], /karat: error: 'freeze': 'nothing_like_this\*' matches no weight of the model/],
      [['--model', softmaxCk, '--interpolation', 'nearest'], /karat: error: karat finetune: --interpolation must be bicubic or bilinear/],
      [['--model', softmaxCk, '--image-size', '64'], /karat: error: karat finetune: --image-size resizes image-folder datasets/],
    ];
    for (const [args, re] of cases) {
      const r = await cli(['finetune', ...args, ...(args.length ? base : [])]);
      assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}\n${r.out}\n${r.err}`);
      assert.equal(r.err.trim().split('\n').length, 1, `one line: ${r.err}`);
      assert.match(r.err, re);
    }
    // and through the real command line, as a child process
    const child = spawnSync(process.execPath, ['bin/karat.cjs', 'finetune', '--model', join(tmp, 'noatt'), ...base], {encoding: 'utf8'});
    assert.equal(child.status, 2, child.stderr);
    assert.equal(child.stderr.trim().split('\n').length, 1, child.stderr);
    assert.match(child.stderr, /^karat: error: finetune: the model has no attention layer/);
    // --allow-initialised accepts the swap that discards the operators, and says so
    const ok = await cli(['finetune', '--model', g3b, '--attention', 'softmax', '--allow-initialised', ...base, '--run-name', 'allowed']);
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.out, /discarded \(--allow-initialised\): 4 weights: block0_attn\/karat\/coeffs/);
    for (const m of [noAtt, patch5, gray, karatModel]) m.dispose();
  });
});

describe('fine-tuning parameter groups: freeze, layer decay, new-parameter learning rate', function() {
  before(async () => {
    await tf.setBackend('cpu');
  });

  const cfgOf = (v: Partial<TrainConfig>) => resolveConfig([{from: 'test', values: {lr: 1e-3, ...v}}]);

  it('layer decay and new-param lr give the specified multipliers, and AdamW updates scale by them', () => {
    const m = karat.models.vit({dim: 8, depth: 3, heads: 2, mlpRatio: 1, imageSize: 8, patchSize: 4, numClasses: 3});
    const names = m.weights.map((w) => w.originalName);
    const ranks = new Map(m.weights.map((w) => [w.originalName, w.shape.length]));
    const plan = parameterPlan(modelFacts(m, names), ranks, cfgOf({layerDecay: 0.5, newParamLr: 4e-3}), ['head/kernel']);
    const scale = new Map(plan.map((p) => [p.name, p.rule.lrScale]));
    assert.equal(scale.get('patch_embed/kernel'), 0.5 ** 4);
    assert.equal(scale.get('cls_token/token'), 0.5 ** 4);
    assert.equal(scale.get('pos_embed/embedding'), 0.5 ** 4);
    for (let i = 0; i < 3; i++) {
      for (const n of [`block${i}_norm1/gamma`, `block${i}_attn/query/kernel`, `block${i}_mlp_fc2/bias`]) assert.equal(scale.get(n), 0.5 ** (3 - i), n);
    }
    assert.equal(scale.get('norm/gamma'), 1);
    assert.equal(scale.get('head/bias'), 1);
    assert.equal(scale.get('head/kernel'), 4, 'a new parameter trains at exactly new-param-lr');
    assert.ok(plan.every((p) => !p.frozen));

    // one AdamW step (no decay): the first update is -lr·scale·g/(|g|+ε)
    const params = m.weights.map((w, i) => ({name: w.originalName, variable: w.read() as tf.Variable, rule: {...plan[i].rule, decay: false}}));
    const before = params.map((p) => p.variable.dataSync().slice());
    const grads = params.map((p, i) => tf.randomNormal(p.variable.shape, 0, 1, 'float32', i + 1));
    const opt = new AdamW(params, {weightDecay: 0});
    opt.apply(grads, 1e-3);
    params.forEach((p, i) => {
      const after = p.variable.dataSync(), g = grads[i].dataSync();
      for (let k = 0; k < after.length; k++) {
        const want = before[i][k] - 1e-3 * p.rule.lrScale * g[k] / (Math.abs(g[k]) + 1e-8);
        assert.ok(Math.abs(after[k] - want) <= 1e-6 * Math.max(1, Math.abs(want)), `${p.name}[${k}]: ${after[k]} vs ${want}`);
      }
    });
    opt.dispose();
    tf.dispose(grads);
    m.dispose();
  });

  it('freeze selections, globs and regexes; errors name the problem', () => {
    const m = karat.models.vit({dim: 8, depth: 2, heads: 2, mlpRatio: 1, imageSize: 8, patchSize: 4, numClasses: 3,
      attention: {type: 'fourier', grid: 2, rank: 2}});
    const names = m.weights.map((w) => w.originalName);
    const facts = modelFacts(m, names);
    const ranks = new Map(m.weights.map((w) => [w.originalName, w.shape.length]));
    const trained = (freeze: string, newParams: string[] | null = []) =>
      parameterPlan(facts, ranks, cfgOf({freeze}), newParams).filter((p) => !p.frozen).map((p) => p.name).sort();
    assert.deepEqual(trained('all-but-karat-and-head'),
        ['block0_attn/karat/coeffs', 'block0_attn/karat/proj', 'block1_attn/karat/coeffs', 'block1_attn/karat/proj', 'head/bias', 'head/kernel']);
    assert.deepEqual(trained('all-but-new', ['head/kernel']), ['head/kernel']);
    assert.deepEqual(trained('all-but-norm'), names.filter((n) => /norm/.test(n)).sort());
    assert.deepEqual(trained('block0_*,/^block1_attn\\//,patch_embed/kernel'),
        names.filter((n) => !n.startsWith('block0_') && !n.startsWith('block1_attn/') && n !== 'patch_embed/kernel').sort());
    assert.throws(() => trained('all-but-bias'), (e: Error) => e instanceof ConfigError && /unknown selection 'bias'/.test(e.message));
    assert.throws(() => trained('zzz*'), /'zzz\*' matches no weight/);
    assert.throws(() => trained('/(/'), /not a valid regular expression/);
    assert.throws(() => trained('*'), /freezes every weight; nothing would train/);
    assert.throws(() => trained('all-but-new', null), /the selection 'new' applies to fine-tuning/);
    assert.throws(() => parameterPlan(facts, ranks, cfgOf({newParamLr: 1e-3}), null), /'new-param-lr' applies to fine-tuning/);
    assert.throws(() => cfgOf({layerDecay: 1.5}), /'layer-decay' must be in \(0, 1\]/);
    const plain = karat.models.vit({dim: 8, depth: 1, heads: 2, mlpRatio: 1, imageSize: 8, patchSize: 4, numClasses: 3});
    assert.throws(() => parameterPlan(modelFacts(plain, plain.weights.map((w) => w.originalName)), ranks, cfgOf({freeze: 'all-but-karat'}), []),
        /the selection 'karat' in 'all-but-karat' matches no weight/);
    m.dispose();
    plain.dispose();
  });
});
