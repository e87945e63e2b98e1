/**
 * The PyTorch twin (python/tfjs_karat) against the tfjs models, through the shared safetensors
 * layout: same logits, loss and gradients on random weights (two sizes, softmax and KArAt);
 * DDP over gloo (2 processes on 127.0.0.1) equals one process on the whole batch; resume
 * continues identically; a round trip tfjs train -> PyTorch DDP fine-tune -> tfjs evaluate
 * with agreeing metrics; bad input (checkpoint of another configuration, a world size that does
 * not divide the batch, a rank that dies mid-run). Skipped when /usr/bin/python3 has no torch
 * with gloo.
 */
import '@tensorflow/tfjs-backend-cpu';

import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {strict as assert} from 'assert';
import {spawn, spawnSync, SpawnSyncReturns} from 'node:child_process';
import {existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {createServer} from 'node:net';
import {tmpdir} from 'node:os';
import {join, resolve} from 'node:path';

import '../src/index';
import {loadSubset} from '../src/data/subset';
import {fileSystem, readSafetensors, vitFromSafetensors, vitToSafetensors, vitToTorchTensors, writeSafetensors} from '../src/io/node';
import {AttentionActivation} from '../src/layers/attention_config';
import {vit} from '../src/models/vit';
import {resolveConfig} from '../src/training/config';
import {softCrossEntropy} from '../src/training/metrics';
import {train} from '../src/training/trainer';

const PYTHON = '/usr/bin/python3';
const ROOT = resolve(__dirname, '..');
const PY = join(ROOT, 'python');
const TESTS = join(PY, 'tests');
const tmp = mkdtempSync(join(tmpdir(), 'karat-torch-test-'));
after(() => rmSync(tmp, {recursive: true, force: true}));

const ENV = {...process.env, OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1', PYTHONDONTWRITEBYTECODE: '1'};

function torchAvailable(): string | null {
  const r = spawnSync(PYTHON, ['-c', 'import torch, torch.distributed as d; assert d.is_available() and d.is_gloo_available()'],
                      {encoding: 'utf8', env: ENV, timeout: 120000});
  if (r.error) return `${PYTHON}: ${r.error.message}`;
  return r.status === 0 ? null : `torch with gloo is not importable by ${PYTHON}: ${r.stderr.trim().split('\n').pop()}`;
}

function py(args: string[], timeoutMs = 240000): SpawnSyncReturns<string> {
  const r = spawnSync(PYTHON, args, {encoding: 'utf8', env: ENV, cwd: ROOT, timeout: timeoutMs});
  if (r.error) throw r.error;
  return r;
}

function pyOk(args: string[], timeoutMs = 240000): string {
  const r = py(args, timeoutMs);
  assert.equal(r.status, 0, `python ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** The last line of stdout as JSON. */
function lastJson(out: string): Record<string, unknown> {
  const lines = out.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]) as Record<string, unknown>;
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as {port: number}).port;
      s.close(() => res(port));
    });
  });
}

/**
 * torchrun arguments for `n` processes on this machine, rendezvous on a free 127.0.0.1 port.
 * `--redirects 1 --tee 1`: torchrun of torch 1.13 under Python >= 3.11 (Debian's python3-torch)
 * cannot parse the default "0" of these flags (docs/pytorch.md).
 */
async function torchrun(n: number): Promise<string[]> {
  const port = await freePort();
  return ['-m', 'torch.distributed.run', '--nnodes=1', `--nproc_per_node=${n}`, '--master_addr=127.0.0.1',
    `--master_port=${port}`, '--redirects', '1', '--tee', '1'];
}

function save(path: string, tensors: Array<{name: string, t: tf.Tensor}>, metadata?: Record<string, string>): void {
  writeFileSync(path, writeSafetensors(
      tensors.map(({name, t}) => ({name, shape: t.shape, data: t.dataSync() as Float32Array})), metadata));
}

/** The model's unique variables, in weight order. */
function variablesOf(model: tfl.LayersModel): tf.Variable[] {
  const seen = new Set<number>();
  const out: tf.Variable[] = [];
  for (const w of model.weights) {
    const v = w.read() as tf.Variable;
    if (!seen.has(v.id)) {
      seen.add(v.id);
      out.push(v);
    }
  }
  return out;
}

let skipReason: string | null = null;
before(function() {
  this.timeout(180000);
  skipReason = torchAvailable();
});

function requireTorch(ctx: Mocha.Context): void {
  if (skipReason != null) ctx.skip();
}

describe('PyTorch twin: Python unit checks (python/tests/unit.py)', function() {
  this.timeout(300000);
  before(function() {
    requireTorch(this);
  });

  it('safetensors validation, F16/BF16, KArAt implementations, parameter counts, named errors, data, log format', () => {
    const r = py([join(TESTS, 'unit.py')]);
    assert.equal(r.status, 0, r.stderr);
    const m = /Ran (\d+) tests?[\s\S]*\nOK\b/.exec(r.stderr);
    assert.ok(m != null && Number(m[1]) >= 13, r.stderr);
  });
});

describe('PyTorch twin: the Python and TypeScript safetensors readers enforce the same rules', function() {
  this.timeout(120000);
  before(function() {
    requireTorch(this);
  });

  it('both refuse every hostile file (duplicate keys, hidden trailing bytes, holes, overlaps, NaN, bad spans) and accept the valid one', () => {
    const e = (a: number, b: number, shape = [1]) => ({dtype: 'F32', shape, data_offsets: [a, b]});
    const file = (name: string, header: string, data: number) => {
      const h = Buffer.from(header);
      const b = Buffer.alloc(8 + h.length + data);
      b.writeBigUInt64LE(BigInt(h.length), 0);
      h.copy(b, 8);
      const p = join(tmp, `hostile-${name}.safetensors`);
      writeFileSync(p, b);
      return p;
    };
    const hostile: Record<string, string> = {
      'duplicate-key': file('dup', `{"cls_token":${JSON.stringify(e(0, 4))},"cls_token":${JSON.stringify(e(4, 8))}}`, 8),
      'trailing-bytes': file('trailing', JSON.stringify({cls_token: e(0, 4)}), 8),
      'hole': file('hole', JSON.stringify({a: e(0, 4), b: e(8, 12)}), 12),
      'overlap': file('overlap', JSON.stringify({a: e(0, 8, [2]), b: e(4, 12, [2])}), 12),
      'nan': file('nan', '{"__metadata__":{"a":"b"},"x":NaN}', 0),
      'duplicate-metadata-key': file('dupmeta', '{"__metadata__":{"a":"b","a":"c"}}', 0),
      'span': file('span', JSON.stringify({a: e(0, 8, [3])}), 8),
      'outside': file('outside', JSON.stringify({a: e(0, 8, [2])}), 4),
      'negative-shape': file('negshape', JSON.stringify({a: e(0, 4, [-1])}), 4),
      'dtype': file('dtype', JSON.stringify({a: {...e(0, 8), dtype: 'I64'}}), 8),
    };
    const valid = file('valid', JSON.stringify({a: e(0, 4), b: e(4, 12, [2])}), 12);
    const pyResults = new Map(py([join(TESTS, 'read_safetensors.py'), valid, ...Object.values(hostile)]).stdout.trim().split('\n')
        .map((l) => JSON.parse(l) as {file: string, error: string | null}).map((r) => [r.file, r.error]));
    const tsError = (p: string) => {
      try {
        readSafetensors(new Uint8Array(readFileSync(p)));
        return null;
      } catch (err) {
        return (err as Error).message;
      }
    };
    assert.equal(tsError(valid), null);
    assert.equal(pyResults.get(valid), null);
    for (const [name, p] of Object.entries(hostile)) {
      assert.notEqual(tsError(p), null, `TypeScript reader accepted ${name}`);
      assert.notEqual(pyResults.get(p) ?? null, null, `Python reader accepted ${name}`);
    }
  });
});

describe('PyTorch twin: same logits, loss and gradients as tfjs (random weights)', function() {
  this.timeout(600000);
  before(async function() {
    requireTorch(this);
    await tf.setBackend('cpu');
  });

  const CASES: Array<{name: string, size: Record<string, number>, attention: AttentionActivation, batch: number,
                      layout?: {pool: 'gap', fcNorm: boolean}}> = [
    {name: 'small, softmax', size: {dim: 16, depth: 2, heads: 2, mlpRatio: 2, imageSize: 16, patchSize: 4, numClasses: 5},
      attention: 'softmax', batch: 4},
    {name: 'small, Fourier-KArAt G3B r4', size: {dim: 16, depth: 2, heads: 2, mlpRatio: 2, imageSize: 16, patchSize: 4, numClasses: 5},
      attention: {type: 'fourier', grid: 3, rank: 4, mode: 'blockwise'}, batch: 4},
    {name: 'larger, Fourier-KArAt G2U r6 (one shared operator)',
      size: {dim: 32, depth: 3, heads: 4, mlpRatio: 3, imageSize: 24, patchSize: 4, numClasses: 7},
      attention: {type: 'fourier', grid: 2, rank: 6, mode: 'universal'}, batch: 3},
    {name: 'larger, softmax', size: {dim: 32, depth: 3, heads: 4, mlpRatio: 3, imageSize: 24, patchSize: 4, numClasses: 7},
      attention: 'softmax', batch: 3},
    {name: 'small, rational (3, 2) basis with SiLU base',
      size: {dim: 16, depth: 2, heads: 2, mlpRatio: 2, imageSize: 16, patchSize: 4, numClasses: 5},
      attention: {basis: 'rational', rationalOrder: [3, 2], rank: 4, baseActivation: 'silu'}, batch: 4},
    {name: "small, Fourier-KArAt G3B r4, pooled with fc_norm (timm's global_pool='avg')",
      size: {dim: 16, depth: 2, heads: 2, mlpRatio: 2, imageSize: 16, patchSize: 4, numClasses: 5},
      attention: {type: 'fourier', grid: 3, rank: 4, mode: 'blockwise'}, batch: 4, layout: {pool: 'gap', fcNorm: true}},
  ];

  for (const c of CASES) {
    it(`${c.name}: logits <= 1e-4, loss <= 1e-4, every gradient <= 1e-3 (relative)`, () => {
      const dir = join(tmp, `parity-${c.name.replace(/[^a-z0-9]+/gi, '-')}`);
      mkdirSync(dir, {recursive: true});
      const model = vit({...c.size, ...c.layout, attention: c.attention, classifierActivation: 'linear'} as Parameters<typeof vit>[0]);
      const {imageSize: S, numClasses: K} = c.size;
      const x = tf.randomNormal([c.batch, S, S, 3], 0, 1, 'float32', 11);
      // soft targets (label smoothing 0.1 on random labels)
      const labels = tf.randomUniform([c.batch], 0, K, 'int32', 5);
      const y = tf.add(tf.mul(tf.oneHot(labels, K), 0.9), 0.1 / K);
      const logits = model.apply(x, {training: false}) as tf.Tensor;
      const loss = softCrossEntropy(logits as tf.Tensor2D, y as tf.Tensor2D);
      const vars = variablesOf(model);
      const {grads} = tf.variableGrads(
          () => softCrossEntropy(model.apply(x, {training: true}) as tf.Tensor2D, y as tf.Tensor2D), vars);
      // The gradients in the same layout: a copy of the model whose weights are the gradients.
      const gradModel = vitFromSafetensors(vitToSafetensors(model));
      const gradVars = variablesOf(gradModel);
      assert.equal(gradVars.length, vars.length);
      gradVars.forEach((v, i) => v.assign(grads[vars[i].name]));
      writeFileSync(join(dir, 'model.safetensors'), vitToSafetensors(model));
      writeFileSync(join(dir, 'grads.safetensors'), vitToSafetensors(gradModel));
      save(join(dir, 'batch.safetensors'), [{name: 'x', t: x}, {name: 'targets', t: y}, {name: 'logits', t: logits},
        {name: 'loss', t: tf.reshape(loss, [1])}]);
      const r = lastJson(pyOk([join(TESTS, 'parity.py'), join(dir, 'model.safetensors'), join(dir, 'batch.safetensors'),
        join(dir, 'grads.safetensors')])) as {logits: number, loss: number, grads: Record<string, number>,
        missing: string[], extra: string[], maxGrad: number, gradNormMin: number, params: number,
        init: Record<string, {n: number, stdTfjs: number, stdTorch: number, maxTfjs: number, maxTorch: number,
          meanTfjs: number, meanTorch: number}>};
      assert.deepEqual(r.missing, [], 'every PyTorch parameter has a tfjs gradient');
      assert.deepEqual(r.extra, [], 'every tfjs gradient has a PyTorch parameter');
      const nVars = vars.reduce((a, v) => a + v.size, 0);
      assert.equal(r.params, nVars, 'same parameter count (universal: one shared operator on both sides)');
      assert.ok(r.logits <= 1e-4, `logits rel ${r.logits}`);
      assert.ok(r.loss <= 1e-4, `loss rel ${r.loss}`);
      const bad = Object.entries(r.grads).filter(([, e]) => !(e <= 1e-3));
      assert.deepEqual(bad, [], `gradients over 1e-3: ${JSON.stringify(bad)}`);
      // same initialisation: constant tensors equal; random ones of >= 512 values with the same spread
      // (std ratio within [0.8, 1.25]: about 5 standard deviations of the estimate at n = 512, so a
      // false alarm is negligible although the tfjs weights are unseeded)
      for (const [name, t] of Object.entries(r.init)) {
        if (t.stdTfjs === 0 || t.stdTorch === 0) {
          assert.ok(t.stdTfjs === t.stdTorch && t.meanTfjs === t.meanTorch, `${name}: init ${JSON.stringify(t)}`);
        } else if (t.n >= 512) {
          // same spread, and uniform on both sides or on neither (max/std: <= ~1.8 for a uniform
          // sample, >= ~2.1 for a (truncated) normal one of this size)
          const sr = t.stdTorch / t.stdTfjs;
          const uniform = (max: number, std: number) => max / std < 1.95;
          assert.ok(sr > 0.8 && sr < 1.25 && uniform(t.maxTfjs, t.stdTfjs) === uniform(t.maxTorch, t.stdTorch),
                    `${name}: init ${JSON.stringify(t)}`);
        }
      }
      const nTensors = vitToTorchTensors(gradModel).tensors.length;
      assert.equal(Object.keys(r.grads).length, nTensors, 'one gradient per tensor of the file');
      console.log(`      ${c.name}: ${r.params} params; rel. error logits ${r.logits.toExponential(2)}, ` +
                  `loss ${r.loss.toExponential(2)}, worst gradient ${r.maxGrad.toExponential(2)}`);
      assert.ok(r.gradNormMin > 0, 'no all-zero gradient (the comparison is not vacuous)');
      tf.dispose([x, labels, y, logits, loss, ...Object.values(grads)]);
      model.dispose();
      gradModel.dispose();
    });
  }
});

/** A small CIFAR-10-format dataset (binary version, random pixels) for the distributed checks. */
function fakeCifar(dir: string, perFile = 24, test = 16): string {
  const d = join(dir, 'cifar-10-batches-bin');
  mkdirSync(d, {recursive: true});
  let s = 12345;
  const rnd = () => (s = (s * 1103515245 + 12345) >>> 0) >>> 8;
  const file = (n: number) => {
    const b = new Uint8Array(n * 3073);
    for (let i = 0; i < n; i++) {
      b[i * 3073] = rnd() % 10;
      for (let j = 1; j < 3073; j++) b[i * 3073 + j] = rnd() & 255;
    }
    return b;
  };
  for (let i = 1; i <= 5; i++) writeFileSync(join(d, `data_batch_${i}.bin`), file(perFile));
  writeFileSync(join(d, 'test_batch.bin'), file(test));
  return dir;
}

const TRAIN = join(PY, 'train.py');
const TOOL = join(TESTS, 'ckpt_tool.py');

/** Options of a tiny deterministic run on the fake CIFAR-10 (no mixup/crop/flip/erasing/dropout). */
function tinyArgs(data: string, attention: 'softmax' | 'fourier', extra: string[] = []): string[] {
  return ['--dataset', 'cifar10', '--data-dir', data, '--dim', '16', '--depth', '2', '--heads', '2', '--mlp-ratio', '2',
    '--patch-size', '8', '--attention', attention, '--grid', '2', '--rank', '4', '--batch-size', '8',
    '--eval-batch-size', '8', '--warmup-epochs', '0', '--lr', '0.01', '--mixup', '0', '--cutmix', '0',
    '--crop-padding', '0', '--hflip', 'false', '--random-erasing', '0', '--label-smoothing', '0.1', '--drop-path', '0',
    '--progress', 'none', '--threads', '1', ...extra];
}

function tool(...args: string[]): Record<string, number | string | null> {
  return lastJson(pyOk([TOOL, ...args])) as Record<string, number | string | null>;
}

describe('PyTorch twin: distributed training (gloo, 2 processes on 127.0.0.1)', function() {
  this.timeout(900000);
  let data = '';
  before(function() {
    requireTorch(this);
    data = fakeCifar(join(tmp, 'fake-cifar'));
  });

  for (const att of ['softmax', 'fourier'] as const) {
    it(`${att}: one step of 2 processes on a global batch of 8 == one process on the same 8 (params <= 1e-5 rel)`, async () => {
      const out = join(tmp, `ddp-${att}`);
      const common = tinyArgs(data, att, ['--epochs', '1', '--steps-per-epoch', '1', '--out-dir', out]);
      pyOk([TRAIN, ...common, '--run-name', 'one']);
      pyOk([...await torchrun(2), TRAIN, ...common, '--run-name', 'two']);
      const one = join(out, 'one', 'last.safetensors'), two = join(out, 'two', 'last.safetensors');
      assert.equal(tool('info', two).step, 1);
      // softmax: the key bias has a zero gradient (see ckpt_tool.py), so it is left out there
      const cmp = tool('compare', two, one, ...(att === 'softmax' ? ['--no-key-bias'] : [])), d = cmp.maxRel as number;
      const upd = tool('update', one);
      assert.ok(d <= 1e-5, `2-process vs 1-process parameters differ by ${d} (${cmp.worst})`);
      // the step moved every tensor well beyond that tolerance: the check can fail
      assert.ok((upd.minRel as number) > 1e-3, `update too small to compare: ${JSON.stringify(upd)}`);
      const log = readFileSync(join(out, 'two', 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      assert.equal(log[0].type, 'start');
      assert.equal(log[0].worldSize, 2);
      assert.equal(log[0].distBackend, 'gloo');
      const csv = readFileSync(join(out, 'two', 'log.csv'), 'utf8').split('\n');
      assert.equal(csv[0], 'epoch,step,lr,trainLoss,trainAcc,testLoss,testTop1,testTop5,epochSeconds,imagesPerSec,cpuSeconds,best');
    });
  }

  it('2 processes: 3 epochs straight == 1 epoch, stop, resume for 2 more (with crop/flip/mixup/cutmix on)', async () => {
    const out = join(tmp, 'resume');
    const args = tinyArgs(data, 'fourier', ['--epochs', '3', '--steps-per-epoch', '2', '--out-dir', out, '--crop-padding', '2',
      '--hflip', 'true', '--mixup', '0.8', '--cutmix', '1.0', '--warmup-epochs', '0.5']);
    const run = await torchrun(2);
    pyOk([...run, TRAIN, ...args, '--run-name', 'straight']);
    pyOk([...await torchrun(2), TRAIN, ...args, '--run-name', 'split', '--stop-after-epochs', '1']);
    assert.equal(tool('info', join(out, 'split', 'last.safetensors')).epoch, 1);
    pyOk([...await torchrun(2), TRAIN, '--resume', join(out, 'split'), '--out-dir', out, '--threads', '1']);
    const a = join(out, 'straight', 'last.safetensors'), b = join(out, 'split', 'last.safetensors');
    assert.equal(tool('info', b).step, 6);
    assert.equal(tool('compare', b, a).maxRel, 0, 'resumed run is bitwise identical');
    const hist = (f: string) => readFileSync(f, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
        .filter((r) => r.type === 'epoch').map((r) => [r.trainLoss, r.testLoss, r.testTop1]);
    assert.deepEqual(hist(join(out, 'split', 'log.jsonl')), hist(join(out, 'straight', 'log.jsonl')));
  });

  it('bad input: a checkpoint of another configuration is refused with a named error', async () => {
    const out = join(tmp, 'resume');  // from the previous test
    const ck = join(out, 'straight', 'last.safetensors');
    assert.ok(existsSync(ck));
    const r = py([TRAIN, '--resume', ck, '--dim', '24', '--out-dir', join(tmp, 'other'), '--threads', '1']);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /CheckpointError: --resume: checkpoint .* incompatible model\/dataset \(dim: checkpoint 16, this run 24\)/);
    const l = tool('load-into', ck, JSON.stringify({dim: 16, depth: 3, heads: 2, mlpRatio: 2, imageSize: 32, patchSize: 8,
      numClasses: 10, attention: {type: 'fourier', grid: 2, rank: 4}}));
    assert.equal(l.error, 'ModelConfigError');
    assert.match(String(l.message), /missing \['blocks\.2\./);
  });

  it('bad input: a world size that does not divide the global batch fails on every rank with BatchSizeError', async () => {
    const r = py([...await torchrun(2), TRAIN, ...tinyArgs(data, 'softmax', ['--batch-size', '7', '--epochs', '1',
      '--out-dir', join(tmp, 'bs')])]);
    assert.notEqual(r.status, 0);
    const all = r.stdout + r.stderr;
    assert.match(all, /BatchSizeError: --batch-size 7 is the GLOBAL batch size and must be divisible by the number of processes \(world size 2\)/);
  });

  it('bad input: a rank killed mid-run fails the run cleanly; the last checkpoint stays loadable and resumable', async () => {
    const out = join(tmp, 'kill');
    const child = spawn(PYTHON, [...await torchrun(2), TRAIN, ...tinyArgs(data, 'fourier', ['--epochs', '1000',
      '--steps-per-epoch', '1', '--test-limit', '8', '--out-dir', out, '--run-name', 'k'])], {env: {...ENV, KARAT_DIST_TIMEOUT_S: '120'}, cwd: ROOT});
    let output = '';
    child.stdout.on('data', (d) => output += d);
    child.stderr.on('data', (d) => output += d);
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    const ck = join(out, 'k', 'last.safetensors');
    const t0 = Date.now();
    // wait for two completed epochs, then SIGKILL the worker with RANK=1
    while (!(existsSync(ck) && tool('info', ck).epoch as number >= 2)) {
      assert.ok(Date.now() - t0 < 300000, `no checkpoint after 300 s:\n${output}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
    const kids = spawnSync('pgrep', ['-P', String(child.pid)], {encoding: 'utf8'}).stdout.trim().split('\n').filter(Boolean);
    const rank1 = kids.find((p) => {
      try {
        return readFileSync(`/proc/${p}/environ`, 'latin1').split('\0').includes('RANK=1');
      } catch {
        return false;
      }
    });
    assert.ok(rank1 != null, `no RANK=1 worker among ${kids}`);
    const killedAt = Date.now();
    process.kill(Number(rank1), 'SIGKILL');
    const code = await exited;
    assert.notEqual(code, 0, 'the run reports failure');
    assert.ok(Date.now() - killedAt < 120000, 'the surviving rank does not hang');
    const info = tool('info', ck);
    assert.ok((info.epoch as number) >= 2 && info.hasOptimizer);
    // resumable: one more epoch from it (one process), continuing at the saved step
    pyOk([TRAIN, '--resume', ck, '--epochs', String((info.epoch as number) + 1), '--threads', '1', '--out-dir', out]);
    assert.equal(tool('info', ck).step, (info.step as number) + 1);
  });
});

describe('PyTorch twin: round trip tfjs train -> PyTorch DDP fine-tune -> tfjs', function() {
  this.timeout(900000);
  before(async function() {
    requireTorch(this);
    await tf.setBackend('cpu');
  });

  it('tfjs trains and exports; 2 gloo processes fine-tune and export; karat convert/eval and tf.loadLayersModel agree with PyTorch on the same test images', async () => {
    const out = join(tmp, 'roundtrip');
    mkdirSync(out, {recursive: true});
    // 1. tfjs: a few steps of `karat train` on the embedded CIFAR-10 subset
    const cfg = resolveConfig([{from: 'test', values: {
      dataset: 'cifar10-subset', trainLimit: 200, testLimit: 100, dim: 16, depth: 2, heads: 2, mlpRatio: 2, patchSize: 8,
      attention: 'fourier', grid: 2, rank: 4, mode: 'universal', batchSize: 20, evalBatchSize: 50, epochs: 1,
      stepsPerEpoch: 3, mixup: 0, cutmix: 0, seed: 3, backend: 'cpu', progress: 'none', outDir: out,
    }}]);
    const trained = await train(cfg, {}, 'tfjs');
    const a = join(out, 'a.safetensors');
    writeFileSync(a, vitToSafetensors(trained.model));
    // 2. PyTorch: DDP fine-tune (2 processes, gloo) from those weights, export at the end
    const b = join(out, 'b.safetensors');
    pyOk([...await torchrun(2), TRAIN, '--init', a, '--dataset', 'cifar10-subset', '--train-limit', '200', '--test-limit', '100',
      '--epochs', '1', '--steps-per-epoch', '3', '--batch-size', '20', '--eval-batch-size', '50', '--lr', '1e-3',
      '--warmup-epochs', '0', '--out-dir', out, '--run-name', 'torch', '--export', b, '--threads', '1', '--progress', 'none']);
    const log = readFileSync(join(out, 'torch', 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const ep = log.filter((r) => r.type === 'epoch').pop();
    assert.equal(log.find((r) => r.type === 'start').worldSize, 2);
    assert.equal(log.pop().type, 'end');
    const moved = lastJson(pyOk([join(TESTS, 'model_diff.py'), b, a])) as {maxRel: number};
    assert.ok(moved.maxRel > 1e-3, `fine-tuning changed the weights (${moved.maxRel})`);
    // 3. tfjs: karat convert -> model.json (+ model.ckpt), karat eval on the same 100 test images
    const conv = join(out, 'converted');
    const karat = (args: string[]) => {
      const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'karat.cjs'), ...args], {encoding: 'utf8', cwd: ROOT, timeout: 600000});
      assert.equal(r.status, 0, `karat ${args.join(' ')}:\n${r.stdout}\n${r.stderr}`);
      return r.stdout;
    };
    karat(['convert', '--from', b, '--out', conv, '--mean', '0.4914,0.4822,0.4465', '--std', '0.2470,0.2435,0.2616']);
    const evalOut = karat(['eval', '--checkpoint', join(conv, 'model.ckpt'), '--dataset', 'cifar10-subset', '--test-limit', '100',
      '--backend', 'cpu']);
    const m = /loss ([\d.]+)\s+top-1 ([\d.]+)%/.exec(evalOut);
    assert.ok(m != null, evalOut);
    assert.ok(Math.abs(Number(m![1]) - ep.testLoss) <= 1e-4 + 1e-4 * ep.testLoss, `karat eval loss ${m![1]} vs PyTorch ${ep.testLoss}`);
    assert.ok(Math.abs(Number(m![2]) / 100 - ep.testTop1) <= 0.01 + 1e-9, `karat eval top-1 ${m![2]}% vs PyTorch ${ep.testTop1}`);
    // tf.loadLayersModel on the converted model.json: loss and top-1 computed here
    const model = await tfl.loadLayersModel(fileSystem(conv));
    const test = loadSubset('test');
    const n = 100, per = 32 * 32 * 3;
    const mean = [0.4914, 0.4822, 0.4465], std = [0.2470, 0.2435, 0.2616];
    const xs = new Float32Array(n * per);
    for (let i = 0; i < n * per; i++) xs[i] = (test.images![i] / 255 - mean[i % 3]) / std[i % 3];
    const labels = Array.from(test.labels.subarray(0, n));
    const logits = model.predict(tf.tensor4d(xs, [n, 32, 32, 3])) as tf.Tensor2D;
    const loss = (await softCrossEntropy(logits, tf.oneHot(labels, 10) as tf.Tensor2D).data())[0];
    const pred = await tf.argMax(logits, 1).data();
    const top1 = labels.filter((l, i) => pred[i] === l).length / n;
    assert.ok(Math.abs(loss - ep.testLoss) <= 1e-4 * Math.max(1, ep.testLoss), `tfjs loss ${loss} vs PyTorch ${ep.testLoss}`);
    assert.ok(Math.abs(top1 - ep.testTop1) <= 0.01 + 1e-9, `tfjs top-1 ${top1} vs PyTorch ${ep.testTop1}`);
    console.log(`      PyTorch fine-tuned: loss ${ep.testLoss.toFixed(5)} top-1 ${ep.testTop1}; tfjs: loss ${loss.toFixed(5)} top-1 ${top1}; ` +
                `karat eval: loss ${m![1]} top-1 ${m![2]}%`);
    model.dispose();
    trained.model.dispose();
  });
});
