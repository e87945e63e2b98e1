#!/usr/bin/env node
// The project's test command (`npm test`): mocha in Node (CPU, WASM, WebGPU via Dawn),
// then karma in headless Chromium (WebGL2 and WebGPU on SwiftShader) when a karma
// config and a Chromium are present. Ends with one line: "N passed, N failed, N skipped".
//   npm test                 everything
//   npm test -- --node-only  only the mocha suites
//   npm test -- --grep X     forwarded to mocha
import {spawnSync} from 'node:child_process';
import {existsSync, mkdtempSync, readFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';

const args = process.argv.slice(2);
const nodeOnly = args.includes('--node-only');
const mochaArgs = args.filter((a) => a !== '--node-only');
const dir = mkdtempSync(join(tmpdir(), 'karat-test-'));
const total = {passed: 0, failed: 0, skipped: 0};
let hardFailure = false;

function run(label, cmd, cmdArgs, countsFile) {
  console.log(`\n=== ${label} ===`);
  const r = spawnSync(cmd, cmdArgs, {
    stdio: 'inherit',
    env: {...process.env, KARAT_COUNTS_FILE: countsFile},
  });
  if (!existsSync(countsFile)) {
    console.error(`${label}: no results were written (exit ${r.status}, signal ${r.signal})`);
    hardFailure = true;
    return;
  }
  const c = JSON.parse(readFileSync(countsFile, 'utf8'));
  for (const k of Object.keys(total)) total[k] += c[k] || 0;
  if (r.status !== 0 && !(c.failed > 0)) hardFailure = true;
}

// Strict type check of everything (sources, kernels, tests, benchmarks): one counted check.
console.log('\n=== tsc --noEmit (strict) ===');
const tsc = spawnSync('npx', ['tsc', '--noEmit', '-p', 'tsconfig.json'], {stdio: 'inherit'});
if (tsc.status === 0) {
  console.log('typecheck: passed');
  total.passed += 1;
} else {
  console.log('typecheck: FAILED');
  total.failed += 1;
}

run('mocha (Node)', 'npx', ['mocha', '--reporter', './test/support/count-reporter.cjs', ...mochaArgs],
    join(dir, 'mocha.json'));

// The tensorflow-backend suites (test/tensorflow/*.tftest.ts) run in a mocha process of their own:
// importing tfjs-node registers its backend at a higher priority and its file:// IO handlers,
// which must not reach the other suites. Without tfjs-node they skip with the reason.
run('mocha (tensorflow backend, own process)', 'npx',
    ['mocha', '--no-config', '--node-option', 'import=tsx', '--extension', 'ts', '--timeout', '120000',
     '--require', 'test/support/seeded_random.ts',
     '--reporter', './test/support/count-reporter.cjs', 'test/tensorflow/*.tftest.ts'],
    join(dir, 'mocha-tensorflow.json'));

if (!nodeOnly && existsSync('karma.conf.cjs')) {
  run('karma (headless Chromium)', 'node', ['scripts/karma-run.mjs'], join(dir, 'karma.json'));
} else if (!nodeOnly) {
  console.log('\nkarma: no karma.conf.cjs, browser suites not run');
}

if (hardFailure) total.failed += 1;
console.log(`\n${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped`);
process.exit(total.failed > 0 ? 1 : 0);
