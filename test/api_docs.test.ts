/**
 * The API reference builds from the TSDoc comments without a warning: `npm run docs:api`
 * (typedoc.json: both package entries, warnings treated as errors), here into a temporary
 * folder, and the pages name both entries and the main exports.
 */
import * as assert from 'node:assert/strict';
import {spawnSync} from 'node:child_process';
import {existsSync, mkdtempSync, readdirSync, readFileSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';

const root = join(__dirname, '..');

describe('API reference (typedoc)', function() {
  this.timeout(600000);

  it('npm run docs:api builds with no warning and documents both entries', () => {
    const out = mkdtempSync(join(tmpdir(), 'karat-api-'));
    try {
      const r = spawnSync('npm', ['run', '--silent', 'docs:api', '--', '--out', out], {cwd: root, encoding: 'utf8'});
      const log = `${r.stdout}\n${r.stderr}`;
      assert.equal(r.status, 0, log);
      assert.doesNotMatch(log, /\[warning\]|\[error\]/, log);
      assert.ok(existsSync(join(out, 'index.html')));
      const modules = readdirSync(join(out, 'modules'));
      assert.ok(modules.includes('index.html') && modules.includes('node.html'), modules.join(', '));
      const classes = readdirSync(join(out, 'classes'));
      assert.ok(classes.includes('index.KArAtMultiHeadAttention.html'), classes.slice(0, 20).join(', '));
      assert.match(readFileSync(join(out, 'modules', 'node.html'), 'utf8'), /training/);
    } finally {
      rmSync(out, {recursive: true, force: true});
    }
  });
});
