/**
 * Size limits of the source, checked on every tracked file: no source file over 500 lines, and
 * no function over 80 lines in the product, its benchmarks, scripts, examples and Python twin.
 * A function may exceed it only when it is mostly a GPU shader string and its leading comment
 * says why with a line starting "Long shader:" (a shader reads best as one piece).
 */
import {strict as assert} from 'assert';
import {execFileSync} from 'node:child_process';
import {readFileSync} from 'node:fs';
import {join, resolve} from 'node:path';
import ts from 'typescript';

const ROOT = resolve(__dirname, '..');
const MAX_FILE_LINES = 500;
const MAX_FUNCTION_LINES = 80;
const SOURCE = /\.(ts|mjs|cjs|js|py|cu|cc|c|h|sh|wgsl|glsl)$/;
/** Generated or data files that are tracked but not written by hand. */
const GENERATED = [/^examples\/demo\/dist\//, /\.d\.ts$/];
/** Trees whose functions are held to the limit (tests' describe blocks are not). */
const FUNCTION_TREES = /^(core|src|kernels-[a-z]+|bench|scripts|examples|python)\//;

function tracked(): string[] {
  return execFileSync('git', ['ls-files'], {cwd: ROOT, encoding: 'utf8'}).split('\n')
      .filter((f) => SOURCE.test(f) && !GENERATED.some((g) => g.test(f)));
}

function lineCount(text: string): number {
  return text.endsWith('\n') ? text.split('\n').length - 1 : text.split('\n').length;
}

interface LongFunction {file: string, line: number, name: string, lines: number}

/** Whether a long function is an allowed shader: a "Long shader:" comment and 2/3 of it template text. */
function isDocumentedShader(node: ts.Node, src: ts.SourceFile, lines: number): boolean {
  const comments = ts.getLeadingCommentRanges(src.text, node.getFullStart()) ?? [];
  const parentComments = node.parent ? ts.getLeadingCommentRanges(src.text, node.parent.getFullStart()) ?? [] : [];
  const said = [...comments, ...parentComments].some((c) => /^\s*(\/\*\*?|\*|\/\/)?\s*Long shader:/m.test(src.text.slice(c.pos, c.end)));
  let templateLines = 0;
  const visit = (n: ts.Node) => {
    if (ts.isTemplateExpression(n) || ts.isNoSubstitutionTemplateLiteral(n)) templateLines += lineCount(n.getText(src));
    else ts.forEachChild(n, visit);
  };
  visit(node);
  return said && templateLines * 3 >= lines * 2;
}

/** Functions of a TypeScript/JavaScript text longer than the limit (nested ones counted on their own). */
export function longFunctions(file: string, text: string): LongFunction[] {
  const src = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const out: LongFunction[] = [];
  const visit = (n: ts.Node) => {
    if (ts.isFunctionLike(n) && (n as {body?: ts.Node}).body) {
      const start = src.getLineAndCharacterOfPosition(n.getStart(src)).line;
      const lines = src.getLineAndCharacterOfPosition(n.getEnd()).line - start + 1;
      if (lines > MAX_FUNCTION_LINES && !isDocumentedShader(n, src, lines)) {
        const name = (n as {name?: ts.Node}).name?.getText(src) ?? ts.SyntaxKind[n.kind];
        out.push({file, line: start + 1, name, lines});
      }
    }
    ts.forEachChild(n, visit);
  };
  visit(src);
  return out;
}

/** Python functions longer than the limit, by indentation (a def's body ends at the next line as shallow). */
export function longPythonFunctions(file: string, text: string): LongFunction[] {
  const lines = text.split('\n'), out: LongFunction[] = [];
  const indent = (s: string) => s.length - s.trimStart().length;
  lines.forEach((l, i) => {
    const m = /^(\s*)(?:async\s+)?def\s+(\w+)/.exec(l);
    if (!m) return;
    let end = i;
    for (let j = i + 1; j < lines.length; j++) {
      if (lines[j].trim() === '') continue;
      if (indent(lines[j]) <= m[1].length && !/^\s*[)\]]/.test(lines[j])) break;
      end = j;
    }
    if (end - i + 1 > MAX_FUNCTION_LINES) out.push({file, line: i + 1, name: m[2], lines: end - i + 1});
  });
  return out;
}

describe('source size: files and functions stay small', () => {
  const files = tracked();

  it('finds the tracked sources (sanity)', () => {
    assert.ok(files.includes('src/index.ts') && files.includes('core/index.ts') && files.some((f) => f.endsWith('.py')));
    assert.ok(files.length > 150, `only ${files.length} files`);
  });

  it('the checkers catch a long function and a long Python def, and allow a documented shader', () => {
    const body = Array.from({length: 85}, (_, i) => `  x += ${i};`).join('\n');
    assert.equal(longFunctions('a.ts', `function f() {\n  let x = 0;\n${body}\n}\n`).length, 1);
    const shader = Array.from({length: 85}, (_, i) => `    let v${i} = ${i};`).join('\n');
    const wgsl = `class P {\n  /** Long shader: one WGSL kernel reads best as one piece. */\n  getUserCode() {\n    return \`\n${shader}\n\`;\n  }\n}\n`;
    assert.deepEqual(longFunctions('b.ts', wgsl), []);
    assert.equal(longFunctions('c.ts', wgsl.replace('Long shader:', 'A')).length, 1, 'the shader exception needs its comment');
    const py = `def f():\n${Array.from({length: 85}, (_, i) => `    x = ${i}`).join('\n')}\n\ndef g():\n    return 1\n`;
    assert.deepEqual(longPythonFunctions('a.py', py).map((x) => [x.name, x.lines]), [['f', 86]]);
  });

  it(`no source file is over ${MAX_FILE_LINES} lines`, () => {
    const long = files.map((f) => [f, lineCount(readFileSync(join(ROOT, f), 'utf8'))] as const)
        .filter(([, n]) => n > MAX_FILE_LINES).map(([f, n]) => `${f}: ${n} lines`);
    assert.deepEqual(long, []);
  });

  it(`no function is over ${MAX_FUNCTION_LINES} lines (a shader string only with a "Long shader:" reason)`, () => {
    const long: string[] = [];
    for (const f of files.filter((x) => FUNCTION_TREES.test(x))) {
      const text = readFileSync(join(ROOT, f), 'utf8');
      const found = f.endsWith('.py') ? longPythonFunctions(f, text) : /\.(ts|mjs|cjs|js)$/.test(f) ? longFunctions(f, text) : [];
      long.push(...found.map((x) => `${x.file}:${x.line} ${x.name} (${x.lines} lines)`));
    }
    assert.deepEqual(long, []);
  });
});
