/**
 * The programs in examples/ run as a user runs them, against the built package (`npm run
 * build`; they import 'tfjs-karat' / 'tfjs-karat/node', which resolve to dist/), so a broken
 * example fails the tests:
 * - layer-fit-save-load.mjs, swap-and-finetune.mjs, train-library.mjs in Node;
 * - script-tag.html in headless Chromium (playwright-core), its CDN script URLs answered from
 *   node_modules and dist/ (no network); skipped, saying why, without /usr/bin/chromium.
 */
import * as assert from 'node:assert/strict';
import {spawnSync} from 'node:child_process';
import {existsSync, mkdtempSync, readFileSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {pathToFileURL} from 'node:url';

const root = join(__dirname, '..');
const CHROMIUM = process.env.CHROME_BIN ?? '/usr/bin/chromium';

/** Runs examples/<name> with node; returns its stdout after checking it exited cleanly. */
function runExample(name: string, args: string[] = []): string {
  const r = spawnSync(process.execPath, [join(root, 'examples', name), ...args], {cwd: root, encoding: 'utf8', timeout: 300000});
  assert.equal(r.status, 0, `${name} failed:\n${r.stdout}\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /Reparsing as ES module|ExperimentalWarning|DeprecationWarning/, r.stderr);
  return r.stdout;
}

/** The two numbers of a "label: a -> b" line. */
function fromTo(out: string, label: string): [number, number] {
  const m = new RegExp(`${label}: ([\\d.]+) -> ([\\d.]+)`).exec(out);
  assert.ok(m, `no '${label}: a -> b' line in:\n${out}`);
  return [Number(m[1]), Number(m[2])];
}

describe('examples/', function() {
  this.timeout(300000);
  let tmp = '';

  before(function() {
    if (!existsSync(join(root, 'dist', 'tfjs-karat-node.cjs'))) {
      console.warn('    dist/ is missing: run `npm run build` (npm test does it first)');
      this.skip();
    }
    tmp = mkdtempSync(join(tmpdir(), 'karat-examples-'));
  });

  after(() => {
    if (tmp) rmSync(tmp, {recursive: true, force: true});
  });

  it('layer-fit-save-load.mjs: a model with a KArAt layer trains, saves to disk and reloads identically', () => {
    const dir = join(tmp, 'model');
    const out = runExample('layer-fit-save-load.mjs', [dir]);
    const [first, last] = fromTo(out, 'loss');
    assert.ok(last < first, `loss did not fall: ${first} -> ${last}`);
    assert.match(out, /reloaded predictions differ by 0\n/);
    assert.ok(existsSync(join(dir, 'model.json')) && existsSync(join(dir, 'weights.bin')));
  });

  it('swap-and-finetune.mjs: swaps the attention of a softmax ViT and fine-tunes it', () => {
    const out = runExample('swap-and-finetune.mjs');
    assert.match(out, /swapped 2 attention layers; kept \d+ weight tensors, \d+ new/);
    const [first, last] = fromTo(out, 'fine-tune loss');
    assert.ok(last < first, `loss did not fall: ${first} -> ${last}`);
  });

  it('train-library.mjs: trains with the library API and writes its checkpoints', () => {
    const out = runExample('train-library.mjs', [tmp]);
    assert.match(out, /epoch 1: train loss [\d.]+, test top-1 [\d.]+%/);
    for (const f of ['last.ckpt', 'best.ckpt']) assert.ok(existsSync(join(tmp, 'example', f)), f);
  });

  it('script-tag.html: the UMD bundle runs a KArAt ViT from <script> tags in Chromium', async function() {
    if (!existsSync(CHROMIUM)) {
      console.log(`    [skip] no Chromium at ${CHROMIUM} (apt-get install chromium)`);
      this.skip();
    }
    const page = join(root, 'examples', 'script-tag.html');
    const html = readFileSync(page, 'utf8');
    const version = (p: string) => JSON.parse(readFileSync(join(p, 'package.json'), 'utf8')).version as string;
    // The page's URLs name the versions this repository builds and tests against.
    const urls = [...html.matchAll(/src="(https:\/\/cdn\.jsdelivr\.net\/npm\/([^"]+))"/g)];
    assert.equal(urls.length, 5);
    const local = new Map<string, string>();
    for (const [, url, spec] of urls) {
      const m = /^((?:@[^/@]+\/)?[^/@]+)@([^/]+)\/(.+)$/.exec(spec)!;
      const pkgDir = m[1] === 'tfjs-karat' ? root : join(root, 'node_modules', m[1]);
      assert.equal(m[2], version(pkgDir), `${url} names the installed version of ${m[1]}`);
      assert.ok(existsSync(join(pkgDir, m[3])), `${url}: ${join(pkgDir, m[3])} exists`);
      local.set(url, join(pkgDir, m[3]));
    }
    const {chromium} = await import('playwright-core');
    const browser = await chromium.launch({executablePath: CHROMIUM, headless: true,
      args: ['--no-sandbox', '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--disable-background-networking']});
    try {
      const tab = await browser.newPage();
      const errors: string[] = [];
      tab.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      tab.on('pageerror', (e) => errors.push(e.message));
      await tab.route(/^https?:/, (route) => {
        const file = local.get(route.request().url());
        if (file == null) {
          errors.push(`unexpected request ${route.request().url()}`);
          return route.abort();
        }
        return route.fulfill({path: file, contentType: 'text/javascript'});
      });
      await tab.goto(pathToFileURL(page).href);
      await tab.waitForSelector('body[data-result], body[data-error]', {timeout: 240000});
      assert.equal(await tab.getAttribute('body', 'data-error'), null);
      const result = JSON.parse((await tab.getAttribute('body', 'data-result'))!);
      assert.ok(['webgl', 'cpu'].includes(result.backend), result.backend);
      assert.equal(result.karat, version(root));
      assert.deepEqual(result.blocks, ['karat', 'karat']);
      assert.deepEqual(result.grid, [4, 4]);
      assert.equal(result.probs.length, 2);
      for (const row of result.probs as number[][]) {
        assert.equal(row.length, 5);
        assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-4, `probabilities sum to 1: ${row}`);
      }
      assert.deepEqual(errors, []);
      console.log(`      script-tag.html ran on ${result.backend}`);
    } finally {
      await browser.close();
    }
  });
});
