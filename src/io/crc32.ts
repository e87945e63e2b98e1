/** CRC-32 (IEEE 802.3, the zlib/PNG polynomial) in plain TypeScript, for any environment. */

let table: Uint32Array | null = null;

/** CRC-32 of `b` (continuing from `crc`, 0 for a fresh sum). */
export function crc32Portable(b: Uint8Array, crc = 0): number {
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
