/**
 * Node-only helpers for kernels-cuda, written so that the browser/UMD bundle never imports a
 * Node builtin: everything is reached lazily through `process.getBuiltinModule` (Node >= 20.16)
 * or the CommonJS `require` when one is in scope. In a browser these return null.
 */

/** Minimal views of the Node builtins used (typed here so no Node import is needed). */
export interface NodeFs {
  existsSync(path: string): boolean;
}
export interface NodePath {
  join(...parts: string[]): string;
  resolve(...parts: string[]): string;
  dirname(p: string): string;
}
export type RequireFn = ((id: string) => unknown) & {resolve(id: string): string};

interface NodeProcessLike {
  versions?: {node?: string};
  cwd(): string;
  env: Record<string, string | undefined>;
  getBuiltinModule?: (id: string) => unknown;
}

function nodeProcess(): NodeProcessLike | null {
  const proc = (globalThis as {process?: NodeProcessLike}).process;
  return proc != null && proc.versions != null && proc.versions.node != null ? proc : null;
}

/** True when running under Node.js. */
export function isNode(): boolean {
  return nodeProcess() != null;
}

/** A Node builtin module by name, or null (browser, or a Node without getBuiltinModule/require). */
export function nodeBuiltin<T>(id: string): T | null {
  const proc = nodeProcess();
  if (proc == null) return null;
  if (typeof proc.getBuiltinModule === 'function') return (proc.getBuiltinModule(id) as T) ?? null;
  if (typeof require === 'function') return require(id) as T;
  return null;
}

/** A `require` resolving from `baseDir` (default: the working directory), or null. */
export function nodeRequire(baseDir?: string): RequireFn | null {
  const proc = nodeProcess();
  const mod = nodeBuiltin<{createRequire(p: string): RequireFn}>('module');
  if (proc == null || mod == null) return null;
  const base = baseDir ?? proc.cwd();
  return mod.createRequire(base.endsWith('/') ? base : base + '/');
}

/** An environment variable, or undefined outside Node. */
export function envVar(name: string): string | undefined {
  const proc = nodeProcess();
  return proc == null ? undefined : proc.env[name];
}

/** The error message of anything thrown. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
