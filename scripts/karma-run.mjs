#!/usr/bin/env node
// Runs the browser suites (test/browser/*.browser.ts) in headless Chromium with karma.
//
//   node scripts/karma-run.mjs              (what `npm test` runs after mocha)
//   node scripts/karma-run.mjs --grep webgl only tests whose full title matches
//   KARAT_COUNTS_FILE=out.json ...          writes {passed, failed, skipped} there
//
// 1. Bundles every test/browser/*.browser.ts (and the tfjs packages they import) with
//    esbuild into one IIFE file in a temporary folder.
// 2. Starts karma programmatically with karma.conf.cjs (which serves that file).
// 3. Counts each spec as passed / failed / skipped, writes the counts, exits 1 on any
//    failure (or a browser/run error, counted as one failure).
// Without a Chromium ($CHROME_BIN or /usr/bin/chromium) it says so loudly and counts every
// browser test as skipped (the tests are enumerated by loading the suites with stub
// describe/it functions in Node), never as passed.
import {existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync} from 'node:fs';
import {createRequire} from 'node:module';
import {tmpdir} from 'node:os';
import {dirname, join, resolve} from 'node:path';
import {fileURLToPath} from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const args = process.argv.slice(2);
const grepAt = args.indexOf('--grep');
if (grepAt >= 0 && args[grepAt + 1]) process.env.KARAT_BROWSER_GREP = args[grepAt + 1];
const countsFile = process.env.KARAT_COUNTS_FILE;

function writeCounts(c) {
  if (countsFile) writeFileSync(countsFile, JSON.stringify(c));
  console.log(`browser tests: ${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped`);
}

function browserTestFiles() {
  const dir = join(root, 'test', 'browser');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f.endsWith('.browser.ts')).sort().map((f) => join(dir, f));
}

async function bundle(files, outfile, platform) {
  const esbuild = await import('esbuild');
  await esbuild.build({
    stdin: {
      contents: files.map((f) => `import ${JSON.stringify(f)};`).join('\n'),
      resolveDir: root,
      sourcefile: 'karat-browser-tests.ts',
      loader: 'ts',
    },
    bundle: true,
    format: platform === 'node' ? 'cjs' : 'iife',
    platform,
    target: 'es2020',
    outfile,
    sourcemap: platform === 'node' ? false : 'linked',
    logLevel: platform === 'node' ? 'error' : 'warning',
    define: {'process.env.NODE_ENV': '"production"'},
    // Node-only packages some test helpers may mention; never needed in the page.
    external: ['webgpu', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu'],
  });
}

/** Counts the tests the suites declare, by loading them in Node with stub mocha globals. */
async function enumerateTests(files, tmp) {
  const out = join(tmp, 'enumerate.cjs');
  await bundle(files, out, 'node');
  let count = 0;
  const g = globalThis;
  const ctx = {skip() {}, timeout() {}, retries() {}, slow() {}};
  const describe = (name, fn) => {
    if (typeof fn === 'function') fn.call(ctx);
  };
  const it = () => { count++; };
  describe.skip = describe.only = describe;
  it.skip = it.only = it;
  Object.assign(g, {describe, it, context: describe, specify: it,
    before() {}, after() {}, beforeEach() {}, afterEach() {}});
  require(out);
  return count;
}

const chrome = process.env.CHROME_BIN || '/usr/bin/chromium';
const files = browserTestFiles();
const tmp = mkdtempSync(join(tmpdir(), 'karat-karma-'));
let exitCode = 0;
try {
  if (files.length === 0) {
    console.log('karma: no test/browser/*.browser.ts files');
    writeCounts({passed: 0, failed: 0, skipped: 0});
  } else if (!existsSync(chrome)) {
    const n = await enumerateTests(files, tmp);
    const bar = '!'.repeat(78);
    console.error(`\n${bar}\n!! BROWSER TESTS NOT RUN: no Chromium at ${chrome}` +
                  `\n!! (set CHROME_BIN or install chromium). ${n} browser tests counted as SKIPPED.\n${bar}\n`);
    writeCounts({passed: 0, failed: 0, skipped: n});
  } else {
    process.env.CHROME_BIN = chrome;
    const bundleFile = join(tmp, 'karat-browser-tests.js');
    await bundle(files, bundleFile, 'browser');
    process.env.KARAT_KARMA_BUNDLE = bundleFile;
    console.log(`karma: ${files.length} suite file(s) bundled, browser ${chrome}`);
    const karma = require('karma');
    const config = await karma.config.parseConfig(join(root, 'karma.conf.cjs'), {},
        {promiseConfig: true, throwErrors: true});
    const counts = {passed: 0, failed: 0, skipped: 0};
    let runError = false;
    exitCode = await new Promise((resolveRun) => {
      const server = new karma.Server(config, (code) => resolveRun(code));
      server.on('spec_complete', (browser, result) => {
        if (result.skipped || result.pending) counts.skipped++;
        else if (result.success) counts.passed++;
        else counts.failed++;
      });
      server.on('browser_error', (browser, error) => {
        runError = true;
        console.error(`karma: browser error: ${typeof error === 'string' ? error : JSON.stringify(error)}`);
      });
      server.on('run_complete', (browsers, results) => {
        if (results.error || results.disconnected) runError = true;
      });
      server.start();
    });
    if (runError) counts.failed += 1;
    if (counts.passed + counts.failed + counts.skipped === 0) {
      console.error('karma: the browser ran no tests');
      counts.failed += 1;
    }
    writeCounts(counts);
    if (counts.failed > 0 && exitCode === 0) exitCode = 1;
  }
} catch (e) {
  console.error('karma-run:', e && e.stack || e);
  writeCounts({passed: 0, failed: 1, skipped: 0});
  exitCode = 1;
} finally {
  rmSync(tmp, {recursive: true, force: true});
}
process.exit(exitCode);
