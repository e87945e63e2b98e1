/**
 * The browser demo (examples/demo) in headless Chromium via playwright-core: the page loads
 * the committed KArAt ViT on WebGPU or WebGL, classifies bundled samples with their expected
 * labels, renders attention maps (not blank) and activation curves, accepts an uploaded
 * image, and logs no console error; the fine-tuning panel learns two generated classes in the
 * page (progress, held-out accuracy above chance, bad input reported, the saved model reloaded
 * with the same predictions) on WebGPU, and Stop ends a run on WebGL and on wasm; screenshots
 * of the WebGPU run are kept under test-artifacts/demo/. Skips, saying
 * why, without /usr/bin/chromium.
 */
import * as assert from 'node:assert/strict';
import {existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync} from 'node:fs';
import {createServer, Server} from 'node:http';
import {AddressInfo} from 'node:net';
import {tmpdir} from 'node:os';
import {extname, join, normalize, resolve} from 'node:path';

import {PNG} from 'pngjs';

const CHROMIUM = process.env.CHROME_BIN ?? '/usr/bin/chromium';
const ROOT = resolve(__dirname, '..');
// KARAT_DEMO_DIR: serve another copy of the demo folder (development only).
const DEMO = process.env.KARAT_DEMO_DIR ?? join(ROOT, 'examples/demo');
const FLAGS = [
  '--no-sandbox', '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--enable-unsafe-webgpu',
  '--enable-features=Vulkan', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run',
];
const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.json': 'application/json',
  '.bin': 'application/octet-stream', '.png': 'image/png', '.map': 'application/json', '.wasm': 'application/wasm',
};
/** Screenshots of the fine-tuning test (git-ignored). */
const ARTIFACTS = join(ROOT, 'test-artifacts/demo');

/**
 * A 32 x 32 PNG of one of two visually distinct classes: 0 = warm red/orange with horizontal
 * stripes, 1 = cool blue/green with vertical stripes; phase, colours and noise vary with `seed`.
 */
function classPng(label: number, seed: number): Buffer {
  let a = (seed * 2654435761) >>> 0;
  const rnd = () => ((a = (Math.imul(a, 1664525) + 1013904223) >>> 0) / 4294967296);
  const png = new PNG({width: 32, height: 32});
  const phase = Math.floor(rnd() * 8), tint = rnd() * 60;
  for (let y = 0; y < 32; y++) {
    for (let x = 0; x < 32; x++) {
      const on = (((label === 0 ? y : x) + phase) >> 2) % 2 === 0;
      const c = label === 0 ? [220, 60 + tint, 30] : [30, 90 + tint, 220];
      const k = (y * 32 + x) * 4, f = on ? 1 : 0.45;
      for (let ch = 0; ch < 3; ch++) png.data[k + ch] = Math.max(0, Math.min(255, Math.round(c[ch] * f + 30 * (rnd() - 0.5))));
      png.data[k + 3] = 255;
    }
  }
  return PNG.sync.write(png);
}

function serve(dir: string): Promise<Server> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const rel = normalize(decodeURIComponent(url.pathname)).replace(/^([/\\])+/, '') || 'index.html';
    const file = join(dir, rel);
    if (!file.startsWith(dir) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, {'content-type': MIME[extname(file)] ?? 'application/octet-stream'});
    res.end(readFileSync(file));
  });
  return new Promise(ok => server.listen(0, '127.0.0.1', () => ok(server)));
}

/** Number of distinct colours and the standard deviation of the luminance of a PNG screenshot. */
function pngStats(buf: Buffer): {colors: number, std: number} {
  const png = PNG.sync.read(buf);
  const colors = new Set<number>();
  let s = 0, s2 = 0;
  const n = png.width * png.height;
  for (let i = 0; i < n; i++) {
    const [r, g, b] = [png.data[i * 4], png.data[i * 4 + 1], png.data[i * 4 + 2]];
    colors.add((r << 16) | (g << 8) | b);
    const y = 0.299 * r + 0.587 * g + 0.114 * b;
    s += y;
    s2 += y * y;
  }
  return {colors: colors.size, std: Math.sqrt(Math.max(0, s2 / n - (s / n) ** 2))};
}

describe('browser demo (Playwright, headless Chromium)', function() {
  this.timeout(120000);
  let server: Server | null = null;
  let browser: import('playwright-core').Browser | null = null;
  let base = '';
  let profile = '';

  before(async function() {
    if (!existsSync(CHROMIUM)) {
      console.log(`    [skip] demo test: no Chromium at ${CHROMIUM} (apt-get install chromium)`);
      this.skip();
    }
    if (!existsSync(join(DEMO, 'model/model.json'))) {
      throw new Error('examples/demo/model/model.json is missing: run examples/demo/train_demo_model.ts');
    }
    // Build the bundle (esbuild, a few seconds) so the test never runs a stale page.
    const {buildDemo} = await import(join(ROOT, 'scripts/build-demo.mjs'));
    await buildDemo({minify: false});
    server = await serve(DEMO);
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const {chromium} = await import('playwright-core');
    profile = mkdtempSync(join(tmpdir(), 'karat-demo-'));
    browser = await chromium.launch({executablePath: CHROMIUM, args: FLAGS, headless: true});
  });

  after(async () => {
    await browser?.close();
    await new Promise(ok => (server ? server.close(ok) : ok(undefined)));
    if (profile) rmSync(profile, {recursive: true, force: true});
  });

  const meta = () => JSON.parse(readFileSync(join(DEMO, 'samples.json'), 'utf8')) as
      {samples: Array<{file: string, className: string}>};

  async function openPage(query = '') {
    const page = await browser!.newPage();
    const errors: string[] = [];
    page.on('console', m => {
      if (m.type() === 'error') errors.push(`console.error: ${m.text()}`);
    });
    page.on('pageerror', e => errors.push(`page error: ${e.message}`));
    page.on('requestfailed', r => errors.push(`request failed: ${r.url()}`));
    await page.goto(`${base}/index.html${query}`);
    await page.waitForSelector('body[data-ready="1"], #error:not(:empty)', {timeout: 90000});
    assert.equal(await page.textContent('#error'), '', 'the page reports no error');
    return {page, errors};
  }

  it('loads the model on WebGPU or WebGL, classifies samples, renders maps and curves, no console error', async () => {
    const {page, errors} = await openPage();
    const backend = await page.textContent('#backend');
    console.log(`    demo backend: ${backend}`);
    assert.ok(backend === 'webgpu' || backend === 'webgl', `backend shown on the page: ${backend}`);
    const samples = meta().samples;
    assert.ok(samples.length >= 3, 'a few bundled samples');
    for (let i = 0; i < 3; i++) {
      await page.click(`#samples button:nth-child(${i + 1})`);
      await page.waitForSelector(`body[data-classified="${i + 1}"]`, {timeout: 60000});
      assert.equal(await page.getAttribute('#prediction', 'data-label'), samples[i].className,
                   `sample ${i} (${samples[i].file}) classified with its expected label`);
    }
    const blocks = await page.$$eval('#curve-block option', o => o.length);
    const heads = await page.$$eval('#curve-head option', o => o.length);
    assert.equal(await page.$$eval('#maps canvas', c => c.length), blocks * heads, 'one map per block and head');
    for (const sel of ['#maps', '#rollout']) {
      const st = pngStats(await page.locator(sel).screenshot());
      assert.ok(st.colors > 20 && st.std > 5, `${sel} is not blank: ${st.colors} colours, luminance std ${st.std.toFixed(1)}`);
    }
    const legend = await page.textContent('#legend');
    assert.match(legend ?? '', /Diverging colour scale: blue = negative|Sequential colour scale/);
    const lines = await page.$$eval('#curves svg polyline', p => p.length);
    assert.ok(lines >= 1, 'activation curves drawn');
    // Another block / head / token for the curves.
    await page.selectOption('#curve-block', '0');
    await page.waitForFunction(() => (document.querySelector('#curves svg text')?.textContent ?? '').includes('block 0'));
    // A user image through the file picker.
    await page.setInputFiles('#file', join(DEMO, samples[1].file));
    await page.waitForSelector('body[data-classified="4"]', {timeout: 60000});
    assert.equal(await page.getAttribute('#prediction', 'data-label'), samples[1].className);
    assert.deepEqual(errors, [], 'no console errors');
    await page.close();
  });

  it('runs on WebGL when asked (?backend=webgl) with the same labels', async () => {
    const {page, errors} = await openPage('?backend=webgl');
    assert.equal(await page.textContent('#backend'), 'webgl');
    const samples = meta().samples;
    await page.click('#samples button:nth-child(1)');
    await page.waitForSelector('body[data-classified="1"]', {timeout: 60000});
    assert.equal(await page.getAttribute('#prediction', 'data-label'), samples[0].className);
    const st = pngStats(await page.locator('#maps').screenshot());
    assert.ok(st.colors > 20 && st.std > 5, `maps not blank on webgl: ${st.colors} colours`);
    assert.deepEqual(errors, [], 'no console errors');
    await page.close();
  });

  it('fine-tunes on two generated classes: progress, held-out accuracy above chance, bad input reported, saved model reloads', async function() {
    this.timeout(600000);
    mkdirSync(ARTIFACTS, {recursive: true});
    const {page, errors} = await openPage();
    const backend = await page.textContent('#ft-backend');
    console.log(`    fine-tuning backend: ${backend}; screenshots in ${ARTIFACTS}`);
    const file = (label: number, i: number) => ({name: `${label ? 'blue' : 'red'}_${i}.png`, mimeType: 'image/png', buffer: classPng(label, 100 * label + i)});
    // An empty class: a message, nothing starts.
    await page.setInputFiles('#ft-files-0', Array.from({length: 8}, (_, i) => file(0, i)));
    await page.waitForSelector('#ft-class-0[data-count="8"]');
    await page.click('#ft-start');
    await page.waitForFunction(() => /has no images/.test(document.querySelector('#ft-message')?.textContent ?? ''));
    assert.match(await page.textContent('#ft-message') ?? '', /class 'class B' has no images/);
    // A file that is not an image: its message, the images already added kept.
    await page.setInputFiles('#ft-files-1', [...Array.from({length: 8}, (_, i) => file(1, i)),
      {name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not an image')},
      {name: 'huge.png', mimeType: 'image/png', buffer: Buffer.alloc(21e6)}]);
    await page.waitForSelector('#ft-class-1[data-count="8"]');
    await page.waitForFunction(() => /notes\.txt/.test(document.querySelector('#ft-message')?.textContent ?? ''));
    assert.match(await page.textContent('#ft-message') ?? '', /notes\.txt is not an image/);
    assert.match(await page.textContent('#ft-message') ?? '', /huge\.png is 21\.0 MB; images up to 20 MB are accepted/);
    assert.equal(await page.getAttribute('#ft-class-0', 'data-count'), '8', 'nothing lost');
    await page.screenshot({path: join(ARTIFACTS, '1-classes-and-bad-file.png'), fullPage: true});
    // Fine-tune: 12 training images, 4 held out, batch 8: 2 steps per epoch.
    const epochs = 8;
    await page.fill('#ft-epochs', String(epochs));
    const t0 = Date.now();
    await page.click('#ft-start');
    await page.waitForFunction(() => Number(document.body.dataset.ftSteps ?? 0) >= 1, undefined, {timeout: 300000});
    // The page answers while it trains (training yields after every step).
    const during = await page.evaluate(() => ({finished: document.body.dataset.finetuned ?? null, status: document.querySelector('#ft-status')!.textContent}));
    console.log(`    while training: ${during.status}`);
    await page.screenshot({path: join(ARTIFACTS, '2-training.png'), fullPage: true});
    await page.waitForSelector('body[data-finetuned="1"], #ft-message:not(:empty)', {timeout: 540000});
    assert.equal(await page.textContent('#ft-message'), '', 'fine-tuning reports no error');
    console.log(`    fine-tuned ${epochs} epochs on ${backend} in ${((Date.now() - t0) / 1000).toFixed(0)} s: ${await page.textContent('#ft-status')}`);
    const prog = await page.$eval('#ft-progress', (p) => [(p as HTMLProgressElement).value, (p as HTMLProgressElement).max]);
    assert.deepEqual(prog, [2 * epochs, 2 * epochs], 'the progress bar reached the end');
    const rows = await page.$$eval('#ft-log tbody tr', (r) => r.map((x) => [(x as HTMLElement).dataset.accuracy, x.textContent]));
    assert.equal(rows.length, epochs, 'one log row per epoch');
    const acc = Number(rows[rows.length - 1][0]);
    assert.ok(acc > 0.5, `held-out accuracy ${acc} beats chance (0.5); log: ${JSON.stringify(rows)}`);
    // A new image: prediction, maps and curves before and after.
    await page.setInputFiles('#ft-try', file(1, 50));
    await page.waitForSelector('body[data-ft-tried="1"]', {timeout: 120000});
    assert.ok(['class A', 'class B'].includes(await page.getAttribute('#ft-prediction', 'data-label') ?? ''));
    for (const sel of ['#ft-maps-before canvas', '#ft-maps-after canvas', '#ft-curves-before svg polyline', '#ft-curves-after svg polyline']) {
      assert.ok(await page.$$eval(sel, (e) => e.length) > 0, `${sel} drawn`);
    }
    await page.screenshot({path: join(ARTIFACTS, '3-after.png'), fullPage: true});
    // Saved to IndexedDB and reloaded with tf.loadLayersModel: the same predictions.
    await page.click('#ft-save');
    await page.waitForSelector('body[data-ft-saved="1"]', {timeout: 60000});
    await page.click('#ft-load');
    await page.waitForSelector('body[data-ft-reload-diff]', {timeout: 60000});
    const diff = Number(await page.getAttribute('body', 'data-ft-reload-diff'));
    assert.ok(diff <= 1e-6, `reloaded model gives the same probabilities (largest difference ${diff})`);
    assert.deepEqual(errors, [], 'no console errors');
    await page.close();
  });

  for (const backend of ['webgl', 'wasm']) it(`fine-tunes on ${backend} when asked, and the Stop button ends the run early`, async function() {
    this.timeout(300000);
    const {page, errors} = await openPage(`?backend=${backend}`);
    assert.equal(await page.textContent('#ft-backend'), backend);
    const file = (label: number, i: number) => ({name: `c${label}_${i}.png`, mimeType: 'image/png', buffer: classPng(label, 300 + 100 * label + i)});
    await page.setInputFiles('#ft-files-0', Array.from({length: 4}, (_, i) => file(0, i)));
    await page.setInputFiles('#ft-files-1', Array.from({length: 4}, (_, i) => file(1, i)));
    await page.waitForSelector('#ft-class-1[data-count="4"]');
    await page.check('input[name="ft-train"][value="all"]');
    await page.fill('#ft-epochs', '100');
    await page.click('#ft-start');
    await page.waitForFunction(() => Number(document.body.dataset.ftSteps ?? 0) >= 2, undefined, {timeout: 240000});
    await page.click('#ft-stop');
    await page.waitForSelector('body[data-finetuned="1"], #ft-message:not(:empty)', {timeout: 240000});
    assert.equal(await page.textContent('#ft-message'), '', 'fine-tuning reports no error');
    assert.equal(await page.getAttribute('body', 'data-ft-stopped'), 'true');
    const steps = Number(await page.getAttribute('body', 'data-ft-steps'));
    assert.ok(steps >= 2 && steps < 100, `stopped after ${steps} of 100 steps`);
    assert.match(await page.textContent('#ft-status') ?? '', new RegExp(`^stopped after \\d+ steps on ${backend}`));
    console.log(`    ${backend}: ${await page.textContent('#ft-status')}`);
    assert.deepEqual(errors, [], 'no console errors');
    await page.close();
  });
});
