/**
 * A sweep of hostile inputs over the CLI: every command that reads a file, each kind of file it
 * reads (model folder / model.json, weights, checkpoint, safetensors, config file), and the
 * hostile variants (not JSON, truncated, a path leaving its folder, a forged size, a duplicate
 * key, a folder where a file belongs). Every one must end in one line on stderr ("karat: error:
 * ...") and exit status 2, never a stack trace, and construct no model from an unchecked size.
 * cpu backend, tiny models.
 */
import '@tensorflow/tfjs-backend-cpu';

import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {strict as assert} from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import * as karat from '../src/node';
import {readWeights, writeCheckpoint} from '../src/training/checkpoint';
import {buildModel} from '../src/training/model';
import {editHeader} from './support/checkpoint_header';
import {runCliInProcess} from './support/cli';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'karat-sweep-'));
after(() => fs.rmSync(tmp, {recursive: true, force: true}));

const SPEC = {dim: 8, depth: 1, heads: 2, imageSize: 8, patchSize: 4, numClasses: 3, mlpRatio: 1,
  attention: {type: 'fourier', grid: 1, rank: 2, mode: 'blockwise'}, classifierActivation: 'linear'} as const;

function nextLayerId(): number {
  return (tfl.layers.dense({units: 1}) as unknown as {id: number}).id;
}

/** Variants of one file kind: name -> a function making the hostile file and returning its path. */
type Variants = Record<string, () => string>;

describe('hostile sweep: every CLI command x every file kind it reads x hostile variants', function() {
  this.timeout(300000);
  let modelDir = '', ckpt = '', st = '';

  before(async () => {
    await tf.setBackend('cpu');
    const m = buildModel(SPEC as never, 1);
    modelDir = path.join(tmp, 'good-model');
    await m.save(karat.io.fileSystem(modelDir));
    const w = await readWeights(m);
    ckpt = path.join(tmp, 'good.ckpt');
    writeCheckpoint(ckpt, {
      header: {format: 2, createdAt: new Date().toISOString(), modelSpec: SPEC, weights: w.entries, optimizer: null,
        trainer: {epoch: 1, step: 1, seed: 1, config: {}}, weightFloats: 0, optimizerFloats: 0},
      weights: w.data, optimizer: null,
    });
    st = path.join(tmp, 'good.safetensors');
    fs.writeFileSync(st, karat.io.vitToSafetensors(m));
    m.dispose();
  });

  let n = 0;
  const fresh = (name: string) => path.join(tmp, `v${n++}-${name}`);
  const copyModel = (edit: (dir: string) => void) => {
    const d = fresh('model');
    fs.cpSync(modelDir, d, {recursive: true});
    edit(d);
    return d;
  };
  const editJson = (d: string, f: (j: Record<string, unknown>) => void) => {
    const p = path.join(d, 'model.json');
    const j = JSON.parse(fs.readFileSync(p, 'utf8'));
    f(j);
    fs.writeFileSync(p, JSON.stringify(j));
  };
  const ckHeader = (edit: (h: Record<string, unknown>) => void) => {
    const p = fresh('x.ckpt');
    editHeader(ckpt, p, edit);
    return p;
  };
  const stHeader = (edit: (h: Record<string, unknown>) => void, text?: (s: string) => string) => {
    const b = fs.readFileSync(st);
    const hn = Number(b.readBigUInt64LE(0));
    const h = JSON.parse(b.subarray(8, 8 + hn).toString('utf8'));
    edit(h);
    const hs = Buffer.from(text ? text(JSON.stringify(h)) : JSON.stringify(h));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(hs.length));
    const p = fresh('x.safetensors');
    fs.writeFileSync(p, Buffer.concat([len, hs, b.subarray(8 + hn)]));
    return p;
  };

  const modelFolders: Variants = {
    'model.json not JSON': () => copyModel((d) => fs.writeFileSync(path.join(d, 'model.json'), '{"modelTopology": ')),
    'weights path leaving the folder': () => copyModel((d) => {
      fs.copyFileSync(path.join(d, 'weights.bin'), path.join(tmp, `outside-${n}.bin`));
      editJson(d, (j) => (j.weightsManifest as Array<{paths: string[]}>)[0].paths = [`../outside-${n}.bin`]);
    }),
    'truncated weights': () => copyModel((d) => fs.truncateSync(path.join(d, 'weights.bin'), 12)),
    'weights file is a folder': () => copyModel((d) => {
      fs.rmSync(path.join(d, 'weights.bin'));
      fs.mkdirSync(path.join(d, 'weights.bin'));
    }),
    'missing model.json': () => copyModel((d) => fs.rmSync(path.join(d, 'model.json'))),
  };
  const checkpoints: Variants = {
    'forged spec (dim 64, depth 2)': () => ckHeader((h) => Object.assign(h.modelSpec as object, {dim: 64, depth: 2})),
    'forged spec (grid 100000)': () => ckHeader((h) => Object.assign(h.modelSpec as object, {attention: {...SPEC.attention, grid: 100000}})),
    'truncated': () => {
      const p = fresh('t.ckpt');
      fs.writeFileSync(p, fs.readFileSync(ckpt).subarray(0, 100));
      return p;
    },
    'not a checkpoint': () => {
      const p = fresh('n.ckpt');
      fs.writeFileSync(p, 'hello world, not a checkpoint at all');
      return p;
    },
    'a folder': () => {
      const p = fresh('d.ckpt');
      fs.mkdirSync(p);
      return p;
    },
  };
  const safetensors: Variants = {
    'metadata grid 200000': () => stHeader((h) => {
      const md = h.__metadata__ as Record<string, string>;
      const c = JSON.parse(md.config);
      c.attention = {...c.attention, grid: 200000};
      md.config = JSON.stringify(c);
    }),
    '300 zero-byte qkv entries': () => stHeader((h) => {
      delete h.__metadata__;
      const end = Math.max(...Object.values(h).map((e) => (e as {data_offsets: number[]}).data_offsets[1]));
      for (let i = 1; i <= 300; i++) h[`blocks.${i}.attn.qkv.weight`] = {dtype: 'F32', shape: [0, 8], data_offsets: [end, end]};
    }),
    'duplicate header key': () => stHeader(() => undefined, (s) => s.replace('{', '{"pos_embed":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},')),
    'trailing bytes': () => {
      const p = fresh('tr.safetensors');
      fs.writeFileSync(p, Buffer.concat([fs.readFileSync(st), Buffer.alloc(16)]));
      return p;
    },
    'truncated': () => {
      const p = fresh('tt.safetensors');
      fs.writeFileSync(p, fs.readFileSync(st).subarray(0, 200));
      return p;
    },
  };
  const configs: Variants = {
    'depth 1e9': () => {
      const p = fresh('c.json');
      fs.writeFileSync(p, '{"depth": 1e9, "dim": 16}');
      return p;
    },
    'duplicate key': () => {
      const p = fresh('c.json');
      fs.writeFileSync(p, '{"epochs": 2, "epochs": 3}');
      return p;
    },
    'not JSON': () => {
      const p = fresh('c.json');
      fs.writeFileSync(p, '{epochs: 2}');
      return p;
    },
    'grid 200000': () => {
      const p = fresh('c.json');
      fs.writeFileSync(p, '{"grid": 200000}');
      return p;
    },
  };

  const commands: Array<[string, Variants, (p: string) => string[]]> = [
    ['eval --checkpoint', checkpoints, (p) => ['eval', '--checkpoint', p, '--backend', 'cpu']],
    ['info --checkpoint', checkpoints, (p) => ['info', '--checkpoint', p]],
    ['export --model (checkpoint)', checkpoints, (p) => ['export', '--model', p, '--to', fresh('o.safetensors')]],
    ['export --model (folder)', modelFolders, (p) => ['export', '--model', p, '--to', fresh('o.safetensors')]],
    ['finetune --model (checkpoint)', checkpoints, (p) => ['finetune', '--model', p, '--dataset', 'cifar10-subset', '--backend', 'cpu']],
    ['finetune --model (model.json)', modelFolders, (p) => ['finetune', '--model', path.join(p, 'model.json'), '--dataset', 'cifar10-subset', '--backend', 'cpu']],
    ['finetune --model (safetensors)', safetensors, (p) => ['finetune', '--model', p, '--heads', '2', '--dataset', 'cifar10-subset', '--backend', 'cpu']],
    ['convert --from', safetensors, (p) => ['convert', '--from', p, '--heads', '2', '--out', fresh('out')]],
    ['analyze --checkpoint', checkpoints, (p) => ['analyze', '--checkpoint', p, '--backend', 'cpu']],
    ['train --config', configs, (p) => ['train', '--config', p, '--backend', 'cpu']],
    ['finetune --config', configs, (p) => ['finetune', '--model', ckpt, '--config', p, '--backend', 'cpu']],
  ];

  for (const [what, variants, args] of commands) {
    it(`${what}: every hostile variant is one line, exit 2, no model built from an unchecked size`, async () => {
      const failures: string[] = [];
      for (const [name, make] of Object.entries(variants)) {
        const a = args(make());
        const start = nextLayerId();
        const r = await runCliInProcess(a);
        const layers = nextLayerId() - start - 1;
        const lines = r.err.trimEnd().split('\n').filter((l) => !/^note: /.test(l));
        if (r.code !== 2 || lines.length !== 1 || !/^karat: error: /.test(lines[0])) {
          failures.push(`${name}: exit ${r.code}, stderr ${JSON.stringify(r.err.slice(0, 300))}`);
        }
        // a forged size must be refused before any layer is constructed
        if (/forged|grid|zero-byte|depth 1e9/.test(name) && layers > 0) failures.push(`${name}: ${layers} layers constructed before the refusal`);
      }
      assert.deepEqual(failures, []);
    });
  }
});
