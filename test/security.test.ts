/**
 * Model and checkpoint files are untrusted input: weight paths stay inside the model folder,
 * reads are bounded by what the manifest declares, absurd model specs are refused before
 * anything is built, and the CLI rejects prototype-member flags and config keys (allocation
 * checks, CLI path refusals and the checking loader: security_refusals.test.ts).
 * cpu backend, tiny models.
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
import {CheckpointError, modelFromCheckpoint, readCheckpoint} from '../src/training/checkpoint';
import {resolveConfig} from '../src/training/config';
import {train} from '../src/training/trainer';
import {crc32, crc32Portable} from '../src/training/crc32';
import {editHeader} from './support/checkpoint_header';
import {runCliInProcess} from './support/cli';
import {rewrite, savedModel, tinyCheckpoint} from './support/security_fixtures';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'karat-security-'));
after(() => fs.rmSync(tmp, {recursive: true, force: true}));

describe('security: the file:// handler reads only what the model folder declares', function() {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('a manifest path leaving the model folder (../, absolute-looking, symlink) is refused with the path named', async () => {
    const {dir, json} = await savedModel(tmp, 'traversal/models/m');
    // file:// is ours here: no suite before this one loaded tfjs-node (whose handler ours stands aside for)
    const handlers = tf.io.getLoadHandlers(`file://${path.join(dir, 'model.json')}`);
    assert.ok(handlers.length === 1 && handlers[0] instanceof karat.io.NodeFileSystem, 'the file:// handler is karat.io.fileSystem');
    const secretDir = path.join(tmp, 'traversal', 'secret');
    fs.mkdirSync(secretDir, {recursive: true});
    // a file of exactly the declared size, so only the confinement can refuse it
    fs.copyFileSync(path.join(dir, 'weights.bin'), path.join(secretDir, 'secret.bin'));
    rewrite(dir, json, (j) => j.weightsManifest[0].paths = ['../../secret/secret.bin']);
    for (const load of [
      () => tfl.loadLayersModel(`file://${path.join(dir, 'model.json')}`),
      () => karat.io.fileSystem(dir).load(),
      () => karat.swapAttention(`file://${path.join(dir, 'model.json')}`, 'softmax'),
    ]) {
      await assert.rejects(load(), /weight file '\.\.\/\.\.\/secret\/secret\.bin' resolves to .*secret\.bin', outside the model folder/);
    }
    rewrite(dir, json, (j) => j.weightsManifest[0].paths = ['../../../../../../../../etc/passwd']);
    await assert.rejects(karat.io.fileSystem(dir).load(), /outside the model folder/);
    fs.symlinkSync(path.join(secretDir, 'secret.bin'), path.join(dir, 'link.bin'));
    rewrite(dir, json, (j) => j.weightsManifest[0].paths = ['link.bin']);
    await assert.rejects(karat.io.fileSystem(dir).load(), /weight file 'link\.bin' resolves to .*outside the model folder/);
    // a symbolic link that stays inside the folder is fine
    fs.symlinkSync(path.join(dir, 'weights.bin'), path.join(dir, 'inside.bin'));
    rewrite(dir, json, (j) => j.weightsManifest[0].paths = ['inside.bin']);
    const m = await tfl.loadLayersModel(karat.io.fileSystem(dir));
    assert.equal(m.layers.length > 0, true);
    m.dispose();
  });

  it('a device, a file of another size and an oversized declaration are refused before reading', async () => {
    const {dir, json} = await savedModel(tmp, 'sizes');
    if (fs.existsSync('/dev/zero')) {
      // an endless device behind a link in the folder: refused before any read
      fs.symlinkSync('/dev/zero', path.join(dir, 'zero.bin'));
      rewrite(dir, json, (j) => j.weightsManifest[0].paths = ['zero.bin']);
      await assert.rejects(karat.io.fileSystem(dir).load(), /outside the model folder/);
    }
    const declared = fs.statSync(path.join(dir, 'weights.bin')).size;
    const big = path.join(dir, 'big.bin');
    fs.writeFileSync(big, Buffer.alloc(declared + 4));
    rewrite(dir, json, (j) => j.weightsManifest[0].paths = ['big.bin']);
    await assert.rejects(karat.io.fileSystem(dir).load(),
        new RegExp(`weight files 'big\\.bin' hold ${declared + 4} bytes, the manifest declares ${declared} bytes`));
    fs.mkdirSync(path.join(dir, 'sub'));
    rewrite(dir, json, (j) => j.weightsManifest[0].paths = ['sub']);
    await assert.rejects(karat.io.fileSystem(dir).load(), /weight file 'sub' is not a regular file/);
    // a FIFO inside the folder (an endless read with the old handler) is not a regular file either
    if (spawnSync('mkfifo', [path.join(dir, 'pipe.bin')]).status === 0) {
      rewrite(dir, json, (j) => j.weightsManifest[0].paths = ['pipe.bin']);
      await assert.rejects(karat.io.fileSystem(dir).load(), /weight file 'pipe\.bin' is not a regular file/);
    }
    rewrite(dir, json, (j) => j.weightsManifest[0].weights[0].shape = [1e6, 1e6]);
    await assert.rejects(karat.io.fileSystem(dir).load(), /the weights declare more than 2147483648 bytes \(limit\)/);
    rewrite(dir, json, () => undefined);
    await assert.rejects(karat.io.fileSystem(dir, {maxWeightBytes: 100}).load(), /more than 100 bytes \(limit\)/);
    rewrite(dir, json, (j) => (j.weightsManifest[0].weights[0] as {dtype: string}).dtype = 'string');
    await assert.rejects(karat.io.fileSystem(dir).load(), /dtype "string", which this loader does not read/);
    assert.throws(() => karat.io.fileSystem(dir, {maxWeightBytes: -1}), /options\.maxWeightBytes' must be a non-negative integer/);
  });
});

describe('security: absurd layer sizes in a model.json are refused before building', function() {
  it('swapAttention on num_heads 1e6 / key_dim 5e7 fails fast, naming the weight', async () => {
    const {dir, json} = await savedModel(tmp, 'absurd');
    const cases: Array<[string, number, RegExp]> = [
      ['num_heads', 1e6, /stored weight 'block0_attn\/query\/kernel' has shape \[8,2,4\], the layer config needs \[\*,1000000,4\]/],
      ['key_dim', 5e7, /stored weight 'block0_attn\/query\/kernel' has shape \[8,2,4\], the layer config needs \[\*,2,50000000\]/],
    ];
    for (const [key, value, re] of cases) {
      rewrite(dir, json, (j) => {
        const layers = (j.modelTopology as {config: {layers: Array<{class_name: string, config: Record<string, unknown>}>}}).config.layers;
        const att = layers.find((l) => l.class_name === 'KArAtMultiHeadAttention')!;
        att.config[key] = value;
      });
      await assert.rejects(karat.swapAttention(`file://${path.join(dir, 'model.json')}`, {type: 'fourier', grid: 2, rank: 2}), re);
    }
  });
});


describe('security: checkpoints are verified before use', function() {
  const file = path.join(tmp, 'ck', 'good.ckpt');
  before(async () => {
    await tf.setBackend('cpu');
    await tinyCheckpoint(file);
  });

  it('CRC-32 of the payload: a flipped exponent bit names the tensor and its byte range', () => {
    assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
    assert.equal(crc32Portable(Buffer.from('123456789')), 0xcbf43926);
    const ck = readCheckpoint(file);
    assert.equal(ck.header.format, 2);
    assert.equal(ck.header.checksums!.weights.length, ck.header.weights.length);
    const b = fs.readFileSync(file);
    const bad = path.join(tmp, 'ck', 'flipped.ckpt');
    // the 2nd weight (patch_embed/bias) starts right after the first one's floats
    const hl = b.readUInt32LE(8);
    const start = 12 + hl + ((4 - ((12 + hl) % 4)) % 4);
    const first = ck.weights[0].length * 4;
    const c = Buffer.from(b);
    c[start + first + 3] ^= 0x40;  // an exponent bit of patch_embed/bias[0]
    fs.writeFileSync(bad, c);
    assert.throws(() => readCheckpoint(bad), (e: Error) => e instanceof CheckpointError &&
        new RegExp(`weight 'patch_embed/bias' \\[8\\] \\(bytes ${start + first}\\.\\.${start + first + 31} of the file\\) fails its CRC-32 check`).test(e.message));
  });

  it('a format-1 checkpoint (no checksums) still loads, with a one-time note', () => {
    const old = path.join(tmp, 'ck', 'format1.ckpt');
    editHeader(file, old, (h) => {
      h.format = 1;
      delete h.checksums;
    });
    const warn = console.warn;
    const notes: string[] = [];
    console.warn = (m: string) => notes.push(m);
    try {
      const a = readCheckpoint(old), b2 = readCheckpoint(old);
      assert.equal(a.header.format, 1);
      assert.deepEqual(a.weights[0], b2.weights[0]);
    } finally {
      console.warn = warn;
    }
    assert.equal(notes.length, 1, notes.join('\n'));
    assert.match(notes[0], /format-1 checkpoint without checksums/);
  });

  it('header values of the wrong type or range are refused with the field named', () => {
    const cases: Array<[(h: Record<string, any>) => void, RegExp]> = [
      [(h) => h.trainer.epoch = -3, /'trainer\.epoch' must be an integer in \[0, 5\] \(the run's epochs\), got -3/],
      [(h) => h.trainer.epoch = 1e9, /'trainer\.epoch' must be an integer in \[0, 5\].*got 1000000000/],
      [(h) => h.trainer.step = 'abc', /'trainer\.step' must be a non-negative integer, got "abc"/],
      [(h) => h.trainer.seed = 'zzz', /'trainer\.seed' must be an integer in \[0, 2\^32\), got "zzz"/],
      [(h) => h.optimizer = {step: -1, config: {}, params: []}, /'optimizer\.step' must be a non-negative integer, got -1/],
      [(h) => h.trainer = null, /'trainer' must be an object, got null/],
      [(h) => h.weights = null, /'weights' must be an array of \{name, shape\}, got null/],
      [(h) => h.weights = 'x', /'weights' must be an array of \{name, shape\}, got "x"/],
      [(h) => h.modelSpec = null, /'modelSpec' must be an object, got null/],
      [(h) => h.weights[0].shape = [4, 4, 3, -8], /'weights\[0\]' must be \{name: string, shape: non-negative integers\}/],
    ];
    for (const [edit, re] of cases) {
      const f = path.join(tmp, 'ck', 'edited.ckpt');
      editHeader(file, f, edit);
      assert.throws(() => readCheckpoint(f), (e: Error) => e instanceof CheckpointError && /invalid checkpoint header/.test(e.message) && re.test(e.message),
          `expected ${re}`);
    }
  });

  it('a truncated file says it is truncated (11 bytes: the magic number is intact)', () => {
    const b = fs.readFileSync(file);
    const f = path.join(tmp, 'ck', 'cut.ckpt');
    fs.writeFileSync(f, b.subarray(0, 11));
    assert.throws(() => readCheckpoint(f), /is truncated: 11 bytes, less than the 12-byte start of a checkpoint/);
    fs.writeFileSync(f, b.subarray(0, 40));
    assert.throws(() => readCheckpoint(f), /is truncated: 40 bytes, its header alone declares/);
    fs.writeFileSync(f, b.subarray(0, b.length - 8));
    assert.throws(() => readCheckpoint(f), /is truncated: \d+ bytes, its header declares \d+ \(8 bytes of tensor data missing\)/);
    fs.writeFileSync(f, 'PK\x03\x04 not a checkpoint');
    assert.throws(() => readCheckpoint(f), /is not a tfjs-karat checkpoint \(wrong magic number/);
  });

  it('a model specification that disagrees with the stored weights (depth 1e5, dim 8192) is refused before building', async () => {
    const cases: Array<[(s: Record<string, unknown>) => void, RegExp]> = [
      [(s) => s.depth = 1e5, /the specification says depth 100000, the stored weights hold 1 encoder blocks/],
      [(s) => s.dim = 8192, /'patch_embed\/kernel' is stored as \[4,4,3,8\], the specification needs \[4,4,3,8192\]/],
      [(s) => s.mlpRatio = 1e6, /'block0_mlp_fc1\/kernel' is stored as \[8,8\], the specification needs \[8,8000000\]/],
      [(s) => s.attention = {type: 'fourier', grid: 100000, rank: 3}, /karat\/coeffs' is stored as \[2,2,3,5,2\], the specification needs \[2,2,3,5,100000\]/],
    ];
    for (const [edit, re] of cases) {
      const f = path.join(tmp, 'ck', 'spec.ckpt');
      editHeader(file, f, (h) => edit(h.modelSpec as Record<string, unknown>));
      const ck = readCheckpoint(f);
      await assert.rejects(modelFromCheckpoint(ck, 'checkpoint'), (e: Error) => e instanceof CheckpointError && re.test(e.message), `expected ${re}`);
    }
    const m = await modelFromCheckpoint(readCheckpoint(file), 'checkpoint');
    assert.equal(m.layers.length > 0, true);
    m.dispose();
  });
});

describe('security: --resume with a forged configuration', function() {
  it('a checkpoint whose saved config says depth 100 is refused before the model is built', async () => {
    await tf.setBackend('cpu');
    const out = path.join(tmp, 'resume');
    const cfg = (v: Record<string, unknown>) => resolveConfig([{from: 'test', values: {
      dataset: 'cifar10-subset', trainLimit: 16, testLimit: 16, dim: 8, depth: 1, heads: 2, mlpRatio: 1, patchSize: 8,
      attention: 'fourier', grid: 1, rank: 2, batchSize: 16, evalBatchSize: 16, mixup: 0, cutmix: 0, backend: 'cpu',
      progress: 'none', stepsPerEpoch: 1, epochs: 1, outDir: out, ...v}}]);
    const r = await train(cfg({runName: 'r'}));
    r.model.dispose();
    const forged = path.join(out, 'forged.ckpt');
    editHeader(path.join(out, 'r', 'last.ckpt'), forged, (h) => {
      (h.trainer as {config: Record<string, unknown>}).config.depth = 100;
    });
    // as `karat train --resume forged.ckpt` does: the checkpoint's config is the base
    const saved = {...readCheckpoint(forged).header.trainer.config as Record<string, unknown>, resume: forged, epochs: 2, runName: 'r2'};
    await assert.rejects(train(resolveConfig([{from: 'checkpoint', values: saved}])),
        (e: Error) => e instanceof CheckpointError && /does not fit this run's model: the specification says depth 100, the stored weights hold 1 encoder blocks/.test(e.message));
  });
});

describe('security: prototype members are not flags or config keys', function() {
  /** Runs the CLI in-process; returns the exit code and stderr. */
  const cli = runCliInProcess;

  it('--constructor, --__proto__, --to-string and other inherited names are unknown flags (exit 2, one line)', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['train', '--constructor', '5'], /^karat: error: command line: unknown option 'constructor'\n$/],
      [['train', '--__proto__', '5'], /^karat: error: command line: unknown option '__proto__'\n$/],
      [['train', '--to-string', '5'], /^karat: error: command line: unknown option 'toString'\n$/],
      [['train', '--has-own-property', '5'], /^karat: error: command line: unknown option 'hasOwnProperty'\n$/],
      [['train', '--preset', 'constructor'], /^karat: error: unknown preset 'constructor'/],
      [['train', '--model', 'toString'], /^karat: error: unknown model 'toString'/],
      [['eval', '--constructor', '5'], /^karat: error: karat eval: unknown flag --constructor \(see karat eval --help\)\n$/],
      [['info', '--__proto__', '5'], /^karat: error: karat info: unknown flag --__proto__ \(see karat info --help\)\n$/],
      [['analyze', '--to-string', '5'], /^karat: error: karat analyze: unknown flag --to-string \(see karat analyze --help\)\n$/],
    ];
    for (const [args, re] of cases) {
      const r = await cli(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
      assert.match(r.err, re, args.join(' '));
    }
  });

  it('every command takes flags only: a stray argument is refused by name (exit 2, one line), never ignored', async () => {
    for (const command of ['train', 'finetune', 'convert', 'export', 'eval', 'info', 'analyze']) {
      const r = await cli([command, 'stray', '--epochs', '1']);
      assert.equal(r.code, 2, `${command}: ${r.err}`);
      assert.match(r.err, new RegExp(`^karat: error: karat ${command}: unexpected argument 'stray' \\(flags start with --\\)\n$`));
      assert.equal((await cli([command, 'stray', '--help'])).code, 0, `${command} --help prints the help`);
    }
  });

  it('a config file with __proto__ or constructor keys is refused, not silently ignored', async () => {
    for (const key of ['__proto__', 'constructor', 'valueOf']) {
      const f = path.join(tmp, `config-${key}.json`);
      fs.writeFileSync(f, `{"epochs": 1, "${key}": {"lr": 5}}`);
      const r = await cli(['train', '--config', f]);
      assert.equal(r.code, 2, `${key}: ${r.err}`);
      assert.match(r.err, new RegExp(`^karat: error: --config ${f.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: unknown option '${key}'\\n$`));
    }
  });
});
