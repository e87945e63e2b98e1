/**
 * A minimal PNG encoder (8-bit RGBA or RGB, no interlace) in plain JavaScript, so the analysis
 * API can write images in Node and in the browser without a dependency.
 *
 * By default the zlib stream holds stored (uncompressed) deflate blocks, which every PNG
 * decoder reads. Pass `deflate` to compress: in Node, `zlib.deflateSync` (the CLI does); in a
 * browser the page can draw RGBA into a canvas instead. Layout (PNG spec, ISO/IEC 15948):
 * signature, IHDR, IDAT (zlib: header, deflate blocks, Adler-32), IEND; each chunk carries a
 * CRC-32 of its type and data. Every scanline gets filter type 0 (none).
 */

import {crc32Portable} from '../io/crc32';
import {concatArrays} from '../io/typed_arrays';

export interface PNGOptions {
  /** Compressor producing a zlib stream (RFC 1950), e.g. Node's zlib.deflateSync. */
  deflate?: (raw: Uint8Array) => Uint8Array;
}

function adler32(bytes: Uint8Array): number {
  let a = 1, b = 0;
  const MOD = 65521;
  for (let i = 0; i < bytes.length;) {
    const end = Math.min(bytes.length, i + 5552);  // largest run without overflow
    for (; i < end; i++) {
      a += bytes[i];
      b += a;
    }
    a %= MOD;
    b %= MOD;
  }
  return ((b << 16) | a) >>> 0;
}

/** zlib stream of stored deflate blocks (no compression). */
export function zlibStored(raw: Uint8Array): Uint8Array {
  const BLOCK = 65535;
  const blocks = Math.max(1, Math.ceil(raw.length / BLOCK));
  const out = new Uint8Array(2 + blocks * 5 + raw.length + 4);
  let o = 0;
  out[o++] = 0x78;  // CMF: deflate, 32K window
  out[o++] = 0x01;  // FLG: no dictionary, check bits so that (CMF·256 + FLG) % 31 == 0
  for (let b = 0; b < blocks; b++) {
    const start = b * BLOCK;
    const len = Math.min(BLOCK, raw.length - start);
    out[o++] = b === blocks - 1 ? 1 : 0;  // BFINAL, BTYPE = 00 (stored)
    out[o++] = len & 0xff;
    out[o++] = len >>> 8;
    out[o++] = ~len & 0xff;
    out[o++] = (~len >>> 8) & 0xff;
    out.set(raw.subarray(start, start + len), o);
    o += len;
  }
  const ad = adler32(raw);
  out[o++] = ad >>> 24;
  out[o++] = (ad >>> 16) & 0xff;
  out[o++] = (ad >>> 8) & 0xff;
  out[o++] = ad & 0xff;
  return out;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  dv.setUint32(8 + data.length, crc32Portable(out.subarray(4, 8 + data.length)));
  return out;
}

/**
 * Encodes `pixels` (width·height·channels bytes, row-major, channels 4 = RGBA or 3 = RGB) as a
 * PNG file.
 */
export function encodePNG(
    pixels: Uint8Array | Uint8ClampedArray, width: number, height: number, channels: 3 | 4 = 4,
    options: PNGOptions = {}): Uint8Array {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error(`encodePNG: width and height must be integers >= 1, got ${width}x${height}`);
  }
  if (channels !== 3 && channels !== 4) {
    throw new Error(`encodePNG: channels must be 3 (RGB) or 4 (RGBA), got ${channels}`);
  }
  if (pixels.length !== width * height * channels) {
    throw new Error(
        `encodePNG: expected ${width}·${height}·${channels} = ${width * height * channels} bytes, ` +
        `got ${pixels.length}`);
  }
  const stride = width * channels;
  const raw = new Uint8Array((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (stride + 1)] = 0;
    raw.set(pixels.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  }
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  ihdr[8] = 8;                          // bit depth
  ihdr[9] = channels === 4 ? 6 : 2;     // colour type: RGBA or RGB
  ihdr[10] = 0;                         // deflate
  ihdr[11] = 0;                         // adaptive filtering
  ihdr[12] = 0;                         // no interlace
  const idat = options.deflate != null ? options.deflate(raw) : zlibStored(raw);
  const parts = [
    Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', idat), chunk('IEND', new Uint8Array(0)),
  ];
  return concatArrays(Uint8Array, parts);
}

/** base64 of bytes (for data: URIs), without Buffer or btoa. */
export function base64(bytes: Uint8Array): string {
  const A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += A[n >>> 18] + A[(n >>> 12) & 63] + A[(n >>> 6) & 63] + A[n & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i] << 16;
    out += A[n >>> 18] + A[(n >>> 12) & 63] + '==';
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += A[n >>> 18] + A[(n >>> 12) & 63] + A[(n >>> 6) & 63] + '=';
  }
  return out;
}

/** `data:image/png;base64,...` for embedding a PNG in SVG or HTML. */
export function pngDataURI(png: Uint8Array): string {
  return `data:image/png;base64,${base64(png)}`;
}
