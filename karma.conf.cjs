// Karma configuration for the browser suites (test/browser/*.browser.ts).
//
// Do not run karma directly: `node scripts/karma-run.mjs` (called by `npm test`) bundles
// the suites with esbuild into one file, points KARAT_KARMA_BUNDLE at it, starts karma
// with this config and writes the pass/fail/skip counts for scripts/test.mjs.
//
// The browser is the system Chromium ($CHROME_BIN, default /usr/bin/chromium), headless,
// with WebGL2 on ANGLE+SwiftShader and WebGPU on SwiftShader Vulkan (the flags below).
// karma-chrome-launcher gives every launch a fresh
// temporary --user-data-dir. Nothing here downloads a browser.
'use strict';

/** Chromium flags that give WebGL2 and WebGPU on a machine without a GPU. */
const CHROMIUM_FLAGS = [
  '--headless=new',
  '--no-sandbox',
  '--use-angle=swiftshader',
  '--enable-unsafe-swiftshader',
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-extensions',
  '--disable-gpu-watchdog',
  '--mute-audio',
];

/** A spec-style reporter: one line per test, failures with their message. */
function KaratReporter(baseReporterDecorator) {
  baseReporterDecorator(this);
  const write = (s) => process.stdout.write(s + '\n');
  this.onBrowserLog = (browser, log, type) => {
    write(`  [browser ${type}] ${String(log).replace(/^'|'$/g, '')}`);
  };
  this.onSpecComplete = (browser, result) => {
    const name = [...result.suite, result.description].join(' > ');
    if (result.skipped || result.pending) {
      write(`  - SKIPPED ${name}`);
    } else if (result.success) {
      write(`  ✓ ${name} (${result.time} ms)`);
    } else {
      write(`  ✗ FAILED ${name}`);
      for (const l of result.log) write('      ' + String(l).split('\n').slice(0, 12).join('\n      '));
    }
  };
  this.onRunComplete = (browsers, results) => {
    write(`karma: ${results.success} passed, ${results.failed} failed` +
          (results.error ? ', run error' : '') + (results.disconnected ? ', browser disconnected' : ''));
  };
  // the base reporter would print the browser logs a second time
  this.onBrowserStart = () => {};
  this.specSuccess = this.specFailure = this.specSkipped = () => {};
}
KaratReporter.$inject = ['baseReporterDecorator'];

module.exports = function(config) {
  const bundle = process.env.KARAT_KARMA_BUNDLE;
  if (!bundle) {
    throw new Error('karma.conf.cjs: KARAT_KARMA_BUNDLE is not set; run `node scripts/karma-run.mjs`');
  }
  config.set({
    basePath: '',
    frameworks: ['mocha'],
    files: [
      {pattern: bundle, watched: false, included: true, served: true, nocache: true},
      {pattern: bundle + '.map', watched: false, included: false, served: true, nocache: true},
    ],
    plugins: [
      require('karma-mocha'),
      require('karma-chrome-launcher'),
      {'reporter:karat': ['type', KaratReporter]},
    ],
    reporters: ['karat'],
    browsers: ['ChromiumSwiftShader'],
    customLaunchers: {
      ChromiumSwiftShader: {base: 'Chrome', flags: CHROMIUM_FLAGS},
    },
    client: {
      captureConsole: true,
      mocha: {
        timeout: Number(process.env.KARAT_BROWSER_TIMEOUT_MS || 600000),
        grep: process.env.KARAT_BROWSER_GREP || undefined,
      },
    },
    browserConsoleLogOptions: {level: 'log', terminal: true},
    // SwiftShader renders on the CPU: long single tests are normal.
    browserNoActivityTimeout: 900000,
    browserDisconnectTimeout: 60000,
    browserDisconnectTolerance: 0,
    captureTimeout: 180000,
    pingTimeout: 600000,
    singleRun: true,
    autoWatch: false,
    port: 9876,
    logLevel: config.LOG_WARN,
  });
};

module.exports.CHROMIUM_FLAGS = CHROMIUM_FLAGS;
