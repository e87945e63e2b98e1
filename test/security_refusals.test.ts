/**
 * Model, checkpoint and safetensors files are untrusted input: declared sizes are checked before
 * anything is allocated (no layer is constructed for a refused file), the CLI refuses bad paths
 * with one line and exit 2, and models are built from stored specifications only through the
 * checking loader. cpu backend, tiny models.
 */
import '@tensorflow/tfjs-backend-cpu';

import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {strict as assert} from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import * as karat from '../src/node';
import {CheckpointError} from '../src/training/checkpoint';
import {resolveConfig} from '../src/training/config';
import {editHeader} from './support/checkpoint_header';
import {runCliInProcess} from './support/cli';
import {rewrite, savedModel, SMALL, tinyCheckpoint} from './support/security_fixtures';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'karat-security-'));
after(() => fs.rmSync(tmp, {recursive: true, force: true}));

/** A safetensors file with exactly this header (JSON text as given) followed by `data`. */
function rawSafetensors(header: string, data: Uint8Array): Uint8Array {
  const hb = Buffer.from(header, 'utf8');
  const out = Buffer.alloc(8 + hb.length + data.length);
  out.writeBigUInt64LE(BigInt(hb.length), 0);
  hb.copy(out, 8);
  Buffer.from(data).copy(out, 8 + hb.length);
  return new Uint8Array(out);
}

/** Splits a safetensors file into its parsed header and its data bytes. */
function splitSafetensors(b: Uint8Array): {header: Record<string, unknown>, data: Uint8Array} {
  const buf = Buffer.from(b);
  const n = Number(buf.readBigUInt64LE(0));
  return {header: JSON.parse(buf.subarray(8, 8 + n).toString('utf8')), data: new Uint8Array(buf.subarray(8 + n))};
}

/** The id the next tfjs-layers Layer gets (every Layer constructor takes the next one). */
function nextLayerId(): number {
  return (tfl.layers.dense({units: 1}) as unknown as {id: number}).id;
}

/**
 * Runs `fn` (which must fail) and returns its error and how many tfjs-layers layers were
 * constructed meanwhile: a refusal before building constructs none.
 */
async function failureAllocation(fn: () => unknown): Promise<{error: Error, layers: number}> {
  let error: Error | null = null;
  const start = nextLayerId();
  try {
    await fn();
  } catch (e) {
    error = e as Error;
  }
  const layers = nextLayerId() - start - 1;
  assert.ok(error != null, 'expected a refusal');
  return {error: error!, layers};
}

describe('security: declared sizes are checked before anything is allocated', function() {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('safetensors: 200 zero-byte qkv entries (depth 201) are refused by the shape check, no model built', async () => {
    const m = karat.models.vit(SMALL);
    const {header, data} = splitSafetensors(karat.io.vitToSafetensors(m));
    m.dispose();
    delete header.__metadata__;
    const end = data.length;
    for (let i = 1; i <= 200; i++) header[`blocks.${i}.attn.qkv.weight`] = {dtype: 'F32', shape: [0, 8], data_offsets: [end, end]};
    const bytes = rawSafetensors(JSON.stringify(header), data);
    const {error, layers: allocated} = await failureAllocation(() => karat.io.vitFromSafetensors(bytes, {heads: 2}));
    assert.match(error.message, /the file has no tensor 'blocks\.1\.norm1\.weight' \(expected \[8\] for dim 8, depth 201/);
    assert.equal(allocated, 0, 'layers were constructed (a model was built) before the refusal');
  });

  it('safetensors metadata attention grid 200000 is refused by the shape check, no model built', async () => {
    const m = karat.models.vit({...SMALL, attention: {type: 'fourier', grid: 2, rank: 3}});
    const {header, data} = splitSafetensors(karat.io.vitToSafetensors(m));
    m.dispose();
    const md = header.__metadata__ as Record<string, string>;
    const cfg = JSON.parse(md.config);
    cfg.attention = {...cfg.attention, grid: 200000};
    md.config = JSON.stringify(cfg);
    const bytes = rawSafetensors(JSON.stringify(header), data);
    const {error, layers: allocated} = await failureAllocation(() => karat.io.vitFromSafetensors(bytes));
    assert.match(error.message, /karat\.coeffs' has shape \[.*\], expected \[.*200000\]/);
    assert.equal(allocated, 0, 'layers were constructed (a model was built) before the refusal');
  });

  it('a forged checkpoint spec (dim 64, depth 2; weights and CRCs intact) is refused by export and finetune, no model built', async () => {
    const file = path.join(tmp, 'forged', 'good.ckpt');
    await tinyCheckpoint(file);
    const forged = path.join(tmp, 'forged', 'forged.ckpt');
    editHeader(file, forged, (h) => Object.assign(h.modelSpec as Record<string, unknown>, {dim: 64, depth: 2}));
    const {loadFinetuneSource} = await import('../src/cli/finetune');
    const ft = await failureAllocation(() => loadFinetuneSource(forged));
    assert.ok(ft.error instanceof CheckpointError);
    assert.match(ft.error.message, /the model specification does not match the stored weights/);
    assert.equal(ft.layers, 0);
    const out = path.join(tmp, 'forged', 'x.safetensors');
    let r: {code: number, err: string} | null = null;
    const ex = await failureAllocation(async () => {
      r = await runCliInProcess(['export', '--model', forged, '--to', out]);
      throw new Error('ran');
    });
    assert.equal(ex.layers, 0);
    assert.equal(r!.code, 2);
    assert.match(r!.err, /^karat: error: checkpoint '.*forged\.ckpt': the model specification does not match the stored weights: [^\n]*\n$/);
    assert.ok(!fs.existsSync(out));
  });

  it('config sizes are bounded whatever the source: {"depth": 1e9} in a config file, --dim 100000 as a flag', async () => {
    const f = path.join(tmp, 'huge-depth.json');
    fs.writeFileSync(f, '{"depth": 1e9, "dim": 16}');
    const r = await runCliInProcess(['train', '--config', f]);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /^karat: error: 'depth' must be <= 128, got 1000000000\n$/);
    for (const [values, re] of [
      [{dim: 100000}, /'dim' must be <= 4096/], [{grid: 200000}, /'grid' must be <= 64/], [{heads: 1000, dim: 1000}, /'heads' must be <= 256/],
      [{rank: 1e6}, /'rank' must be <= 4096/], [{imageSize: 1e5}, /'image-size' must be <= 4096/], [{mlpRatio: 1e6}, /'mlp-ratio' must be <= 16/],
      [{dim: 4096, depth: 128, mlpRatio: 16}, /makes about .* parameters, more than/], [{heads: 16, dim: 8}, /'heads' \(16\) must not exceed 'dim'/],
    ] as const) {
      assert.throws(() => resolveConfig([{from: 'flags', values}]), (e: Error) => e.name === 'ConfigError' && re.test(e.message), String(re));
    }
  });

  it('a config file with a duplicate key (or one key in two spellings) is refused', async () => {
    for (const [text, re] of [['{"epochs": 2, "epochs": 3}', /has the key "epochs" more than once/],
      ['{"batch-size": 2, "batchSize": 3}', /sets 'batchSize' more than once/]] as const) {
      const f = path.join(tmp, 'dup.json');
      fs.writeFileSync(f, text);
      const r = await runCliInProcess(['train', '--config', f]);
      assert.equal(r.code, 2, r.err);
      assert.match(r.err, re);
      assert.equal(r.err.split('\n').length, 2, r.err);
    }
  });
});

describe('security: CLI refusals of bad paths are one line and exit 2', function() {
  before(async () => {
    await tf.setBackend('cpu');
  });
  const oneLine = (r: {code: number, err: string}, re: RegExp, what: string) => {
    assert.equal(r.code, 2, `${what}: ${r.err}`);
    assert.match(r.err, re, what);
    assert.equal(r.err.split('\n').length, 2, `${what}: more than one line: ${r.err}`);
  };

  it('finetune --model m/model.json: weights outside the folder, truncated weights, model.json not JSON', async () => {
    for (const [name, edit, re] of [
      ['escape', (dir: string, j: tf.io.ModelJSON) => {
        fs.copyFileSync(path.join(dir, 'weights.bin'), path.join(dir, '..', 'outside.bin'));
        rewrite(dir, j, (x) => x.weightsManifest[0].paths = ['../outside.bin']);
      }, /^karat: error: --model: .*outside\.bin/],
      ['truncated', (dir: string) => fs.truncateSync(path.join(dir, 'weights.bin'), 10), /^karat: error: --model: .*weights\.bin/],
      ['notjson', (dir: string) => fs.writeFileSync(path.join(dir, 'model.json'), '{"modelTopology": '), /^karat: error: --model: .*not valid JSON/],
    ] as const) {
      const {dir, json} = await savedModel(tmp, `ft-${name}/m`);
      edit(dir, json);
      // --backend cpu: 'auto' would load tfjs-node into this process where it is installed, and its
      // file:// handler would then stand in for ours in the suites that follow
      oneLine(await runCliInProcess(['finetune', '--model', path.join(dir, 'model.json'), '--dataset', 'cifar10-subset', '--backend', 'cpu']), re, name);
    }
  });

  it('convert --out: a file (EEXIST), a path under a file (ENOTDIR), a folder holding a model without --overwrite', async () => {
    const m = karat.models.vit(SMALL);
    const st = path.join(tmp, 'conv', 'm.safetensors');
    fs.mkdirSync(path.dirname(st), {recursive: true});
    fs.writeFileSync(st, karat.io.vitToSafetensors(m));
    m.dispose();
    const file = path.join(tmp, 'conv', 'a-file');
    fs.writeFileSync(file, 'x');
    oneLine(await runCliInProcess(['convert', '--from', st, '--out', file]), /exists and is not a folder/, 'EEXIST');
    oneLine(await runCliInProcess(['convert', '--from', st, '--out', path.join(file, 'sub')]), /a part of the path is a file/, 'ENOTDIR');
    const out = path.join(tmp, 'conv', 'out');
    assert.equal((await runCliInProcess(['convert', '--from', st, '--out', out])).code, 0);
    const before = fs.readFileSync(path.join(out, 'weights.bin'));
    oneLine(await runCliInProcess(['convert', '--from', st, '--out', out]), /already holds a model .*--overwrite/, 'existing model');
    assert.deepEqual(fs.readFileSync(path.join(out, 'weights.bin')), before);
    assert.equal((await runCliInProcess(['convert', '--from', st, '--out', out, '--overwrite'])).code, 0);
  });

  it('export --to a folder (EISDIR) is refused and leaves no temporary file', async () => {
    const {dir} = await savedModel(tmp, 'exp/m');
    const to = path.join(tmp, 'exp', 'target');
    fs.mkdirSync(to);
    oneLine(await runCliInProcess(['export', '--model', dir, '--to', to]), /--to '.*target' is a folder/, 'EISDIR');
    assert.deepEqual(fs.readdirSync(path.join(tmp, 'exp')).sort(), ['m', 'target']);
    assert.deepEqual(fs.readdirSync(to), []);
  });

  it('writeFileAtomic onto a folder removes its temporary file', async () => {
    const {writeFileAtomic} = await import('../src/training/checkpoint');
    const d = path.join(tmp, 'atomic-dir');
    fs.mkdirSync(path.join(d, 'target'), {recursive: true});
    assert.throws(() => writeFileAtomic(path.join(d, 'target'), [new Uint8Array(4)]), /EISDIR|EPERM|ENOTEMPTY|EEXIST/);
    assert.deepEqual(fs.readdirSync(d), ['target']);
  });
});

describe('security: models are built from checkpoints only through the checking loader', function() {
  it('every source file that builds a model from a stored specification checks it against the weights', () => {
    const files: string[] = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, {withFileTypes: true})) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (p.endsWith('.ts')) files.push(p);
      }
    };
    walk(path.join(__dirname, '..', 'src'));
    const offenders = files.filter((f) => {
      const text = fs.readFileSync(f, 'utf8');
      const buildsFromStoredSpec = /header\.modelSpec/.test(text) && /\b(modelFromSpec|buildModel)\(/.test(text);
      return buildsFromStoredSpec && !/checkSpecFitsWeights\(|modelFromCheckpoint\(/.test(text) && !f.endsWith(path.join('training', 'model.ts'));
    });
    assert.deepEqual(offenders, []);
    // the CLI commands that read checkpoints use the loader rather than building themselves
    for (const f of ['cli/convert.ts', 'cli/finetune.ts']) {
      const text = fs.readFileSync(path.join(__dirname, '..', 'src', f), 'utf8');
      assert.ok(/loadCheckpointModel\(/.test(text) && !/modelFromSpec\(/.test(text), f);
    }
  });
});
