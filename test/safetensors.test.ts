/**
 * The safetensors reader/writer (src/io/safetensors.ts): round trip, F16/BF16 decoding against
 * known bit patterns, and every malformed header the reader must refuse with one named line.
 */
import * as assert from 'node:assert/strict';

import * as karat from '../src/index';

const {parseSafetensors, readSafetensors, writeSafetensors, SafetensorsError, halfToFloat} = karat.io;

/** A file from a raw header (object or string) and data bytes; `len` overrides the length field. */
function file(header: unknown, data: Uint8Array | number = 0, len?: bigint): Uint8Array {
  const h = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const d = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + h.length + d.length);
  new DataView(out.buffer).setBigUint64(0, len ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(d, 8 + h.length);
  return out;
}

function refuses(bytes: Uint8Array, re: RegExp): void {
  assert.throws(() => parseSafetensors(bytes), (e: Error) => {
    assert.ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${e}`);
    assert.equal(e.name, 'SafetensorsError');
    assert.ok(!e.message.includes('\n'), 'one line');
    assert.match(e.message, re);
    return true;
  });
}

const f32 = (n: number) => ({dtype: 'F32', shape: [n], data_offsets: [0, 4 * n]});

describe('safetensors: writer and reader', () => {
  it('round trip: names, order, shapes, values, metadata; header padded to 8 bytes', () => {
    const tensors = [
      {name: 'b', shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 1e-30, -0, Infinity])},
      {name: 'a.weight', shape: [], data: Float32Array.from([Math.PI])},
      {name: 'empty', shape: [0, 4], data: new Float32Array(0)},
      {name: 'nan', shape: [1], data: Float32Array.from([NaN])},
    ];
    const bytes = writeSafetensors(tensors, {format: 'pt', note: 'ü'});
    const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal(headerLen % 8, 0);
    const r = readSafetensors(bytes);
    assert.deepEqual(r.tensors.map(t => t.name), ['b', 'a.weight', 'empty', 'nan']);
    assert.deepEqual(r.tensors.map(t => t.shape), [[2, 3], [], [0, 4], [1]]);
    for (let i = 0; i < 3; i++) assert.deepEqual(Array.from(r.tensors[i].data), Array.from(tensors[i].data));
    assert.ok(Number.isNaN(r.tensors[3].data[0]));
    assert.ok(Object.is(r.tensors[0].data[4], -0));
    assert.deepEqual({...r.metadata}, {format: 'pt', note: 'ü'});
    const f = parseSafetensors(bytes);
    assert.deepEqual(f.entry('b'), {name: 'b', dtype: 'F32', shape: [2, 3], dataOffsets: [0, 24]});
    assert.equal(f.has('zzz'), false);
    assert.throws(() => f.float32('zzz'), /no tensor named "zzz"/);
  });

  it('reads from a Node Buffer that is a view into a larger pool', () => {
    const bytes = writeSafetensors([{name: 'x', shape: [3], data: Float32Array.from([1.5, -2, 3])}]);
    const pool = Buffer.alloc(bytes.length + 64, 0x41);
    pool.set(bytes, 24);
    const view = pool.subarray(24, 24 + bytes.length);
    assert.deepEqual(Array.from(readSafetensors(view).tensors[0].data), [1.5, -2, 3]);
  });

  it('reads tensors at unaligned offsets and in any header order', () => {
    // header of odd length: the data starts at an odd byte
    const data = new Uint8Array(12);
    new DataView(data.buffer).setFloat32(0, 7.25, true);
    new DataView(data.buffer).setFloat32(4, -1.5, true);
    new DataView(data.buffer).setFloat32(8, 2, true);
    const h = JSON.stringify({y: {dtype: 'F32', shape: [1], data_offsets: [8, 12]}, x: {dtype: 'F32', shape: [2], data_offsets: [0, 8]}});
    const bytes = file(h.length % 2 ? h : h + ' ', data);  // trailing whitespace is valid JSON
    assert.equal((bytes.length - 12) % 2, 1);
    const r = readSafetensors(bytes);
    assert.deepEqual(r.tensors.map(t => [t.name, Array.from(t.data)]), [['y', [2]], ['x', [7.25, -1.5]]]);
  });

  it('F16 decodes to known values (normal, subnormal, zero, -0, inf, NaN, max)', () => {
    const cases: Array<[number, number]> = [
      [0x3c00, 1], [0xc000, -2], [0x3555, 0.333251953125], [0x0001, 2 ** -24], [0x03ff, 1023 * 2 ** -24],
      [0x0400, 2 ** -14], [0x7bff, 65504], [0x0000, 0], [0x8000, -0], [0x7c00, Infinity], [0xfc00, -Infinity],
    ];
    const data = new Uint8Array(2 * (cases.length + 1));
    const dv = new DataView(data.buffer);
    cases.forEach(([bits], i) => dv.setUint16(2 * i, bits, true));
    dv.setUint16(2 * cases.length, 0x7e00, true);  // NaN
    const bytes = file({h: {dtype: 'F16', shape: [cases.length + 1], data_offsets: [0, data.length]}}, data);
    const out = parseSafetensors(bytes).float32('h');
    cases.forEach(([bits, v], i) => assert.ok(Object.is(out[i], v), `0x${bits.toString(16)} -> ${out[i]}, expected ${v}`));
    assert.ok(Number.isNaN(out[cases.length]));
    assert.equal(halfToFloat(0x3c01), 1 + 2 ** -10);
  });

  it('BF16 decodes to known values (the upper half of float32)', () => {
    const cases: Array<[number, number]> = [
      [0x3f80, 1], [0xc040, -3], [0x3fc0, 1.5], [0x4049, 3.140625], [0x0001, 2 ** -133],
      [0x7f7f, 3.3895313892515355e38], [0x8000, -0], [0x7f80, Infinity],
    ];
    const data = new Uint8Array(2 * cases.length);
    cases.forEach(([bits], i) => new DataView(data.buffer).setUint16(2 * i, bits, true));
    const out = parseSafetensors(file({b: {dtype: 'BF16', shape: [2, 4], data_offsets: [0, data.length]}}, data)).float32('b');
    cases.forEach(([bits, v], i) => assert.ok(Object.is(out[i], v), `0x${bits.toString(16)} -> ${out[i]}, expected ${v}`));
  });

  it('other dtypes are checked in the header but reading them is a named error', () => {
    const bytes = file({i: {dtype: 'I64', shape: [2], data_offsets: [0, 16]}, f: {dtype: 'F32', shape: [1], data_offsets: [16, 20]}}, 20);
    const f = parseSafetensors(bytes);
    assert.equal(f.float32('f').length, 1);
    assert.throws(() => f.float32('i'), /tensor "i" has dtype I64; only F32, F16, BF16 can be read/);
    assert.throws(() => readSafetensors(bytes), SafetensorsError);
  });

  it('the writer refuses duplicate names, reserved names and shape/data mismatches', () => {
    const t = {name: 'a', shape: [2], data: new Float32Array(2)};
    assert.throws(() => writeSafetensors([t, t]), /tensor "a": given more than once/);
    assert.throws(() => writeSafetensors([{...t, name: '__metadata__'}]), /reserved/);
    assert.throws(() => writeSafetensors([{...t, shape: [3]}]), /shape \[3\] has 3 elements, data has 2/);
    assert.throws(() => writeSafetensors([{...t, shape: [-2]}]), /non-negative integers/);
    assert.throws(() => writeSafetensors([t], {k: 1 as unknown as string}), /metadata value of "k" must be a string/);
  });
});

describe('safetensors: malformed files are refused with one line naming the problem', () => {
  const good = file({a: f32(2)}, 8);

  it('accepts the well-formed baseline (so each case below fails for its own reason)', () => {
    assert.equal(parseSafetensors(good).entries.length, 1);
  });

  it('truncated: shorter than the length field; header length past the end; truncated data', () => {
    refuses(good.subarray(0, 5), /file is 5 bytes, shorter than the 8-byte header length/);
    refuses(good.subarray(0, 20), /header length \d+ runs past the end of the 20-byte file/);
    refuses(file({a: f32(2)}, 8, BigInt(2) ** BigInt(63)), /header length .* runs past the end/);
    refuses(good.subarray(0, good.length - 1), /tensor "a": data_offsets \[0, 8\] run past the 7-byte data section/);
  });

  it('header size cap', () => {
    assert.throws(() => parseSafetensors(good, {maxHeaderBytes: 10}), /header of \d+ bytes exceeds the limit of 10 bytes/);
  });

  it('not JSON, not an object, invalid UTF-8, duplicate keys (top level and inside an entry)', () => {
    refuses(file('{"a": '), /header is not valid JSON: unexpected end/);
    refuses(file('[1, 2]'), /header must start with '\{'/);
    refuses(file('{"a": 1} x'), /unexpected text after the JSON value/);
    const bad = file('{"a":1}');
    bad[10] = 0xff;
    refuses(bad, /not valid UTF-8/);
    refuses(file(`{"a": ${JSON.stringify(f32(1))}, "a": ${JSON.stringify(f32(1))}}`, 4), /the key "a" more than once/);
    refuses(file('{"a": {"dtype": "F32", "dtype": "F16", "shape": [1], "data_offsets": [0, 4]}}', 4), /the key "dtype" more than once/);
  });

  it('entry shape: not an object, unknown fields, __metadata__ not strings', () => {
    refuses(file({a: [1, 2]}), /tensor "a": entry must be an object \{dtype, shape, data_offsets\}/);
    refuses(file({a: {...f32(1), extra: 1}}, 4), /tensor "a": unknown field "extra"/);
    refuses(file({__metadata__: {k: 1}}), /"__metadata__" value of "k" must be a string/);
    refuses(file({__metadata__: [1]}), /"__metadata__" must be an object of strings/);
  });

  it('bad dtype', () => {
    refuses(file({a: {dtype: 'F128', shape: [1], data_offsets: [0, 16]}}, 16), /tensor "a": unknown dtype "F128" \(expected one of BOOL/);
    refuses(file({a: {dtype: 5, shape: [1], data_offsets: [0, 4]}}, 4), /tensor "a": unknown dtype 5/);
  });

  it('negative, fractional, non-numeric dims; element counts that cannot be addressed', () => {
    refuses(file({w: {dtype: 'F32', shape: [-1, 2], data_offsets: [0, 0]}}), /tensor "w": shape \[-1, 2\] has -1, expected non-negative integers/);
    refuses(file({w: {dtype: 'F32', shape: [1.5], data_offsets: [0, 6]}}, 6), /tensor "w": shape \[1.5\] has 1.5/);
    refuses(file({w: {dtype: 'F32', shape: ['2'], data_offsets: [0, 8]}}, 8), /tensor "w": shape \["2"\] has "2"/);
    refuses(file({w: {dtype: 'F32', shape: 4, data_offsets: [0, 16]}}, 16), /tensor "w": shape must be an array/);
    refuses(file({w: {dtype: 'F32', shape: [2 ** 30, 2 ** 30, 2 ** 30], data_offsets: [0, 8]}}, 8), /more elements than can be addressed/);
  });

  it('huge declared sizes are refused before any allocation', () => {
    refuses(file({w: {dtype: 'F32', shape: [2 ** 40], data_offsets: [0, 2 ** 42]}}, 8), /data_offsets \[0, 4398046511104\] run past the 8-byte data section/);
    refuses(file({w: {dtype: 'F32', shape: [2], data_offsets: [0, 2 ** 60]}}, 8), /data_offsets must be two non-negative integers/);
  });

  it('data_offsets: malformed, reversed, out of range, wrong byte count', () => {
    refuses(file({a: {dtype: 'F32', shape: [2], data_offsets: [0]}}, 8), /tensor "a": data_offsets must be two non-negative integers/);
    refuses(file({a: {dtype: 'F32', shape: [2], data_offsets: [-8, 0]}}, 8), /data_offsets must be two non-negative integers/);
    refuses(file({a: {dtype: 'F32', shape: [2], data_offsets: [0, 7.5]}}, 8), /data_offsets must be two non-negative integers/);
    refuses(file({a: {dtype: 'F32', shape: [0], data_offsets: [8, 0]}}, 8), /data_offsets \[8, 0\] end before they begin/);
    refuses(file({a: {dtype: 'F32', shape: [2], data_offsets: [4, 12]}}, 8), /tensor "a": data_offsets \[4, 12\] run past the 8-byte data section/);
    refuses(file({a: {dtype: 'F32', shape: [2], data_offsets: [0, 6]}}, 8), /tensor "a": data_offsets \[0, 6\] hold 6 bytes, but F32 \[2\] needs 8/);
    refuses(file({a: {dtype: 'BF16', shape: [3], data_offsets: [0, 8]}}, 8), /hold 8 bytes, but BF16 \[3\] needs 6/);
  });

  it('overlapping tensors, holes between tensors, trailing bytes', () => {
    refuses(file({a: {dtype: 'F32', shape: [2], data_offsets: [0, 8]}, b: {dtype: 'F32', shape: [2], data_offsets: [4, 12]}}, 12),
            /tensor "b": data_offsets \[4, 12\] overlap tensor "a" \[0, 8\]/);
    refuses(file({a: {dtype: 'F32', shape: [1], data_offsets: [0, 4]}, b: {dtype: 'F32', shape: [1], data_offsets: [0, 4]}}, 4),
            /overlap tensor/);
    refuses(file({a: {dtype: 'F32', shape: [1], data_offsets: [0, 4]}, b: {dtype: 'F32', shape: [1], data_offsets: [8, 12]}}, 12),
            /tensor "b": data_offsets \[8, 12\] leave bytes 4..8 of the data section unused/);
    refuses(file({a: {dtype: 'F32', shape: [1], data_offsets: [4, 8]}}, 8), /leave bytes 0..4/);
    refuses(file({a: f32(1)}, 9), /the tensors cover 4 bytes but the data section has 9/);
  });

  it('a file of zero tensors is valid; a header of fewer than 2 bytes is not', () => {
    assert.equal(parseSafetensors(file({})).entries.length, 0);
    refuses(file('{'), /too small|not valid JSON/);
  });
});
