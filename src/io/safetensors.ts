/**
 * The safetensors format (Hugging Face), read and written from bytes, in Node and the browser:
 *
 *     uint64 LE header length n | n bytes of JSON header | raw little-endian tensor data
 *
 * The header maps tensor names to {dtype, shape, data_offsets: [begin, end]} (offsets relative
 * to the first byte after the header), plus an optional "__metadata__" string -> string map.
 *
 * The header is untrusted input. Before anything is allocated from it, the reader checks:
 * the 8-byte length against the buffer and a header cap (default 100 MB, as the reference
 * implementation), the JSON (strict, no duplicate keys), every entry's shape (non-negative
 * integers, element count a safe integer), dtype (one of the format's dtypes) and offsets
 * (integers inside the data section, end - begin = element count x dtype size), and that the
 * tensors tile the data section exactly: no overlaps and no holes (the format forbids unused
 * bytes, so a file cannot hide a second payload). Every failure is a SafetensorsError with one
 * line naming the tensor and the problem.
 *
 * The JSON is read by parseStrictJson (strict_json.ts).
 *
 * Tensor data is decoded to float32 from F32, F16 and BF16; other dtypes are recognised (so
 * their offsets are checked) but reading them is a named error. The writer writes F32.
 */
import {parseStrictJson} from './strict_json';

/** Raised for a malformed or unsupported safetensors file; the message is one line. */
export class SafetensorsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SafetensorsError';
  }
}

/** Byte size of every dtype of the format. */
export const SAFETENSORS_DTYPE_BYTES: Readonly<Record<string, number>> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
};

/** Dtypes this reader converts to float32. */
export const SAFETENSORS_READ_DTYPES = ['F32', 'F16', 'BF16'] as const;
export type SafetensorsFloatDtype = typeof SAFETENSORS_READ_DTYPES[number];

/** Default cap on the JSON header (bytes), as the reference implementation (100 MB). */
export const SAFETENSORS_MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsEntry {
  name: string;
  dtype: string;
  shape: number[];
  /** [begin, end) relative to the start of the data section. */
  dataOffsets: [number, number];
}

export interface SafetensorsReadOptions {
  /** Largest accepted JSON header in bytes (default SAFETENSORS_MAX_HEADER_BYTES). */
  maxHeaderBytes?: number;
}

/** A parsed, validated safetensors file over the caller's bytes (nothing is copied yet). */
export interface SafetensorsFile {
  /** Entries in the header's order. */
  readonly entries: readonly SafetensorsEntry[];
  /** The "__metadata__" map ({} when absent). */
  readonly metadata: Readonly<Record<string, string>>;
  has(name: string): boolean;
  entry(name: string): SafetensorsEntry;
  /** The tensor's values as a new Float32Array (F32, F16 or BF16; other dtypes throw). */
  float32(name: string): Float32Array;
}

export interface SafetensorsTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

// ------------------------------------------------------------------ reader

function fmtShape(shape: unknown): string {
  return Array.isArray(shape) ? `[${shape.map(d => JSON.stringify(d)).join(', ')}]` : JSON.stringify(shape);
}

function isLittleEndianHost(): boolean {
  return new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
}

const LITTLE_ENDIAN = isLittleEndianHost();

/** float16 bits -> float32 (exact: every half value is a float32 value). */
export function halfToFloat(h: number): number {
  const sign = (h & 0x8000) ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;  // zero and subnormals
  if (exp === 0x1f) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** The 8-byte length and the JSON header text, checked against the buffer and the cap. */
function readHeaderText(bytes: Uint8Array, options: SafetensorsReadOptions): {text: string, dataStart: number} {
  if (!(bytes instanceof Uint8Array)) {
    throw new SafetensorsError(`safetensors: expected the file's bytes as a Uint8Array, got ${Object.prototype.toString.call(bytes)}`);
  }
  const cap = options.maxHeaderBytes ?? SAFETENSORS_MAX_HEADER_BYTES;
  if (!Number.isSafeInteger(cap) || cap < 2) {
    throw new SafetensorsError(`safetensors: option 'maxHeaderBytes' must be an integer >= 2, got ${JSON.stringify(cap)}`);
  }
  if (bytes.length < 8) {
    throw new SafetensorsError(`safetensors: file is ${bytes.length} bytes, shorter than the 8-byte header length`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lo = dv.getUint32(0, true), hi = dv.getUint32(4, true);
  const n = hi * 2 ** 32 + lo;  // exact below 2^53; larger values are rejected below anyway
  if (n > bytes.length - 8) {
    throw new SafetensorsError(
        `safetensors: header length ${hi >= 2 ** 21 ? `${hi} * 2^32 + ${lo}` : n} runs past the end of the ` +
        `${bytes.length}-byte file (truncated file, or not safetensors)`);
  }
  if (n > cap) {
    throw new SafetensorsError(`safetensors: header of ${n} bytes exceeds the limit of ${cap} bytes`);
  }
  if (n < 2) throw new SafetensorsError(`safetensors: header length ${n} is too small for a JSON object`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', {fatal: true}).decode(bytes.subarray(8, 8 + n));
  } catch {
    throw new SafetensorsError('safetensors: header is not valid UTF-8');
  }
  if (text[0] !== '{') throw new SafetensorsError(`safetensors: header must start with '{' (a JSON object), got ${JSON.stringify(text.slice(0, 16))}`);
  return {text, dataStart: 8 + n};
}

/** The "__metadata__" entry: an object of strings. */
function parseMetadata(raw: unknown): Record<string, string> {
  if (raw == null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new SafetensorsError(`safetensors: "__metadata__" must be an object of strings, got ${JSON.stringify(raw)}`);
  }
  const md = Object.create(null) as Record<string, string>;
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof v !== 'string') {
      throw new SafetensorsError(`safetensors: "__metadata__" value of ${JSON.stringify(k)} must be a string, got ${JSON.stringify(v)}`);
    }
    md[k] = v;
  }
  return md;
}

/** Element count of a header shape (non-negative integers, the count a safe integer). */
function elementCount(what: string, shape: unknown): number {
  if (!Array.isArray(shape)) throw new SafetensorsError(`${what}: shape must be an array of integers, got ${JSON.stringify(shape)}`);
  let count = 1;
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw new SafetensorsError(`${what}: shape ${fmtShape(shape)} has ${JSON.stringify(d)}, expected non-negative integers`);
    }
    count *= d;
    if (!Number.isSafeInteger(count)) {
      throw new SafetensorsError(`${what}: shape ${fmtShape(shape)} has more elements than can be addressed`);
    }
  }
  return count;
}

/** One tensor entry of the header: its fields, dtype, shape and offsets checked against the data section. */
function parseEntry(name: string, raw: unknown, dataBytes: number): SafetensorsEntry {
  const what = `safetensors: tensor ${JSON.stringify(name)}`;
  if (raw == null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new SafetensorsError(`${what}: entry must be an object {dtype, shape, data_offsets}, got ${JSON.stringify(raw)}`);
  }
  const e = raw as Record<string, unknown>;
  for (const k of Object.keys(e)) {
    if (k !== 'dtype' && k !== 'shape' && k !== 'data_offsets') {
      throw new SafetensorsError(`${what}: unknown field ${JSON.stringify(k)} (expected dtype, shape, data_offsets)`);
    }
  }
  const dtype = e.dtype;
  if (typeof dtype !== 'string' || !Object.prototype.hasOwnProperty.call(SAFETENSORS_DTYPE_BYTES, dtype)) {
    throw new SafetensorsError(
        `${what}: unknown dtype ${JSON.stringify(dtype)} (expected one of ${Object.keys(SAFETENSORS_DTYPE_BYTES).join(', ')})`);
  }
  const shape = e.shape;
  const count = elementCount(what, shape);
  const offs = e.data_offsets;
  if (!Array.isArray(offs) || offs.length !== 2 ||
      !offs.every(o => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0)) {
    throw new SafetensorsError(`${what}: data_offsets must be two non-negative integers [begin, end], got ${JSON.stringify(offs)}`);
  }
  const [begin, end] = offs as [number, number];
  if (end < begin) throw new SafetensorsError(`${what}: data_offsets [${begin}, ${end}] end before they begin`);
  if (end > dataBytes) {
    throw new SafetensorsError(`${what}: data_offsets [${begin}, ${end}] run past the ${dataBytes}-byte data section`);
  }
  const need = count * SAFETENSORS_DTYPE_BYTES[dtype];
  if (end - begin !== need) {
    throw new SafetensorsError(
        `${what}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes, but ${dtype} ${fmtShape(shape)} needs ${need}`);
  }
  return {name, dtype, shape: shape as number[], dataOffsets: [begin, end]};
}

/** The tensors must tile the data section: sorted by begin, each starts where the previous ended. */
function checkTiling(entries: SafetensorsEntry[], dataBytes: number): void {
  const sorted = [...entries].sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let pos = 0;
  let prev: SafetensorsEntry | null = null;
  for (const e of sorted) {
    const [b, en] = e.dataOffsets;
    if (b < pos) {
      throw new SafetensorsError(
          `safetensors: tensor ${JSON.stringify(e.name)}: data_offsets [${b}, ${en}] overlap tensor ` +
          `${JSON.stringify(prev!.name)} [${prev!.dataOffsets[0]}, ${prev!.dataOffsets[1]}]`);
    }
    if (b > pos) {
      throw new SafetensorsError(
          `safetensors: tensor ${JSON.stringify(e.name)}: data_offsets [${b}, ${en}] leave bytes ${pos}..${b} of the ` +
          `data section unused (the format allows no holes)`);
    }
    pos = en;
    prev = e;
  }
  if (pos !== dataBytes) {
    throw new SafetensorsError(
        `safetensors: the tensors cover ${pos} bytes but the data section has ${dataBytes} ` +
        `(trailing bytes; the format allows no holes)`);
  }
}

/**
 * Parses and validates the header of `bytes` (a whole safetensors file). Tensor data stays in
 * `bytes` until read with float32(name).
 */
export function parseSafetensors(bytes: Uint8Array, options: SafetensorsReadOptions = {}): SafetensorsFile {
  const {text, dataStart} = readHeaderText(bytes, options);
  const header = parseStrictJson(text, 'safetensors: header', (m) => new SafetensorsError(m)) as Record<string, unknown>;
  const dataBytes = bytes.length - dataStart;
  let metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  for (const name of Object.keys(header)) {
    if (name === '__metadata__') metadata = parseMetadata(header[name]);
    else entries.push(parseEntry(name, header[name], dataBytes));
  }
  checkTiling(entries, dataBytes);
  const byName = new Map(entries.map(e => [e.name, e]));
  const entry = (name: string): SafetensorsEntry => {
    const e = byName.get(name);
    if (e == null) throw new SafetensorsError(`safetensors: no tensor named ${JSON.stringify(name)}`);
    return e;
  };
  return {
    entries,
    metadata,
    has: (name: string) => byName.has(name),
    entry,
    float32: (name: string) => decode(bytes, dataStart, entry(name)),
  };
}

function decode(bytes: Uint8Array, dataStart: number, e: SafetensorsEntry): Float32Array {
  const begin = dataStart + e.dataOffsets[0], end = dataStart + e.dataOffsets[1];
  const src = bytes.subarray(begin, end);
  switch (e.dtype) {
    case 'F32': {
      if (LITTLE_ENDIAN) {
        // A copy into a fresh buffer: aligned and owned. (Not src.slice(): on a Node Buffer
        // that is a view of the shared pool.)
        const copy = new Uint8Array(src.length);
        copy.set(src);
        return new Float32Array(copy.buffer);
      }
      const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
      const out = new Float32Array(src.length / 4);
      for (let i = 0; i < out.length; i++) out[i] = dv.getFloat32(4 * i, true);
      return out;
    }
    case 'F16': {
      const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
      const out = new Float32Array(src.length / 2);
      for (let i = 0; i < out.length; i++) out[i] = halfToFloat(dv.getUint16(2 * i, true));
      return out;
    }
    case 'BF16': {
      // bfloat16 is the upper half of a float32.
      const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
      const bits = new Uint32Array(src.length / 2);
      for (let i = 0; i < bits.length; i++) bits[i] = dv.getUint16(2 * i, true) << 16 >>> 0;
      return new Float32Array(bits.buffer);
    }
    default:
      throw new SafetensorsError(
          `safetensors: tensor ${JSON.stringify(e.name)} has dtype ${e.dtype}; only ${SAFETENSORS_READ_DTYPES.join(', ')} ` +
          `can be read (as float32)`);
  }
}

/** Reads every tensor of a safetensors file as float32 (header order), with its metadata. */
export function readSafetensors(bytes: Uint8Array, options: SafetensorsReadOptions = {}):
    {tensors: SafetensorsTensor[], metadata: Record<string, string>} {
  const f = parseSafetensors(bytes, options);
  return {
    tensors: f.entries.map(e => ({name: e.name, shape: [...e.shape], data: f.float32(e.name)})),
    metadata: Object.assign(Object.create(null) as Record<string, string>, f.metadata),
  };
}

// ------------------------------------------------------------------ writer

/**
 * Writes tensors (float32) as a safetensors file, in the given order, with optional string
 * metadata. The header is padded with spaces to a multiple of 8 bytes so that the data is
 * aligned (as the reference implementation does).
 */
export function writeSafetensors(tensors: readonly SafetensorsTensor[], metadata?: Record<string, string>): Uint8Array {
  if (!Array.isArray(tensors)) throw new SafetensorsError('safetensors: expected an array of tensors {name, shape, data}');
  const header: Record<string, unknown> = {};
  if (metadata != null) {
    if (typeof metadata !== 'object' || Array.isArray(metadata)) {
      throw new SafetensorsError(`safetensors: metadata must be an object of strings, got ${JSON.stringify(metadata)}`);
    }
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new SafetensorsError(`safetensors: metadata value of ${JSON.stringify(k)} must be a string, got ${JSON.stringify(v)}`);
    }
    header.__metadata__ = {...metadata};
  }
  const seen = new Set<string>();
  let offset = 0;
  for (const t of tensors) {
    const what = `safetensors: tensor ${JSON.stringify(t?.name)}`;
    if (t == null || typeof t.name !== 'string' || t.name.length === 0) throw new SafetensorsError(`${what}: name must be a non-empty string`);
    if (t.name === '__metadata__') throw new SafetensorsError(`${what}: the name is reserved for metadata`);
    if (seen.has(t.name)) throw new SafetensorsError(`${what}: given more than once`);
    seen.add(t.name);
    if (!(t.data instanceof Float32Array)) throw new SafetensorsError(`${what}: data must be a Float32Array`);
    if (!Array.isArray(t.shape) || !t.shape.every((d: number) => Number.isSafeInteger(d) && d >= 0)) {
      throw new SafetensorsError(`${what}: shape must be non-negative integers, got ${fmtShape(t.shape)}`);
    }
    const count = t.shape.reduce((a: number, d: number) => a * d, 1);
    if (count !== t.data.length) {
      throw new SafetensorsError(`${what}: shape ${fmtShape(t.shape)} has ${count} elements, data has ${t.data.length}`);
    }
    header[t.name] = {dtype: 'F32', shape: [...t.shape], data_offsets: [offset, offset + 4 * count]};
    offset += 4 * count;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) {
    const padded = new Uint8Array(json.length + pad).fill(0x20);
    padded.set(json);
    json = padded;
  }
  const out = new Uint8Array(8 + json.length + offset);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, json.length % 2 ** 32, true);
  dv.setUint32(4, Math.floor(json.length / 2 ** 32), true);
  out.set(json, 8);
  let pos = 8 + json.length;
  for (const t of tensors) {
    if (LITTLE_ENDIAN) {
      out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
    } else {
      for (let i = 0; i < t.data.length; i++) dv.setFloat32(pos + 4 * i, t.data[i], true);
    }
    pos += t.data.byteLength;
  }
  return out;
}
