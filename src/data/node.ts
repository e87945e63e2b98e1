/**
 * Lazy access to Node's built-in modules. The data and training code is exported from the
 * package entry, which is also bundled for browsers (UMD, esbuild): static `node:` imports
 * would break those bundles, so built-ins are fetched only when a Node-only function runs
 * (process.getBuiltinModule on Node >= 20.16, else require in CommonJS builds).
 */
import type * as Crypto from 'node:crypto';
import type * as Fs from 'node:fs';
import type * as FsP from 'node:fs/promises';
import type * as Http from 'node:http';
import type * as Https from 'node:https';
import type * as Module from 'node:module';
import type * as Os from 'node:os';
import type * as Path from 'node:path';
import type * as Url from 'node:url';
import type * as Zlib from 'node:zlib';

declare const require: ((id: string) => unknown) | undefined;

const cache = new Map<string, unknown>();

export function nodeModule<T>(name: string): T {
  const hit = cache.get(name);
  if (hit) return hit as T;
  const p = (globalThis as {process?: {getBuiltinModule?: (id: string) => unknown}}).process;
  let m: unknown = typeof p?.getBuiltinModule === 'function' ? p.getBuiltinModule(name) : undefined;
  if (m == null && typeof require === 'function') m = require(name);
  if (m == null) throw new Error(`'${name}' is not available: this function needs Node.js (>= 20.16, or the CommonJS build)`);
  cache.set(name, m);
  return m as T;
}

export const nodeFs = () => nodeModule<typeof Fs>('node:fs');
export const nodeFsP = () => nodeModule<typeof FsP>('node:fs/promises');
export const nodePath = () => nodeModule<typeof Path>('node:path');
export const nodeZlib = () => nodeModule<typeof Zlib>('node:zlib');
export const nodeCrypto = () => nodeModule<typeof Crypto>('node:crypto');
export const nodeHttp = () => nodeModule<typeof Http>('node:http');
export const nodeHttps = () => nodeModule<typeof Https>('node:https');
export const nodeOs = () => nodeModule<typeof Os>('node:os');
export const nodeUrl = () => nodeModule<typeof Url>('node:url');
export const nodeModuleApi = () => nodeModule<typeof Module>('node:module');
