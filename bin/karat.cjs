#!/usr/bin/env node
// Launcher of the `karat` command. In a source checkout it runs src/cli/run.ts with tsx
// (no build step needed); in the published package it calls cli.main of the built Node entry
// (dist/tfjs-karat-node.cjs, the `tfjs-karat/node` export).
'use strict';
const {existsSync} = require('node:fs');
const {dirname, join} = require('node:path');
const {pathToFileURL} = require('node:url');
const {spawn} = require('node:child_process');

const root = join(__dirname, '..');
const built = join(root, 'dist', 'tfjs-karat-node.cjs');
const source = join(root, 'src', 'cli', 'run.ts');

function tsxLoader() {
  try {
    // the loader's absolute URL, so that any working directory works
    return pathToFileURL(join(dirname(require.resolve('tsx/package.json', {paths: [root]})), 'dist', 'loader.mjs')).href;
  } catch {
    return null;
  }
}

const loader = existsSync(source) ? tsxLoader() : null;
if (loader) {
  // The IPC channel ties the child to this launcher: when the launcher dies (even by SIGKILL)
  // the channel closes and the child exits (src/cli/run.ts), so no orphan keeps writing the
  // run folder that a later --resume uses.
  const child = spawn(process.execPath, ['--no-warnings', '--import', loader, source, ...process.argv.slice(2)],
                      {stdio: ['inherit', 'inherit', 'inherit', 'ipc'], cwd: process.cwd()});
  // Ctrl-C in a terminal reaches both processes; a signal sent to this launcher alone is
  // forwarded, so the CLI can report its last complete checkpoint and exit 130.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      if (child.exitCode == null) child.kill(sig);
    });
  }
  child.on('exit', (code, signal) => process.exit(code != null ? code : 128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1)));
} else if (existsSync(built)) {
  require(built).cli.runCli(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  }, (e) => {
    console.error(e instanceof Error ? (e.stack || e.message) : e);
    process.exitCode = 1;
  });
} else {
  console.error('karat: neither the built package (dist/tfjs-karat-node.cjs) nor tsx with the TypeScript sources was found; ' +
                'run `npm install` (development) or `npm run build`');
  process.exit(1);
}
