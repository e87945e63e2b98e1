/** CRC-32 (IEEE 802.3, the zlib/PNG polynomial) of byte arrays, for checkpoint checksums. */
import * as nodeZlib from 'node:zlib';

let table: Uint32Array | null = null;

function jsCrc32(b: Uint8Array, crc: number): number {
  if (table == null) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let c = ~crc >>> 0;
  for (let i = 0; i < b.length; i++) c = table[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** CRC-32 of `b` (continuing from `crc`); Node's native zlib.crc32 when it has one. */
export function crc32(b: Uint8Array, crc = 0): number {
  const native = (nodeZlib as unknown as {crc32?: (d: Uint8Array, v?: number) => number}).crc32;
  return native != null ? native(b, crc) >>> 0 : jsCrc32(b, crc);
}

/** The portable implementation (exported for tests against the native one). */
export const crc32Portable = (b: Uint8Array, crc = 0): number => jsCrc32(b, crc);
