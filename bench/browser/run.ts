/**
 * `npm run bench:browser [-- --quick] [--backend webgl|webgpu] [--json FILE] [--iters N]`
 *
 * Op-level benchmark of Fourier-KArAt in headless Chromium (WebGL2 on ANGLE+SwiftShader,
 * or WebGPU on SwiftShader Vulkan, on machines without a GPU): fused kernel vs composite
 * path, forward and forward+backward, B=32 h=3 N=197 r=12 G=3 (`--quick`: B=4 h=3 N=65).
 * Bundles bench/browser/page.ts with esbuild, serves it from 127.0.0.1, drives the system
 * Chromium ($CHROME_BIN or /usr/bin/chromium) with playwright-core (never downloads a
 * browser), prints the records (bench/common.ts format) and composite/fused ratios, and
 * writes the records with `--json FILE`. On SwiftShader read the ratios, not the times.
 */
import {mkdtempSync, readFileSync, rmSync, existsSync} from 'node:fs';
import {createServer} from 'node:http';
import type {AddressInfo} from 'node:net';
import {createRequire} from 'node:module';
import {tmpdir} from 'node:os';
import {dirname, join, resolve} from 'node:path';
import {fileURLToPath} from 'node:url';

import {build} from 'esbuild';
import {chromium} from 'playwright-core';

import {parseFlags} from '../../src/cli/flags';
import {BenchRecord} from '../common';
import {OpCase} from '../ops';
import {reportOpRecords} from '../report';
import type {BrowserBenchRequest, BrowserBenchResult} from './page';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const require = createRequire(import.meta.url);
const {CHROMIUM_FLAGS} = require(join(root, 'karma.conf.cjs')) as {CHROMIUM_FLAGS: string[]};

async function main() {
  const args = parseFlags(process.argv.slice(2), new Set(['quick'])).flags;
  const backend = String(args.backend ?? 'webgl');
  if (!['webgl', 'webgpu'].includes(backend)) throw new Error(`--backend must be webgl or webgpu, got '${backend}'`);
  const quick = Boolean(args.quick);
  const cases: OpCase[] = quick ? [{B: 4, h: 3, N: 65, r: 12, G: 3}] : [{B: 32, h: 3, N: 197, r: 12, G: 3}];
  const iters = args.iters != null ? Number(args.iters) : (quick ? 5 : 3);
  const request: BrowserBenchRequest = {backend, cases, opts: {warmup: 1, iters}};

  const chrome = process.env.CHROME_BIN || '/usr/bin/chromium';
  if (!existsSync(chrome)) throw new Error(`no Chromium at ${chrome} (set CHROME_BIN)`);

  const tmp = mkdtempSync(join(tmpdir(), 'karat-bench-'));
  const bundle = join(tmp, 'bench.js');
  await build({
    entryPoints: [join(here, 'page.ts')], bundle: true, format: 'iife', platform: 'browser',
    target: 'es2020', outfile: bundle, logLevel: 'warning',
    define: {'process.env.NODE_ENV': '"production"'},
  });
  const html = '<!doctype html><html><head><meta charset="utf-8"><title>tfjs-karat bench</title></head>' +
      '<body><script src="/bench.js"></script></body></html>';
  const server = createServer((req, res) => {
    if (req.url === '/bench.js') {
      res.writeHead(200, {'content-type': 'text/javascript'});
      res.end(readFileSync(bundle));
    } else {
      res.writeHead(200, {'content-type': 'text/html'});
      res.end(html);
    }
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const port = (server.address() as AddressInfo).port;

  // headless: false because the flags already say --headless=new (the documented set).
  const browser = await chromium.launch({executablePath: chrome, headless: false, args: CHROMIUM_FLAGS});
  let result: BrowserBenchResult;
  try {
    const page = await browser.newPage();
    page.on('console', (m) => console.log(`  [browser ${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => console.error(`  [browser error] ${e.message}`));
    await page.goto(`http://127.0.0.1:${port}/`);
    await page.waitForFunction(() => 'karatBench' in window);
    console.log(`Chromium ${browser.version()}, backend ${backend}, cases ${JSON.stringify(cases)}, ` +
                `warmup 1, iters ${iters}`);
    result = await page.evaluate(
        (r) => (window as unknown as {karatBench: (x: BrowserBenchRequest) => Promise<BrowserBenchResult>})
                   .karatBench(r),
        request);
  } finally {
    await browser.close();
    server.close();
    rmSync(tmp, {recursive: true, force: true});
  }
  console.log('device:', JSON.stringify(result.info));
  const records: BenchRecord[] = result.records.map((r) => ({...r, device: String(result.info.renderer ?? backend)}));
  reportOpRecords(records, args.json, '; SwiftShader: compare ratios, not times');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
