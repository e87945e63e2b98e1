/**
 * A small streaming reader for POSIX ustar / GNU tar archives, used on the output of
 * node:zlib's gunzip, so that datasets shipped as .tar.gz need no external programs.
 * Only regular files are reported; headers are checksum-verified.
 */

import {DataError} from './dataset';
import * as nodeFs from 'node:fs';
import * as nodeFsP from 'node:fs/promises';
import * as nodeZlib from 'node:zlib';

export interface TarEntry {
  name: string;
  size: number;
  data: Uint8Array;
}

function readString(b: Uint8Array, off: number, len: number): string {
  let end = off;
  while (end < off + len && b[end] !== 0) end++;
  return Buffer.from(b.subarray(off, end)).toString('utf8');
}

function readOctal(b: Uint8Array, off: number, len: number, what: string, source: string): number {
  // GNU base-256 encoding for large sizes
  if (b[off] & 0x80) {
    let v = 0;
    for (let i = off + 1; i < off + len; i++) v = v * 256 + b[i];
    return v;
  }
  const s = readString(b, off, len).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new DataError(`${source}: corrupt tar header (${what} field '${s}' is not octal)`);
  return parseInt(s, 8);
}

/**
 * Incremental tar parser. Feed it chunks with push(); it calls `onEntry` for every
 * regular file whose name `want(name)` accepts (others are skipped without buffering).
 */
export class TarParser {
  private buf: Uint8Array[] = [];
  private buffered = 0;
  private state: 'header' | 'body' | 'pad' | 'done' = 'header';
  private current: {name: string, size: number, type: string, keep: boolean, parts: Uint8Array[], got: number} | null = null;
  private remaining = 0;
  private longName: string | null = null;
  private zeroBlocks = 0;

  constructor(
      private readonly source: string, private readonly want: (name: string) => boolean,
      private readonly onEntry: (e: TarEntry) => void) {}

  push(chunk: Uint8Array): void {
    let off = 0;
    while (off < chunk.length && this.state !== 'done') {
      if (this.state === 'body') {
        const n = Math.min(this.remaining, chunk.length - off);
        const c = this.current!;
        if (c.keep) c.parts.push(chunk.slice(off, off + n));
        c.got += n;
        this.remaining -= n;
        off += n;
        if (this.remaining === 0) this.finishBody();
        continue;
      }
      if (this.state === 'pad') {
        const n = Math.min(this.remaining, chunk.length - off);
        this.remaining -= n;
        off += n;
        if (this.remaining === 0) this.state = 'header';
        continue;
      }
      // header: gather 512 bytes
      const need = 512 - this.buffered;
      const n = Math.min(need, chunk.length - off);
      this.buf.push(chunk.subarray(off, off + n));
      this.buffered += n;
      off += n;
      if (this.buffered === 512) {
        const block = concat(this.buf, 512);
        this.buf = [];
        this.buffered = 0;
        this.header(block);
      }
    }
  }

  /** Call after the last chunk: checks the archive was not cut short. */
  end(): void {
    if (this.state === 'body' || this.state === 'pad' || this.buffered > 0) {
      const what = this.current ? `inside '${this.current.name}' (${this.current.got} of ${this.current.size} bytes)` : 'inside a header';
      throw new DataError(`${this.source}: truncated tar archive, data ends ${what}`);
    }
  }

  private header(b: Uint8Array): void {
    if (b.every((v) => v === 0)) {
      this.zeroBlocks++;
      if (this.zeroBlocks >= 2) this.state = 'done';
      return;
    }
    this.zeroBlocks = 0;
    const stored = readOctal(b, 148, 8, 'checksum', this.source);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += (i >= 148 && i < 156) ? 32 : b[i];
    if (sum !== stored) {
      throw new DataError(`${this.source}: corrupt tar header (checksum ${stored}, computed ${sum}); ` +
          `the file is not a tar archive or is damaged`);
    }
    let name = readString(b, 0, 100);
    const magic = readString(b, 257, 6);
    if (magic.startsWith('ustar')) {
      const prefix = readString(b, 345, 155);
      if (prefix) name = `${prefix}/${name}`;
    }
    const size = readOctal(b, 124, 12, 'size', this.source);
    const type = String.fromCharCode(b[156] || 48);
    if (this.longName != null && type !== 'L' && type !== 'x') {
      name = this.longName;
      this.longName = null;
    }
    const meta = type === 'L' || type === 'x';
    const regular = type === '0' || type === '7' || b[156] === 0;
    const keep = meta || (regular && this.want(name));
    this.current = {name, size, type, keep, parts: [], got: 0};
    this.remaining = size;
    if (size === 0) this.finishBody();
    else this.state = 'body';
  }

  private finishBody(): void {
    const c = this.current!;
    const data = c.keep ? concat(c.parts, c.size) : new Uint8Array(0);
    if (c.type === 'L') {
      this.longName = readString(data, 0, data.length);
    } else if (c.type === 'x') {
      const text = Buffer.from(data).toString('utf8');
      const m = /\d+ path=([^\n]*)\n/.exec(text);
      if (m) this.longName = m[1];
    } else if (c.keep) {
      this.onEntry({name: c.name, size: c.size, data});
    }
    const pad = (512 - (c.size % 512)) % 512;
    this.remaining = pad;
    this.state = pad > 0 ? 'pad' : 'header';
    this.current = pad > 0 ? c : null;
  }
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1 && parts[0].length === total) return parts[0];
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Streams a .tar.gz (or plain .tar) file through gunzip and the tar parser and returns
 * the regular files that `want` accepts, keyed by their path in the archive.
 */
export async function readTarFiles(path: string, want: (name: string) => boolean): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  const parser = new TarParser(path, want, (e) => out.set(e.name, e.data));
  const fd = await nodeFsP.open(path, 'r');
  const head = Buffer.alloc(2);
  await fd.read(head, 0, 2, 0);
  await fd.close();
  const gz = head[0] === 0x1f && head[1] === 0x8b;
  await new Promise<void>((resolve, reject) => {
    const file = nodeFs.createReadStream(path);
    const stream = gz ? file.pipe(nodeZlib.createGunzip()) : file;
    file.on('error', (e) => reject(new DataError(`${path}: cannot read (${e.message})`)));
    stream.on('error', (e: Error) => reject(new DataError(`${path}: corrupt or truncated gzip data (${e.message})`)));
    stream.on('data', (chunk: Buffer) => {
      try {
        parser.push(chunk);
      } catch (e) {
        file.destroy();
        reject(e);
      }
    });
    stream.on('end', () => {
      try {
        parser.end();
        resolve();
      } catch (e) {
        reject(e);
      }
    });
  });
  return out;
}

/** Builds a ustar archive in memory (used by tests and by scripts that make fixtures). */
export function writeTar(files: Array<{name: string, data: Uint8Array}>): Uint8Array {
  const blocks: Uint8Array[] = [];
  for (const f of files) {
    const h = new Uint8Array(512);
    const enc = (s: string, off: number, len: number) => h.set(Buffer.from(s, 'utf8').subarray(0, len), off);
    if (Buffer.byteLength(f.name) > 100) throw new Error(`writeTar: name longer than 100 bytes: ${f.name}`);
    enc(f.name, 0, 100);
    enc('0000644\0', 100, 8);
    enc('0000000\0', 108, 8);
    enc('0000000\0', 116, 8);
    enc(f.data.length.toString(8).padStart(11, '0') + '\0', 124, 12);
    enc('00000000000\0', 136, 12);
    h[156] = 48;
    enc('ustar\0', 257, 6);
    enc('00', 263, 2);
    for (let i = 148; i < 156; i++) h[i] = 32;
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += h[i];
    enc(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8);
    blocks.push(h, f.data);
    const pad = (512 - (f.data.length % 512)) % 512;
    if (pad) blocks.push(new Uint8Array(pad));
  }
  blocks.push(new Uint8Array(1024));
  return concat(blocks, blocks.reduce((a, b) => a + b.length, 0));
}
