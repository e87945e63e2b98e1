/** CRC-32 (IEEE 802.3, the zlib/PNG polynomial) of byte arrays, for checkpoint checksums. */
import * as nodeZlib from 'node:zlib';

import {crc32Portable} from '../io/crc32';

/** CRC-32 of `b` (continuing from `crc`); Node's native zlib.crc32 when it has one. */
export function crc32(b: Uint8Array, crc = 0): number {
  const native = (nodeZlib as unknown as {crc32?: (d: Uint8Array, v?: number) => number}).crc32;
  return native != null ? native(b, crc) >>> 0 : crc32Portable(b, crc);
}

/** The portable implementation (exported for tests against the native one). */
export {crc32Portable};
