/**
 * The browser demo (examples/demo) in headless Chromium via playwright-core: the page loads
 * the committed KArAt ViT on WebGPU or WebGL, classifies bundled samples with their expected
 * labels, renders attention maps (not blank) and activation curves, accepts an uploaded
 * image, and logs no console error. Skips, saying why, without /usr/bin/chromium.
 */
import * as assert from 'node:assert/strict';
import {existsSync, mkdtempSync, readFileSync, rmSync, statSync} from 'node:fs';
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
  '.bin': 'application/octet-stream', '.png': 'image/png', '.map': 'application/json',
};

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
});
