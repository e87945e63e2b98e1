/**
 * Importing the package changes nothing it did not create, and no option is silently
 * ignored:
 *  - tf.serialization keeps resolving 'LayerNormalization' / 'Dense' to tfjs-layers' classes; a
 *    user's stock model loaded after the import runs exactly the stock kernels (tf.profile, in
 *    fresh processes with and without the import) with bitwise the same outputs and gradients;
 *  - models built by the package keep their fused layers (own class names) through save/load;
 *    the committed demo model loads, and its form with the stock class names still loads;
 *  - flag KARAT_FUSED_LAYERS (and its deprecated alias KARAT_WEBGPU_FUSED_LAYERS);
 *  - swapAttention refuses to lose weights unless {allowInitialised: true}, naming them (a ViT
 *    built from tfjs-layers' own MultiHeadAttention, whose Q/K/V/output weights tfjs 4.22 does
 *    not track);
 *  - unknown arguments of every layer, of models.vit and of swapAttention are named errors.
 */
import '@tensorflow/tfjs-backend-cpu';

import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {strict as assert} from 'assert';
import {spawnSync} from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import * as karat from '../src/node';
import {KARAT_FUSED_LAYERS_FLAG, KARAT_WEBGPU_FUSED_LAYERS_FLAG} from '../core/flags';

const ROOT = path.resolve(__dirname, '..');

function child(script: string, args: string[]): string {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(__dirname, 'support', script), ...args],
                      {encoding: 'utf8', timeout: 120000, cwd: ROOT, maxBuffer: 64 << 20});
  assert.equal(r.status, 0, `${script} failed: ${r.stderr}`);
  return r.stdout;
}

async function artifactsOf(model: tfl.LayersModel): Promise<tf.io.ModelArtifacts> {
  return karat.io.saveToMemory(model);
}

function topologyJson(a: tf.io.ModelArtifacts): string {
  return JSON.stringify(a.modelTopology);
}

function kernelNames(info: {kernels: Array<{name: string}>}): string[] {
  return info.kernels.map((k) => k.name);
}

describe('importing the package changes nothing it did not create', function() {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('tf.serialization resolves LayerNormalization and Dense to the stock classes; ours have their own names', () => {
    const map = tf.serialization.SerializationMap.getMap().classNameMap;
    assert.equal(map.LayerNormalization[0], tfl.layers.layerNormalization({}).constructor);
    assert.equal(map.Dense[0], tfl.layers.dense({units: 1}).constructor);
    const ln = karat.fusedLayerNormalization({}), dense = karat.fusedDense({units: 2});
    assert.deepEqual([ln.getClassName(), dense.getClassName()], [karat.FUSED_LAYER_NORMALIZATION_CLASS, karat.FUSED_DENSE_CLASS]);
    assert.deepEqual([karat.FUSED_LAYER_NORMALIZATION_CLASS, karat.FUSED_DENSE_CLASS], ['KArAtLayerNormalization', 'KArAtDense']);
    assert.equal(map.KArAtLayerNormalization[0], ln.constructor);
    assert.equal(map.KArAtDense[0], dense.constructor);
    // still the stock classes underneath (same weights, config, instanceof)
    assert.ok(ln instanceof (tfl.layers.layerNormalization({}).constructor as never));
  });

  it('a user\'s stock model loaded after the import runs exactly the stock kernels (fresh processes, with and without the import)', async () => {
    const x = tfl.input({shape: [4, 6]});
    let h = tfl.layers.layerNormalization({name: 'ln'}).apply(x) as tfl.SymbolicTensor;
    h = tfl.layers.dense({units: 8, activation: 'gelu', name: 'fc1'}).apply(h) as tfl.SymbolicTensor;
    h = tfl.layers.dense({units: 6, name: 'fc2'}).apply(h) as tfl.SymbolicTensor;
    h = tfl.layers.layerNormalization({name: 'ln2'}).apply(tfl.layers.add().apply([x, h]) as tfl.SymbolicTensor) as tfl.SymbolicTensor;
    h = tfl.layers.globalAveragePooling1d({}).apply(h) as tfl.SymbolicTensor;
    const model = tfl.model({inputs: x, outputs: tfl.layers.dense({units: 3, activation: 'softmax', name: 'head'}).apply(h) as tfl.SymbolicTensor});
    const a = await artifactsOf(model);
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'karat-probe-')), 'model.json');
    fs.writeFileSync(file, JSON.stringify({...a, weightData: Buffer.from(a.weightData as ArrayBuffer).toString('base64')}));
    const without = JSON.parse(child('stock_model_probe.ts', [file]));
    const withKarat = JSON.parse(child('stock_model_probe.ts', [file, 'with-karat']));
    assert.deepEqual(withKarat.registry, {LayerNormalization: true, Dense: true});
    assert.ok(withKarat.layers.every((l: {stock: boolean}) => l.stock), JSON.stringify(withKarat.layers));
    assert.ok(without.predictKernels.includes('FusedBatchNorm'), 'the stock LayerNormalization formula');
    assert.deepEqual(withKarat.predictKernels, without.predictKernels);
    assert.deepEqual(withKarat.gradKernels, without.gradKernels);
    assert.ok(!withKarat.predictKernels.concat(withKarat.gradKernels).some((k: string) => k.startsWith('KArAt')));
    assert.deepEqual(withKarat.out, without.out);
    assert.deepEqual(withKarat.grads, without.grads);
    model.dispose();
    fs.rmSync(path.dirname(file), {recursive: true, force: true});
  });

  it('a ViT built by the package keeps its fused layers through save/load (class names KArAtLayerNormalization, KArAtDense)', async () => {
    const m = karat.models.vit({dim: 16, depth: 1, heads: 2, imageSize: 8, patchSize: 4, numClasses: 3});
    const a = await artifactsOf(m);
    const json = topologyJson(a);
    assert.equal((json.match(/"class_name":"KArAtLayerNormalization"/g) ?? []).length, 3);  // norm1, norm2, norm
    assert.equal((json.match(/"class_name":"KArAtDense"/g) ?? []).length, 2);               // mlp_fc1, mlp_fc2
    assert.equal((json.match(/"class_name":"Dense"/g) ?? []).length, 1);                    // head: stock
    const loaded = await karat.io.loadFromMemory(a);
    assert.deepEqual(loaded.layers.map((l) => l.getClassName()), m.layers.map((l) => l.getClassName()));
    const x = tf.randomNormal([2, 8, 8, 3], 0, 1, 'float32', 1);
    const info = await tf.profile(() => loaded.predict(x) as tf.Tensor);
    assert.ok(!kernelNames(info).includes('FusedBatchNorm'), 'the reloaded ViT takes the layerNorm op');
    assert.equal(tf.max(tf.abs(tf.sub(info.result as tf.Tensor, m.predict(x) as tf.Tensor))).dataSync()[0], 0);
    m.dispose();
    loaded.dispose();
  });

  it('the committed demo model loads and predicts; its form with the stock class names loads into the stock classes, same predictions', async () => {
    const dir = path.join(ROOT, 'examples/demo/model');
    const a = await karat.io.fileSystem(dir).load!();
    const json = topologyJson(a);
    assert.ok(json.includes('"class_name":"KArAtLayerNormalization"'));
    const current = await tfl.loadLayersModel(tf.io.fromMemory(a));
    const legacyTopology = JSON.parse(json.replace(/"class_name":"KArAtLayerNormalization"/g, '"class_name":"LayerNormalization"')
                                          .replace(/"class_name":"KArAtDense"/g, '"class_name":"Dense"'));
    const legacy = await tfl.loadLayersModel(tf.io.fromMemory({...a, modelTopology: legacyTopology}));
    const stockLN = tfl.layers.layerNormalization({}).constructor;
    assert.ok(legacy.layers.filter((l) => l.getClassName() === 'LayerNormalization').every((l) => l.constructor === stockLN));
    const shape = current.inputs[0].shape.slice(1) as number[];
    const x = tf.randomUniform([4, ...shape], 0, 1, 'float32', 5);
    const p1 = current.predict(x) as tf.Tensor, p2 = legacy.predict(x) as tf.Tensor;
    assert.ok(tf.max(tf.abs(tf.sub(p1, p2))).dataSync()[0] < 1e-5);
    assert.deepEqual(Array.from(tf.argMax(p1, -1).dataSync()), Array.from(tf.argMax(p2, -1).dataSync()));
    current.dispose();
    legacy.dispose();
    tf.dispose([x, p1, p2]);
  });

  it('flag KARAT_FUSED_LAYERS switches the fused paths off on cpu; the deprecated KARAT_WEBGPU_FUSED_LAYERS still does, with one note', async () => {
    const m = karat.models.vit({dim: 16, depth: 1, heads: 2, imageSize: 8, patchSize: 4, numClasses: 3});
    const x = tf.randomNormal([1, 8, 8, 3], 0, 1, 'float32', 2);
    const kernels = async () => {
      const info = await tf.profile(() => m.predict(x) as tf.Tensor);
      (info.result as tf.Tensor).dispose();
      return kernelNames(info);
    };
    const warn = console.warn;
    const notes: string[] = [];
    try {
      assert.ok(!(await kernels()).includes('FusedBatchNorm'));
      tf.env().set(KARAT_FUSED_LAYERS_FLAG, false);
      assert.ok((await kernels()).includes('FusedBatchNorm'), 'stock LayerNormalization code with the flag off');
      tf.env().set(KARAT_FUSED_LAYERS_FLAG, true);
      console.warn = (...args: unknown[]) => notes.push(args.join(' '));
      tf.env().set(KARAT_WEBGPU_FUSED_LAYERS_FLAG, false);
      assert.ok((await kernels()).includes('FusedBatchNorm'), 'the deprecated alias');
      await kernels();
    } finally {
      console.warn = warn;
      tf.env().set(KARAT_FUSED_LAYERS_FLAG, true);
      tf.env().set(KARAT_WEBGPU_FUSED_LAYERS_FLAG, true);
    }
    const deprecation = notes.filter((n) => n.includes('KARAT_WEBGPU_FUSED_LAYERS is deprecated'));
    assert.equal(deprecation.length, 1, notes.join('\n'));
    assert.ok(!(await kernels()).includes('FusedBatchNorm'));
    m.dispose();
    x.dispose();
  });
});

describe('swapAttention keeps every weight or says which it cannot', function() {
  let stockViT: tf.io.ModelArtifacts;

  before(async () => {
    await tf.setBackend('cpu');
    const out = JSON.parse(child('stock_mha_vit.ts', []));
    assert.ok(!out.liveWeights.some((n: string) => n.startsWith('mha_0/')), 'tfjs 4.22 tracks no MultiHeadAttention weight');
    const wd = Buffer.from(out.weightData, 'base64');
    stockViT = {modelTopology: out.modelTopology, weightSpecs: out.weightSpecs,
                weightData: wd.buffer.slice(wd.byteOffset, wd.byteOffset + wd.byteLength)};
  });

  it('a ViT built from tfjs-layers\' own MultiHeadAttention: an error naming the layer and its Q/K/V/output weights', async () => {
    const named = (e: Error) => e instanceof karat.KArAtArgumentError &&
        /8 weight\(s\) of the new model have no counterpart in the source model/.test(e.message) &&
        /layer 'mha_0': query\/kernel, query\/bias, key\/kernel, key\/bias, value\/kernel, value\/bias, attentionOutput\/kernel, attentionOutput\/bias/.test(e.message) &&
        /\{allowInitialised: true\}/.test(e.message);
    await assert.rejects(karat.swapAttention(stockViT, 'softmax'), named);
    // KArAt target: the new operator is expected; the lost projections are not.
    await assert.rejects(karat.swapAttention(stockViT, {type: 'fourier', grid: 2, rank: 2}), (e: Error) => named(e) && !/coeffs/.test(e.message));
  });

  it('with {allowInitialised: true} the swap goes through and the report lists what was initialised', async () => {
    const rep = await karat.swapAttentionWithReport(stockViT, {type: 'fourier', grid: 2, rank: 2}, {allowInitialised: true});
    assert.deepEqual(rep.initialised.sort(), [
      'mha_0/attentionOutput/bias', 'mha_0/attentionOutput/kernel', 'mha_0/karat/coeffs', 'mha_0/karat/proj',
      'mha_0/key/bias', 'mha_0/key/kernel', 'mha_0/query/bias', 'mha_0/query/kernel', 'mha_0/value/bias', 'mha_0/value/kernel',
    ]);
    assert.deepEqual(rep.copied.sort(), ['head/bias', 'head/kernel', 'mlp/bias', 'mlp/kernel', 'norm1/beta', 'norm1/gamma']);
    const y = rep.model.predict(tf.randomNormal([2, 5, 8])) as tf.Tensor;
    assert.deepEqual(y.shape, [2, 3]);
    rep.model.dispose();
  });

  it('bad options are named errors', async () => {
    const m = karat.models.vit({dim: 8, depth: 1, heads: 2, imageSize: 8, patchSize: 4, numClasses: 2});
    await assert.rejects(karat.swapAttention(m, 'softmax', {allowInitialized: true} as never), /unknown option 'allowInitialized'/);
    await assert.rejects(karat.swapAttention(m, 'softmax', {allowInitialised: 'yes'} as never), /option 'allowInitialised' must be a boolean/);
    await assert.rejects(karat.swapAttention(m, 'softmax', 3 as never), /argument 'options' must be an object/);
    // a complete source needs no option
    (await karat.swapAttention(m, {type: 'fourier', grid: 2, rank: 2})).dispose();
    m.dispose();
  });
});

describe('no argument is silently ignored: layers, models.vit, analyses', function() {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('unknown arguments of every layer and of models.vit / transformerEncoderBlock are named errors', () => {
    const unknown = (name: string) => new RegExp(`unknown argument '${name}'`);
    assert.throws(() => new karat.PatchEmbedding({patchSize: 4, dim: 8, stride: 2} as never), unknown('stride'));
    assert.throws(() => new karat.ClassToken({init: 'zeros'} as never), unknown('init'));
    assert.throws(() => new karat.LearnedPositionEmbedding({maxLen: 3} as never), unknown('maxLen'));
    assert.throws(() => new karat.StochasticDepth({rate: 0.1, seed: 1} as never), unknown('seed'));
    assert.throws(() => new karat.SelectToken({token: 1} as never), unknown('token'));
    assert.throws(() => new karat.PatchEmbedding({patchSize: 4, dim: 8, activityRegularizer: 'l1l2'}), /argument 'activityRegularizer'/);
    const base = {dim: 8, depth: 1, heads: 2, imageSize: 8, patchSize: 4, numClasses: 2};
    assert.throws(() => karat.models.vit({...base, dropPth: 0.1} as never), /vit: unknown argument 'dropPth'/);
    assert.throws(() => karat.transformerEncoderBlock(tfl.input({shape: [4, 8]}), {dim: 8, heads: 2, attention: 'softmax'} as never),
                  /transformerEncoderBlock: unknown argument 'attention'/);
    // ... while their own configs (with tfjs' base-layer keys) round-trip
    const m = karat.models.vit(base);
    for (const l of m.layers) {
      const cls = tf.serialization.SerializationMap.getMap().classNameMap[l.getClassName()][0];
      assert.doesNotThrow(() => (cls as unknown as {fromConfig: (c: unknown, cfg: unknown) => unknown}).fromConfig(cls, JSON.parse(JSON.stringify(l.getConfig()))), l.name);
    }
    m.dispose();
  });

  it('the attention analyses refuse a masked attention layer instead of showing unmasked maps', () => {
    const image = tfl.input({shape: [8, 8, 3]});
    let x = new karat.PatchEmbedding({patchSize: 4, dim: 8}).apply(image) as tfl.SymbolicTensor;
    x = new karat.ClassToken().apply(x) as tfl.SymbolicTensor;
    x = new karat.KArAtMultiHeadAttention({numHeads: 2, keyDim: 4, name: 'causal_attn'}).apply(x, {useCausalMask: true}) as tfl.SymbolicTensor;
    const model = tfl.model({inputs: image, outputs: new karat.SelectToken().apply(x) as tfl.SymbolicTensor});
    assert.throws(() => karat.analysis.computeAttention(model, tf.zeros([1, 8, 8, 3])),
                  /attention layer 'causal_attn' is masked \(attentionMask \/ useCausalMask\)/);
    model.dispose();
  });
});
