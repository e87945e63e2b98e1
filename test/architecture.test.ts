/**
 * The package's layering, checked on the source (docs/architecture.md draws it): the op
 * contract (core/) at the bottom, the kernel folders (kernels-*) over it, and src/ on top. Inside
 * src/: the op contract at the bottom, kernels
 * registering against it, layers over ops, models over layers, IO and analysis over models,
 * training over those, the CLI on top, and the entry points (the two package entries and the
 * `karat` process entry) above everything. Every static
 * runtime import (`import ... from`, `export ... from`; not `import type`) must point to the
 * same layer or one below, and no module may reach itself through a chain of imports.
 */
import {strict as assert} from 'assert';
import {existsSync, readdirSync, readFileSync, statSync} from 'node:fs';
import {dirname, join, normalize, relative, resolve} from 'node:path';

const ROOT = resolve(__dirname, '..');
const TREES = ['core', 'src', 'kernels-cpu', 'kernels-wasm', 'kernels-webgl', 'kernels-webgpu', 'kernels-cuda'];

/** Rank of each part, matched by the longest path prefix; an import may not go to a higher rank. */
const RANKS: Array<[string, number]> = [
  ['core', 0], ['src/version.ts', 0],
  ['src/bases', 1], ['kernels-', 1],
  ['src/layers', 2],
  ['src/models', 3],
  ['src/io', 4],
  ['src/analysis', 5], ['src/swap.ts', 5], ['src/keras.ts', 5],
  ['src/finetune.ts', 6], ['src/data', 6],
  ['src/training', 7],
  ['src/cli', 8],
  ['src/index.ts', 9], ['src/node.ts', 9], ['src/cli/run.ts', 9],
];

function rankOf(file: string): number {
  let best: [string, number] | null = null;
  for (const r of RANKS) if (file.startsWith(r[0]) && (best == null || r[0].length > best[0].length)) best = r;
  if (best == null) throw new Error(`${file}: no layer assigned; add its folder to RANKS`);
  return best[1];
}

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(ROOT, dir))) {
    const rel = join(dir, name);
    if (name === 'node_modules') continue;
    if (statSync(join(ROOT, rel)).isDirectory()) out.push(...tsFiles(rel));
    else if (rel.endsWith('.ts') && !rel.endsWith('.d.ts')) out.push(rel);
  }
  return out;
}

const IMPORT = /^(?:import|export)\s+(?!type\b)(?:[^'"]*?\bfrom\s+)?['"](\.{1,2}\/[^'"]+)['"]/gm;

/** Relative runtime imports of one file, resolved to repository-relative .ts paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(IMPORT)) {
    const target = normalize(join(dirname(file), m[1]));
    const hit = [`${target}.ts`, join(target, 'index.ts'), target].find((c) => c.endsWith('.ts') && existsSync(join(ROOT, c)));
    if (hit) out.push(hit);
  }
  return out;
}

/** Strongly connected components with more than one member, or a self-import (Tarjan). */
export function importCycles(graph: Map<string, string[]>): string[][] {
  const index = new Map<string, number>(), low = new Map<string, number>();
  const stack: string[] = [], onStack = new Set<string>(), cycles: string[][] = [];
  let next = 0;
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || (graph.get(v) ?? []).includes(v)) cycles.push(comp.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return cycles;
}

describe('architecture: layering of the source', () => {
  const graph = new Map<string, string[]>();
  before(() => {
    for (const t of TREES) for (const f of tsFiles(t)) graph.set(f, importsOf(f));
  });

  it('reads the import graph of every tree (sanity: known edges are present)', () => {
    assert.ok(graph.size > 80, `only ${graph.size} files found`);
    assert.ok(graph.get('src/layers/multihead_attention.ts')!.some((f) => f.startsWith('core/')), 'layers import ops');
    assert.ok(graph.get('src/cli/finetune.ts')!.includes('src/cli/train.ts'), 'finetune imports the train command');
  });

  it('the cycle finder finds a planted cycle and a self-import, and nothing in a chain', () => {
    const planted = new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['d']], ['e', ['a']]]);
    assert.deepEqual(importCycles(planted), [['a', 'b', 'c'], ['d']]);
    assert.deepEqual(importCycles(new Map([['a', ['b']], ['b', ['c']], ['c', []]])), []);
  });

  it('no module imports itself through a chain of runtime imports', () => {
    const cycles = importCycles(graph);
    assert.deepEqual(cycles, [], `import cycles:\n${cycles.map((c) => `  ${c.join(' <-> ')}`).join('\n')}`);
  });

  it('every import points to the same layer or one below', () => {
    const up: string[] = [];
    for (const [f, deps] of graph) {
      for (const d of deps) if (rankOf(d) > rankOf(f)) up.push(`${f} (layer ${rankOf(f)}) imports ${d} (layer ${rankOf(d)})`);
    }
    assert.deepEqual(up, []);
    assert.throws(() => rankOf(relative(ROOT, join(ROOT, 'elsewhere/x.ts'))), /no layer assigned/);
  });
});

/** The top-level folder of a repository-relative path: core, kernels-cpu, ..., src. */
function folderOf(file: string): string {
  return file.split('/')[0];
}

/** Edges between top-level folders (core, kernels-*, src), each with one example import. */
export function folderEdges(graph: Map<string, string[]>): Map<string, string> {
  const edges = new Map<string, string>();
  for (const [f, deps] of graph) {
    for (const d of deps) {
      const key = `${folderOf(f)} -> ${folderOf(d)}`;
      if (folderOf(f) !== folderOf(d) && !edges.has(key)) edges.set(key, `${f} imports ${d}`);
    }
  }
  return edges;
}

/** Folder edges that run up: to a higher level (core 0, kernels-* 1, src 2), or between two kernel folders other than to kernels-cpu. */
export function upArrows(edges: Map<string, string>): string[] {
  const level = (folder: string) => folder === 'core' ? 0 : folder.startsWith('kernels-') ? 1 : 2;
  return [...edges].filter(([key]) => {
    const [a, b] = key.split(' -> ');
    return level(b) > level(a) || (level(a) === 1 && level(b) === 1 && b !== 'kernels-cpu');
  }).map(([, example]) => example);
}

/** Where src/ may reach into a kernel folder: the entries, the CLI, and training's backend set-up. */
const SRC_MAY_IMPORT_KERNELS = ['src/index.ts', 'src/node.ts', 'src/cli/', 'src/training/'];

describe('architecture: the folders show the layering', () => {
  const graph = new Map<string, string[]>();
  before(() => {
    for (const t of TREES) for (const f of tsFiles(t)) graph.set(f, importsOf(f));
  });

  it('the folder checks catch a planted arrow up and a planted circle', () => {
    const planted = new Map([['kernels-webgl/a.ts', ['src/layers/b.ts', 'core/c.ts']], ['src/layers/b.ts', ['kernels-webgl/a.ts']],
                             ['kernels-wasm/d.ts', ['kernels-webgl/a.ts', 'kernels-cpu/e_impl.ts']]]);
    const edges = folderEdges(planted);
    assert.deepEqual([...edges.keys()].sort(), ['kernels-wasm -> kernels-cpu', 'kernels-wasm -> kernels-webgl', 'kernels-webgl -> core', 'kernels-webgl -> src', 'src -> kernels-webgl']);
    assert.deepEqual(upArrows(edges).sort(), ['kernels-wasm/d.ts imports kernels-webgl/a.ts', 'kernels-webgl/a.ts imports src/layers/b.ts']);
  });

  it('core/ (the op contract) imports nothing outside core/', () => {
    const out = [...graph].flatMap(([f, deps]) => f.startsWith('core/') ? deps.filter((d) => !d.startsWith('core/')).map((d) => `${f} imports ${d}`) : []);
    assert.deepEqual(out, []);
  });

  it('a kernel folder imports core/, itself, and kernels-cpu\'s shared loops (*_impl.ts) only', () => {
    const out: string[] = [];
    for (const [f, deps] of graph) {
      if (!f.startsWith('kernels-')) continue;
      for (const d of deps) {
        const ok = d.startsWith('core/') || folderOf(d) === folderOf(f) || /^kernels-cpu\/[a-z_]+_impl\.ts$/.test(d);
        if (!ok) out.push(`${f} imports ${d}`);
      }
    }
    assert.deepEqual(out, []);
  });

  it('inside src/, only the entries, the CLI and training reach into a kernel folder', () => {
    const out: string[] = [];
    for (const [f, deps] of graph) {
      if (!f.startsWith('src/') || SRC_MAY_IMPORT_KERNELS.some((p) => f.startsWith(p))) continue;
      for (const d of deps) if (d.startsWith('kernels-')) out.push(`${f} imports ${d}`);
    }
    assert.deepEqual(out, []);
  });

  it('the folder graph has no circle and no arrow up: core <- kernels-* <- src', () => {
    const edges = folderEdges(graph);
    const folderGraph = new Map<string, string[]>();
    for (const key of edges.keys()) {
      const [a, b] = key.split(' -> ');
      folderGraph.set(a, [...(folderGraph.get(a) ?? []), b]);
    }
    assert.deepEqual(importCycles(folderGraph), [], [...edges.values()].join('\n'));
    assert.deepEqual(upArrows(edges), []);
    assert.ok(edges.has('src -> core') && edges.has('src -> kernels-webgpu') && edges.has('kernels-webgpu -> core'), 'known folder edges are seen');
  });
});
