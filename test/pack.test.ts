/**
 * The published package, as a user gets it: `npm pack` the repository, install the tarball into
 * an empty folder with `npm install --offline`, and run the `karat` command there, including a
 * training run on an image folder, which needs the image decoders pngjs and jpeg-js.
 *
 * No network: the @tensorflow peers are linked from this repository's node_modules, and the
 * decoders are packed from there and installed with the tarball (the npm cache of `npm ci`
 * holds their tarballs but not the registry metadata a range needs); the test checks that
 * the package declares them with ranges those versions satisfy. The package holds no dataset:
 * the CIFAR-10 subset is the data package packages/cifar10-subset (tfjs-karat-cifar10-subset),
 * packed and installed here too once the test has seen the CLI ask for it.
 */
import * as assert from 'node:assert/strict';
import {execFileSync, spawnSync} from 'node:child_process';
import {existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';

import {PNG} from 'pngjs';

const root = join(__dirname, '..');
const PEERS = ['tfjs-core', 'tfjs-layers', 'tfjs-backend-cpu'];
const SUBSET_PACKAGE = join(root, 'packages', 'cifar10-subset');
const DECODERS = ['pngjs', 'jpeg-js'];

const readJson = (f: string) => JSON.parse(readFileSync(f, 'utf8'));

/** Whether `version` satisfies a caret range `^X.Y.Z` (the form package.json uses here). */
function caretSatisfies(range: string, version: string): boolean {
  const m = /^\^(\d+)\.(\d+)\.(\d+)$/.exec(range);
  if (m == null) return false;
  const want = m.slice(1).map(Number), have = version.split('.').map(Number);
  const fixed = want[0] > 0 ? 1 : 2;  // ^1.2.3 fixes the major, ^0.4.4 the minor too
  for (let i = 0; i < fixed; i++) if (have[i] !== want[i]) return false;
  return have[0] * 1e6 + have[1] * 1e3 + have[2] >= want[0] * 1e6 + want[1] * 1e3 + want[2];
}

function png(value: number): Buffer {
  const p = new PNG({width: 8, height: 8});
  p.data.fill(value);
  for (let i = 3; i < p.data.length; i += 4) p.data[i] = 255;
  return PNG.sync.write(p);
}

describe('the packed package (npm pack, installed into an empty folder)', function() {
  this.timeout(300000);
  let dir: string, tarball: string;
  const pack = (what: string) => join(dir, execFileSync('npm', ['pack', '--silent', '--pack-destination', dir, what],
                                                        {cwd: root, encoding: 'utf8'}).trim().split('\n').pop()!);
  const karat = (args: string[]) => spawnSync(process.execPath, [join(dir, 'node_modules/tfjs-karat/bin/karat.cjs'), ...args],
                                              {cwd: dir, encoding: 'utf8', timeout: 240000});

  before(function() {
    if (!existsSync(join(root, 'dist', 'tfjs-karat-node.cjs'))) {
      console.warn('    dist/ is missing: run `npm run build` (npm test does it first)');
      this.skip();
    }
    dir = mkdtempSync(join(tmpdir(), 'karat-pack-'));
    tarball = pack('.');
    const tarballs = [tarball, ...DECODERS.map((d) => pack(join(root, 'node_modules', d)))];
    writeFileSync(join(dir, 'package.json'), JSON.stringify({name: 'karat-pack-check', version: '1.0.0', private: true}));
    execFileSync('npm', ['install', '--offline', '--legacy-peer-deps', '--ignore-scripts', '--no-audit', '--no-fund',
                         '--no-package-lock', ...tarballs], {cwd: dir, stdio: 'pipe'});
    mkdirSync(join(dir, 'node_modules/@tensorflow'), {recursive: true});
    for (const p of PEERS) symlinkSync(join(root, 'node_modules/@tensorflow', p), join(dir, 'node_modules/@tensorflow', p));
  });

  after(() => {
    if (dir) rmSync(dir, {recursive: true, force: true});
  });

  it('installs the built bundles, the launcher and the optional image decoders, but no sources', () => {
    const pkg = join(dir, 'node_modules/tfjs-karat');
    for (const f of ['bin/karat.cjs', 'dist/tfjs-karat.cjs', 'dist/tfjs-karat-node.cjs', 'dist/tfjs-karat.min.js',
                     'dist/types/src/node.d.ts']) {
      assert.ok(existsSync(join(pkg, f)), f);
    }
    assert.ok(!existsSync(join(pkg, 'src')), 'src/ is not published');
    const manifest = readJson(join(pkg, 'package.json'));
    for (const dep of DECODERS) {
      const range = manifest.optionalDependencies?.[dep] ?? manifest.dependencies?.[dep];
      const installed = readJson(join(dir, 'node_modules', dep, 'package.json')).version;
      assert.ok(range != null, `tfjs-karat declares ${dep}`);
      assert.ok(caretSatisfies(range, installed), `${dep}@${installed} satisfies the declared ${range}`);
    }
  });

  it('the tarball holds no dataset: no .kds file, under 2 MB', () => {
    const files = execFileSync('tar', ['-tzf', tarball], {encoding: 'utf8'}).trim().split('\n');
    assert.deepEqual(files.filter((f) => /\.kds$/.test(f) || /^package\/data\//.test(f)), []);
    const size = statSync(tarball).size;
    assert.ok(size < 2e6, `the tarball is ${(size / 1e6).toFixed(1)} MB`);
    assert.ok(!readJson(join(root, 'package.json')).files.includes('data'), 'package.json files has no data folder');
  });

  it('holds only what the last build made: every chunk is imported, every declaration has its source', () => {
    const dist = join(dir, 'node_modules/tfjs-karat/dist');
    const entries = readdirSync(dist).filter((f) => /\.(mjs|cjs)$/.test(f)).map((f) => readFileSync(join(dist, f), 'utf8'));
    for (const chunk of readdirSync(join(dist, 'chunks')).filter((f) => !f.endsWith('.map'))) {
      assert.ok(entries.some((code) => code.includes(`chunks/${chunk}`)), `dist/chunks/${chunk} is imported by no entry`);
    }
    const declarations = (d: string): string[] => readdirSync(d, {withFileTypes: true}).flatMap((e) =>
        e.isDirectory() ? declarations(join(d, e.name)) : [join(d, e.name)]);
    const types = join(dist, 'types');
    for (const f of declarations(types)) {
      const source = f.slice(types.length + 1).replace(/\.d\.ts$/, '.ts');
      assert.ok(existsSync(join(root, source)), `dist/types declares ${source}, which is not a source file`);
    }
  });

  it('the data package tfjs-karat-cifar10-subset holds only the subset and its index', () => {
    const [report] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json'], {cwd: SUBSET_PACKAGE, encoding: 'utf8'}));
    assert.equal(report.name, 'tfjs-karat-cifar10-subset');
    assert.deepEqual(report.files.map((f: {path: string}) => f.path).sort(),
                     ['README.md', 'cifar10-subset.kds', 'index.cjs', 'index.d.ts', 'package.json']);
  });

  it('without the data package, karat train on cifar10-subset names the package to install; with it, finds the subset', () => {
    const miss = karat(['train', '--preset', 'quick', '--backend', 'cpu', '--epochs', '1', '--out-dir', 'runs']);
    assert.equal(miss.status, 2, miss.stderr + miss.stdout);
    assert.match(miss.stderr, /^karat: error: the CIFAR-10 subset \(dataset 'cifar10-subset'\) is not installed: run `npm install tfjs-karat-cifar10-subset`, or pass a \.kds file with --data-dir, or another --dataset\n$/);
    // unpacked where npm puts it (a second `npm install` would prune the linked @tensorflow peers)
    const data = join(dir, 'node_modules', 'tfjs-karat-cifar10-subset');
    mkdirSync(data);
    execFileSync('tar', ['-xzf', pack(SUBSET_PACKAGE), '-C', data, '--strip-components=1']);
    const found = spawnSync(process.execPath, ['-e',
      "const k = require('tfjs-karat/node'); const p = k.data.embeddedSubsetPath();" +
      "console.log(JSON.stringify([p, require('tfjs-karat-cifar10-subset').path, k.data.loadSubset('test').size]));"],
                            {cwd: dir, encoding: 'utf8'});
    assert.equal(found.status, 0, found.stderr);
    const [p, exported, testSize] = JSON.parse(found.stdout.trim().split('\n').pop()!);
    assert.equal(p, exported);
    assert.equal(p, join(dir, 'node_modules', 'tfjs-karat-cifar10-subset', 'cifar10-subset.kds'));
    assert.equal(testSize, 1000);
  });

  it('karat --help and karat info run from the installed package', () => {
    const help = karat(['--help']);
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /usage:\n\s+karat train/);
    const info = karat(['info']);
    assert.equal(info.status, 0, info.stderr);
    assert.match(info.stdout, /tfjs-karat \d+\.\d+\.\d+/);
    assert.match(info.stdout, /cifar10-subset/);
  });

  it('karat train on a folder of PNGs writes a checkpoint that karat eval reads', () => {
    for (const split of ['train', 'test']) {
      for (const [c, v] of [['dark', 20], ['light', 230]] as const) {
        mkdirSync(join(dir, 'images', split, c), {recursive: true});
        for (let i = 0; i < 2; i++) writeFileSync(join(dir, 'images', split, c, `${i}.png`), png(v + i));
      }
    }
    const tiny = ['--dataset', 'folder', '--data-dir', 'images', '--image-size', '8', '--dim', '8', '--depth', '1',
                  '--heads', '2', '--mlp-ratio', '1', '--patch-size', '4', '--grid', '1', '--rank', '2',
                  '--batch-size', '4', '--eval-batch-size', '4', '--backend', 'cpu', '--mixup', '0', '--cutmix', '0',
                  '--epochs', '1', '--out-dir', 'runs', '--run-name', 'tiny'];
    const train = karat(['train', ...tiny]);
    assert.equal(train.status, 0, train.stderr + train.stdout);
    assert.ok(readdirSync(join(dir, 'runs/tiny')).includes('last.ckpt'));
    const ev = karat(['eval', '--checkpoint', 'runs/tiny/last.ckpt', '--data-dir', 'images', '--backend', 'cpu']);
    assert.equal(ev.status, 0, ev.stderr + ev.stdout);
    assert.match(ev.stdout, /top-1/i);
  });

  it('import("tfjs-karat/node") and require("tfjs-karat") resolve in the installed package', () => {
    const esm = spawnSync(process.execPath, ['--input-type=module', '-e',
      "const k = await import('tfjs-karat/node'); const r = await import('tfjs-karat');" +
      "console.log(JSON.stringify([typeof k.training.train, typeof k.io.fileSystem, 'training' in r]));"],
                          {cwd: dir, encoding: 'utf8'});
    assert.equal(esm.status, 0, esm.stderr);
    assert.deepEqual(JSON.parse(esm.stdout.trim().split('\n').pop()!), ['function', 'function', false]);
  });
});
