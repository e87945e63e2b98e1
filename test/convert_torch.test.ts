/**
 * PyTorch (timm-named) ViT weights <-> models.vit (src/io/torch_vit.ts, `karat convert`,
 * `karat export`), checked against PyTorch itself: test/support/torch_timm_vit.py builds a
 * timm-layout ViT (and Fourier-KArAt from the paper's formula) in plain PyTorch and computes the
 * reference logits in float64. Needs /usr/bin/python3 with torch (Debian's python3-torch);
 * those tests skip without it. cpu backend.
 */
import * as assert from 'node:assert/strict';
import {spawnSync} from 'node:child_process';
import {existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';

import * as karat from '../src/node';
import {runCliInProcess} from './support/cli';

const PYTHON = '/usr/bin/python3';
const SCRIPT = join(__dirname, 'support', 'torch_timm_vit.py');

function torchAvailable(): boolean {
  if (!existsSync(PYTHON)) return false;
  return spawnSync(PYTHON, ['-c', 'import torch, numpy'], {encoding: 'utf8', timeout: 120000}).status === 0;
}

function python(args: string[]): string {
  const r = spawnSync(PYTHON, [SCRIPT, ...args], {encoding: 'utf8', timeout: 300000});
  if (r.status !== 0) throw new Error(`torch_timm_vit.py ${args[0]} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

function f32(path: string): Float32Array {
  const b = readFileSync(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** max |a - b| / max |b|. */
function relErr(a: Float32Array | number[], b: Float32Array | number[]): number {
  assert.equal(a.length, b.length);
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / m;
}

const cli = runCliInProcess;

function predict(model: tfl.LayersModel, input: Float32Array): Float32Array {
  const [, H, W, C] = model.inputs[0].shape as number[];
  return tf.tidy(() => (model.predict(tf.tensor4d(input, [input.length / (H * W * C), H, W, C])) as tf.Tensor).dataSync() as Float32Array);
}

interface Size {
  label: string;
  config: Record<string, unknown>;
  flags: string[];
}

// Two architectures: a square 4x4 grid with a class token; a non-square 3x4 grid (24x32
// images), one channel, average pooling, MLP ratio 2, no qkv bias.
const SIZES: Size[] = [
  {
    label: 'A: 32x32 image, patch 8, dim 16, depth 2, 2 heads, class token, 10 classes',
    config: {dim: 16, depth: 2, heads: 2, mlpRatio: 4, patchSize: 8, imageSize: [32, 32], channels: 3, numClasses: 10},
    flags: ['--heads', '2'],
  },
  {
    label: 'B: 24x32 image (3x4 grid), patch 8, 1 channel, dim 24, depth 3, 3 heads, mlp ratio 2, gap pool, no qkv bias, 7 classes',
    config: {dim: 24, depth: 3, heads: 3, mlpRatio: 2, patchSize: 8, imageSize: [24, 32], channels: 1, numClasses: 7, pool: 'gap', qkvBias: false},
    flags: ['--heads', '3', '--image-size', '24x32'],
  },
];

describe('karat convert / karat export against PyTorch (timm layout)', function() {
  this.timeout(600000);
  let dir = '';

  before(async function() {
    if (!torchAvailable()) {
      console.log(`      (skipped: ${PYTHON} has no torch; install Debian's python3-torch)`);
      this.skip();
    }
    await tf.setBackend('cpu');
    dir = mkdtempSync(join(tmpdir(), 'karat-torch-'));
    // the PyTorch models, their safetensors files (F32, F16, BF16), inputs and logits
    SIZES.forEach((size, k) => {
      mkdirSync(join(dir, `size${k}`));
      python(['make', join(dir, `size${k}`), JSON.stringify(size.config), String(7 + k), '3']);
    });
  });

  after(() => {
    if (dir) rmSync(dir, {recursive: true, force: true});
  });

  SIZES.forEach((size, k) => {
    it(`convert + predict = PyTorch logits (<= 1e-4 relative), ${size.label}; F16 and BF16 files too${k === 0 ? '; karat eval runs the converted model.ckpt' : ''}`, async () => {
      const d = join(dir, `size${k}`);
      const input = f32(join(d, 'input.bin'));

      const out = join(d, 'tfjs');
      const r = await cli(['convert', '--from', join(d, 'model_F32.safetensors'), ...size.flags, '--out', out]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /architecture inferred from the tensor shapes/);
      const model = await tfl.loadLayersModel(`file://${join(out, 'model.json')}`);
      const c = size.config;
      assert.deepEqual(model.inputs[0].shape, [null, ...(c.imageSize as number[]), c.channels]);
      const ours = predict(model, input);
      const ref = f32(join(d, 'logits_F32.bin'));
      const err = relErr(ours, ref);
      console.log(`      F32: relative error ${err.toExponential(2)} over ${ref.length} logits`);
      assert.ok(err <= 1e-4, `relative error ${err}`);
      model.dispose();
      if (k === 0) {
        // the converted model.ckpt runs in karat eval (size A has CIFAR-10's 32x32x3 and 10 classes)
        const ev = await cli(['eval', '--checkpoint', join(out, 'model.ckpt'), '--test-limit', '10', '--backend', 'cpu']);
        await tf.setBackend('cpu');
        assert.equal(ev.code, 0, ev.err);
        assert.match(ev.out, /cifar10-subset\/test\[:10\], 10 examples/);
        assert.match(ev.out, /top-1 \d+\.\d\d%/);
      }

      for (const dtype of ['F16', 'BF16']) {
        const bytes = new Uint8Array(readFileSync(join(d, `model_${dtype}.safetensors`)));
        assert.equal(karat.io.parseSafetensors(bytes).entry('pos_embed').dtype, dtype);
        const m = karat.io.vitFromSafetensors(bytes, {heads: c.heads as number, imageSize: c.imageSize as [number, number]});
        const e = relErr(predict(m, input), f32(join(d, `logits_${dtype}.bin`)));
        console.log(`      ${dtype}: relative error ${e.toExponential(2)} (reference uses torch's ${dtype} rounding of the weights)`);
        assert.ok(e <= 1e-4, `${dtype} relative error ${e}`);
        m.dispose();
      }
    });
  });

  it('without the heads, or (non-square grid) without the image size, convert says what to give', async () => {
    const a = join(dir, 'size0', 'model_F32.safetensors'), b = join(dir, 'size1', 'model_F32.safetensors');
    let r = await cli(['convert', '--from', a, '--out', join(dir, 'x')]);
    assert.equal(r.code, 2);
    assert.match(r.err, /karat: error: .*heads.*--heads N.*--arch/);
    r = await cli(['convert', '--from', b, '--heads', '3', '--out', join(dir, 'x')]);
    assert.equal(r.code, 2);
    assert.match(r.err, /12 patch positions, not a square grid: give the image size/);
    r = await cli(['convert', '--from', a, '--arch', 'vit_tiny_patch16_224', '--out', join(dir, 'x')]);
    assert.equal(r.code, 2);
    assert.match(r.err, /arch 'vit_tiny_patch16_224' has width 192 and patch 16, the file has width 16 and patch 8/);
    r = await cli(['convert', '--from', a, '--heads', '3', '--out', join(dir, 'x')]);
    assert.equal(r.code, 2);
    assert.match(r.err, /3 heads do not divide the width 16/);
    r = await cli(['convert', '--from', a, '--heads', '2', '--max-bytes', '1000', '--out', join(dir, 'x')]);
    assert.equal(r.code, 2);
    assert.match(r.err, /is \d+ bytes, more than --max-bytes 1000/);
    assert.equal(existsSync(join(dir, 'x')), false);
  });

  it('export -> PyTorch strict load_state_dict -> same logits: softmax, Fourier-KArAt blockwise and universal', async () => {
    const models: Array<[string, tfl.LayersModel]> = [];
    for (const mode of ['softmax', 'blockwise', 'universal']) {
      models.push([mode === 'softmax' ? mode : `fourier-${mode}`, karat.models.vit({
        dim: 12, depth: 2, heads: 3, mlpRatio: 2, imageSize: [16, 24], patchSize: 8, numClasses: 5, classifierActivation: 'linear',
        attention: mode === 'softmax' ? 'softmax' : {type: 'fourier', grid: 3, rank: 4, mode: mode as 'blockwise' | 'universal'},
      })]);
    }
    const triples: string[] = [];
    const ours: Float32Array[] = [];
    for (const [name, model] of models) {
      const mdir = join(dir, `export-${name}`);
      await model.save(karat.io.fileSystem(mdir));
      const file = join(dir, `export-${name}.safetensors`);
      const r = await cli(['export', '--model', join(mdir, 'model.json'), '--to', file]);
      assert.equal(r.code, 0, r.err);
      const [, H, W, C] = model.inputs[0].shape as number[];
      const x = tf.tidy(() => tf.randomNormal([2, H, W, C], 0, 1, 'float32', 11).dataSync() as Float32Array);
      writeFileSync(join(dir, `export-${name}.in`), x);
      ours.push(predict(model, x));
      triples.push(file, join(dir, `export-${name}.in`), join(dir, `export-${name}.out`));
      const names = karat.io.parseSafetensors(new Uint8Array(readFileSync(file))).entries.map(e => e.name);
      if (name === 'fourier-blockwise') assert.ok(names.includes('blocks.1.attn.karat.coeffs') && !names.includes('karat.coeffs'));
      if (name === 'fourier-universal') assert.ok(names.includes('karat.proj') && !names.some(n => n.startsWith('blocks.0.attn.karat')));
    }
    assert.match(python(['check', ...triples]), /ok/);
    models.forEach(([name, model], i) => {
      const e = relErr(ours[i], f32(triples[3 * i + 2]));
      console.log(`      ${name}: relative error ${e.toExponential(2)}`);
      assert.ok(e <= 1e-4, `${name}: relative error ${e}`);
      model.dispose();
    });
  });
});

describe('vitToSafetensors / vitFromSafetensors round trip (no PyTorch needed)', function() {
  this.timeout(120000);
  before(async () => {
    await tf.setBackend('cpu');
  });

  const ATTENTIONS: Array<[string, karat.models.ViTArgs['attention']]> = [
    ['softmax', 'softmax'],
    ['Fourier blockwise', {type: 'fourier', grid: 2, rank: 3, mode: 'blockwise'}],
    ['Fourier universal', {type: 'fourier', grid: 3, rank: 4, mode: 'universal'}],
  ];
  for (const [label, attention] of ATTENTIONS) {
    it(`${label}: same predictions, byte-identical re-export, metadata config`, () => {
      const m = karat.models.vit({dim: 8, depth: 2, heads: 2, imageSize: [8, 16], patchSize: 4, numClasses: 3, attention, classifierActivation: 'linear'});
      const bytes = karat.io.vitToSafetensors(m);
      const r = karat.io.vitFromSafetensorsWithReport(bytes);
      assert.equal(r.configSource, 'metadata');
      assert.deepEqual(r.initialised, []);
      assert.deepEqual(r.config.imageSize, [8, 16]);
      const x = tf.randomNormal([2, 8, 16, 3], 0, 1, 'float32', 3);
      const a = m.predict(x) as tf.Tensor, b = r.model.predict(x) as tf.Tensor;
      assert.deepEqual(Array.from(a.dataSync()), Array.from(b.dataSync()));
      assert.deepEqual(karat.io.vitToSafetensors(r.model), bytes);
      const f = karat.io.parseSafetensors(bytes);
      assert.equal(f.metadata.format, 'tfjs-karat-vit');
      const cfg = JSON.parse(f.metadata.config);
      assert.deepEqual(Object.keys(cfg).sort(), ['attention', 'channels', 'depth', 'dim', 'heads', 'imageSize', 'mlpRatio', 'numClasses', 'patchSize', 'pool']);
      tf.dispose([x, a, b]);
      m.dispose();
      r.model.dispose();
    });
  }

  it("fcNorm (timm's fc_norm, LayerNorm after pooling): fc_norm.weight|bias instead of norm.*, same predictions both ways", () => {
    const m = karat.models.vit({dim: 8, depth: 1, heads: 2, imageSize: 8, patchSize: 4, numClasses: 3, pool: 'gap', fcNorm: true,
                                classifierActivation: 'linear'});
    assert.ok(m.layers.some(l => l.name === 'fc_norm') && !m.layers.some(l => l.name === 'norm'));
    const bytes = karat.io.vitToSafetensors(m);
    const f = karat.io.parseSafetensors(bytes);
    assert.ok(f.has('fc_norm.weight') && f.has('fc_norm.bias') && !f.has('norm.weight'));
    assert.equal(JSON.parse(f.metadata.config).fcNorm, true);
    // as a timm checkpoint (no metadata), and with our metadata
    const plain = karat.io.writeSafetensors(karat.io.vitToTorchTensors(m).tensors);
    for (const file of [bytes, plain]) {
      const r = karat.io.vitFromSafetensorsWithReport(file, {heads: 2});
      assert.equal(r.config.fcNorm, true);
      const x = tf.randomNormal([2, 8, 8, 3], 0, 1, 'float32', 4);
      const a = m.predict(x) as tf.Tensor, b = r.model.predict(x) as tf.Tensor;
      assert.deepEqual(Array.from(b.dataSync()), Array.from(a.dataSync()));
      tf.dispose([x, a, b]);
      r.model.dispose();
    }
    assert.throws(() => karat.models.vit({dim: 8, depth: 1, heads: 2, imageSize: 8, patchSize: 4, numClasses: 3, fcNorm: 'yes' as never}),
                  /argument 'fcNorm' must be a boolean/);
    m.dispose();
  });

  it('timm layouts: Conv2d [D, C, p, p], Linear [out, in], qkv rows q|k|v with heads contiguous', () => {
    const m = karat.models.vit({dim: 4, depth: 1, heads: 2, imageSize: 4, patchSize: 2, channels: 2, numClasses: 3});
    const {tensors} = karat.io.vitToTorchTensors(m);
    const t = new Map(tensors.map(x => [x.name, x]));
    const w = (n: string) => new Map(m.weights.map(v => [v.originalName ?? v.name, v])).get(n)!.read();
    // conv: torch[d, c, ky, kx] = kernel[ky, kx, c, d]
    const k = w('patch_embed/kernel').arraySync() as number[][][][];
    const conv = t.get('patch_embed.proj.weight')!;
    assert.deepEqual(conv.shape, [4, 2, 2, 2]);
    assert.equal(conv.data[((3 * 2 + 1) * 2 + 0) * 2 + 1], Math.fround(k[0][1][1][3]));
    // qkv: row (j·D + h·d + e), column i = {query,key,value}/kernel[i, h, e]
    const qkv = t.get('blocks.0.attn.qkv.weight')!;
    assert.deepEqual(qkv.shape, [12, 4]);
    const kk = w('block0_attn/key/kernel').arraySync() as number[][][];
    assert.equal(qkv.data[(1 * 4 + 1 * 2 + 0) * 4 + 3], Math.fround(kk[3][1][0]));
    // fc1: torch [H, D] = kernel [D, H]ᵀ
    const fc1 = t.get('blocks.0.mlp.fc1.weight')!;
    const k1 = w('block0_mlp_fc1/kernel').arraySync() as number[][];
    assert.deepEqual(fc1.shape, [16, 4]);
    assert.equal(fc1.data[5 * 4 + 2], Math.fround(k1[2][5]));
    m.dispose();
  });

  it('a timm file: the arch name gives the heads; unknown or missing tensors are named', () => {
    const m = karat.models.vit({dim: 16, depth: 1, heads: 4, imageSize: 8, patchSize: 4, numClasses: 2});
    const {tensors} = karat.io.vitToTorchTensors(m);
    const plain = karat.io.writeSafetensors(tensors);  // no metadata, like a timm checkpoint
    const r = karat.io.vitFromSafetensorsWithReport(plain, {heads: 4});
    assert.equal(r.configSource, 'shapes');
    assert.equal(r.config.heads, 4);
    assert.throws(() => karat.io.vitFromSafetensors(plain, {arch: 'vit_small_patch16_224'}),
                  /arch 'vit_small_patch16_224' has width 384 and patch 16, the file has width 16 and patch 4/);
    assert.throws(() => karat.io.vitFromSafetensors(plain, {arch: 'vit_huge'}), /argument 'arch' must be one of vit_tiny_patch16_224/);
    assert.throws(() => karat.io.vitFromSafetensors(plain, {heads: 4, imageSize: [8, 12]}), /image size 8x12 with patch 4 gives 6 patches, but 'pos_embed' \[1, 5, 16\] has 4/);
    assert.throws(() => karat.io.vitFromSafetensors(plain, {heads: 4, bogus: 1} as never), /unknown option 'bogus'/);
    const extra = karat.io.writeSafetensors([...tensors, {name: 'blocks.0.ls1.gamma', shape: [16], data: new Float32Array(16)}]);
    assert.throws(() => karat.io.vitFromSafetensors(extra, {heads: 4}), /has no place for: blocks\.0\.ls1\.gamma/);
    const missing = karat.io.writeSafetensors(tensors.filter(x => x.name !== 'blocks.0.norm2.bias'));
    assert.throws(() => karat.io.vitFromSafetensors(missing, {heads: 4}), /no tensor 'blocks\.0\.norm2\.bias' \(expected \[16\]/);
    const fcNorm = karat.io.writeSafetensors([...tensors, {name: 'fc_norm.weight', shape: [16], data: new Float32Array(16)}]);
    assert.throws(() => karat.io.vitFromSafetensors(fcNorm, {heads: 4}), /tensors 'norm\.weight' and 'fc_norm\.weight': a LayerNorm both before and after pooling is not supported/);
    const wrong = karat.io.writeSafetensors(tensors.map(x => x.name === 'head.bias' ? {...x, shape: [1, 2]} : x));
    assert.throws(() => karat.io.vitFromSafetensors(wrong, {heads: 4}), /tensor 'head\.bias' has shape \[1, 2\], expected \[2\]/);
    // a KArAt config on a softmax file: operators initialised and reported
    const k = karat.io.vitFromSafetensorsWithReport(plain, {heads: 4, attention: {type: 'fourier', grid: 1, rank: 2, mode: 'blockwise'}});
    assert.deepEqual(k.initialised, ['block0_attn/karat/coeffs', 'block0_attn/karat/proj']);
    m.dispose();
    r.model.dispose();
    k.model.dispose();
  });

  it('our metadata: a missing, unknown or contradicting config field is named', () => {
    const m = karat.models.vit({dim: 8, depth: 1, heads: 2, imageSize: 8, patchSize: 4, numClasses: 2});
    const {tensors, config} = karat.io.vitToTorchTensors(m);
    const withConfig = (c: object) => karat.io.writeSafetensors(tensors, {format: 'tfjs-karat-vit', config: JSON.stringify(c)});
    const {heads, ...noHeads} = config;
    assert.equal(heads, 2);
    assert.throws(() => karat.io.vitFromSafetensors(withConfig(noHeads)), /__metadata__\.config: field 'heads' is missing/);
    assert.throws(() => karat.io.vitFromSafetensors(withConfig({...config, qkvBias: false})), /__metadata__\.config: unknown field 'qkvBias'/);
    assert.throws(() => karat.io.vitFromSafetensors(withConfig({...config, depth: 2})), /__metadata__\.config\.depth \(2\) contradicts the tensor shapes \(1\)/);
    assert.throws(() => karat.io.vitFromSafetensors(withConfig({...config, attention: {type: 'fourier', grid: 0}})), /attention/);
    assert.throws(() => karat.io.vitFromSafetensors(withConfig(config), {heads: 4}), /__metadata__\.config\.heads \(2\) contradicts the argument 'heads' \(4\)/);
    assert.throws(() => karat.io.vitFromSafetensors(karat.io.writeSafetensors(tensors, {format: 'tfjs-karat-vit', config: '{'})), /__metadata__\.config is not valid JSON/);
    assert.equal(karat.io.vitFromSafetensorsWithReport(withConfig(config)).configSource, 'metadata');
    m.dispose();
  });

  it('karat export reads only files inside the model directory, size-checked; refuses non-ViT models', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'karat-export-'));
    try {
      const m = karat.models.vit({dim: 8, depth: 1, heads: 2, imageSize: 8, patchSize: 4, numClasses: 2});
      await m.save(karat.io.fileSystem(join(dir, 'm')));
      const jsonPath = join(dir, 'm', 'model.json');
      const json = JSON.parse(readFileSync(jsonPath, 'utf8'));
      writeFileSync(join(dir, 'outside.bin'), readFileSync(join(dir, 'm', 'weights.bin')));
      json.weightsManifest[0].paths = ['../outside.bin'];
      writeFileSync(join(dir, 'm', 'escape.json'), JSON.stringify(json));
      let r = await cli(['export', '--model', join(dir, 'm', 'escape.json'), '--to', join(dir, 'x.safetensors')]);
      assert.equal(r.code, 2);
      assert.match(r.err, /weight file "\.\.\/outside\.bin" is outside the model directory/);
      symlinkSync(join(dir, 'outside.bin'), join(dir, 'm', 'link.bin'));
      json.weightsManifest[0].paths = ['link.bin'];
      writeFileSync(join(dir, 'm', 'link.json'), JSON.stringify(json));
      r = await cli(['export', '--model', join(dir, 'm', 'link.json'), '--to', join(dir, 'x.safetensors')]);
      assert.equal(r.code, 2);
      assert.match(r.err, /weight file "link\.bin" resolves outside the model directory/);
      r = await cli(['export', '--model', join(dir, 'm'), '--to', join(dir, 'x.safetensors'), '--max-bytes', '100']);
      assert.equal(r.code, 2);
      assert.match(r.err, /model\.json' is \d+ bytes, more than --max-bytes 100/);
      json.weightsManifest[0].paths = ['weights.bin'];
      json.weightsManifest[0].weights[0].shape = [4, 4, 3, 9];
      writeFileSync(join(dir, 'm', 'big.json'), JSON.stringify(json));
      r = await cli(['export', '--model', join(dir, 'm', 'big.json'), '--to', join(dir, 'x.safetensors')]);
      assert.equal(r.code, 2);
      assert.match(r.err, /weight files hold \d+ bytes, the manifest declares \d+/);
      r = await cli(['export', '--model', join(dir, 'm'), '--to', join(dir, 'x.safetensors'), '--bogus', '1']);
      assert.equal(r.code, 2);
      assert.match(r.err, /karat export: unknown flag --bogus/);
      const seq = tfl.sequential({layers: [tfl.layers.dense({units: 2, inputShape: [3]})]});
      await seq.save(karat.io.fileSystem(join(dir, 'seq')));
      r = await cli(['export', '--model', join(dir, 'seq'), '--to', join(dir, 'x.safetensors')]);
      assert.equal(r.code, 2);
      assert.match(r.err, /one image input \[batch, H, W, C\]/);
      assert.equal(existsSync(join(dir, 'x.safetensors')), false);
      r = await cli(['export', '--model', join(dir, 'm'), '--to', join(dir, 'x.safetensors')]);
      assert.equal(r.code, 0, r.err);
      assert.equal(karat.io.vitConfigFromSafetensors(new Uint8Array(readFileSync(join(dir, 'x.safetensors')))).config.heads, 2);
      m.dispose();
      seq.dispose();
    } finally {
      rmSync(dir, {recursive: true, force: true});
    }
  });
});
