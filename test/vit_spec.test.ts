/**
 * The one description of a ViT (vitSpecOf: a built model, its topology, a whole model.json)
 * and adaptForFinetune's seeded new weights. cpu backend, tiny models.
 */
import '@tensorflow/tfjs-backend-cpu';

import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {strict as assert} from 'assert';

import * as karat from '../src/index';

const weightOf = (m: tfl.LayersModel, name: string) => m.weights.find((w) => w.originalName === name)!.read().dataSync() as Float32Array;

describe('finetune: vitSpecOf and seeded new weights', function() {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('vitSpecOf reads the same description from a built model, its topology and a whole model.json', async () => {
    const m = karat.models.vit({dim: 12, depth: 2, heads: 3, mlpRatio: 2, imageSize: [12, 20], patchSize: 4, numClasses: 5,
                                attention: {type: 'fourier', grid: 3, rank: 4, mode: 'blockwise'}});
    const spec = karat.vitSpecOf(m);
    assert.deepEqual([spec.imageSize, spec.channels, spec.patchSize, spec.grid, spec.classTokens, spec.tokens, spec.pool],
                     [[12, 20], 3, 4, [3, 5], 1, 16, 'token']);
    assert.deepEqual([spec.dim, spec.depth, spec.heads, spec.keyDim, spec.mlpHidden, spec.mlpRatio, spec.fcNorm, spec.numClasses],
                     [12, 2, 3, 4, 24, 2, false, 5]);
    assert.deepEqual([spec.attentionKind, spec.attentionClass, spec.layers.attention], ['karat', 'KArAtMultiHeadAttention', ['block0_attn', 'block1_attn']]);
    assert.deepEqual([spec.layers.patchEmbed, spec.layers.classToken, spec.layers.posEmbed, spec.layers.output], ['patch_embed', 'cls_token', 'pos_embed', 'head']);
    const topology = m.toJSON(null, false) as object;
    assert.deepEqual(karat.vitSpecOf(topology), spec);
    assert.deepEqual(karat.vitSpecOf({modelTopology: topology}), spec);
    const described = await karat.describeViT(m);
    assert.deepEqual([described.imageSize, described.patchSize, described.dim, described.depth, described.heads, described.mlpRatio], [spec.imageSize, spec.patchSize, spec.dim, spec.depth, spec.heads, spec.mlpRatio]);
    const gap = karat.models.vit({dim: 8, depth: 1, heads: 2, mlpRatio: 1, imageSize: 8, patchSize: 4, numClasses: 2, pool: 'gap', fcNorm: true});
    const g = karat.vitSpecOf(gap);
    assert.deepEqual([g.pool, g.classTokens, g.tokens, g.fcNorm, g.attentionKind], ['gap', 0, 4, true, 'softmax']);
    const x = tfl.input({shape: [8, 8, 3]});
    const dense = tfl.model({inputs: x, outputs: tfl.layers.dense({units: 2}).apply(tfl.layers.flatten().apply(x)) as tfl.SymbolicTensor});
    assert.throws(() => karat.vitSpecOf(dense), (e: Error) => e instanceof karat.KArAtArgumentError && /has no attention layer/.test(e.message));
    assert.throws(() => karat.vitSpecOf(null as never), (e: Error) => e instanceof karat.KArAtArgumentError && /expected a tf.LayersModel or a model topology, got null/.test(e.message));
    for (const model of [m, gap, dense]) model.dispose();
  });

  it('adaptForFinetune {seed}: the same seed gives the same new weights, another seed others; seed with random, or a non-integer, is refused', async () => {
    const src = karat.models.vit({dim: 8, depth: 1, heads: 2, mlpRatio: 1, imageSize: 8, patchSize: 4, numClasses: 3});
    const opts = {attention: {type: 'fourier', grid: 2, rank: 3} as const, numClasses: 4};
    const newWeights = async (seed: number) => {
      const a = await karat.adaptForFinetune(src, {...opts, seed});
      const out = a.newParams.map((n) => Array.from(weightOf(a.model, n)));
      a.model.dispose();
      return out;
    };
    const [a, b, c] = [await newWeights(3), await newWeights(3), await newWeights(4)];
    assert.equal(a.length, 4);  // the head's kernel and bias, the KArAt coeffs and proj
    assert.deepEqual(a, b);
    assert.notDeepEqual(a[0], c[0]);
    await assert.rejects(karat.adaptForFinetune(src, {...opts, seed: 3, random: Math.random}), /give 'seed' or 'random', not both/);
    await assert.rejects(karat.adaptForFinetune(src, {...opts, seed: 1.5}), /argument 'seed' must be an integer, got 1.5/);
    src.dispose();
  });
});
