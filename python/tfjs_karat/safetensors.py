"""A small safetensors reader/writer (no dependency on the safetensors package).

File: 8-byte little-endian header length | JSON header | raw little-endian tensor bytes. The
header maps tensor names to {dtype, shape, data_offsets: [begin, end]} (offsets relative to the
first byte after the header) plus an optional "__metadata__" string -> string map.

The reader accepts F32, F16 and BF16 (returned as float32) and validates the whole header
against the file size before it allocates any tensor; the writer writes F32.
"""
import json
import os
import struct

import numpy as np
import torch

MAX_HEADER_BYTES = 100_000_000  # as the TypeScript reader (and the reference implementation)
_ITEMSIZE = {"F32": 4, "F16": 2, "BF16": 2}
_KNOWN_DTYPES = {"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "U16", "U32", "U64", "BOOL",
                 "F8_E4M3", "F8_E5M2"}


class SafetensorsError(ValueError):
    """A file that is not valid safetensors, or holds something this reader does not accept."""


class _DuplicateKey(Exception):
    pass


class _BadConstant(Exception):
    pass


def _unique_keys(pairs):
    """json object hook: a key given twice is an error (json.loads would keep the last one)."""
    out = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def _no_constant(name):
    raise _BadConstant(name)


def loads_strict(text):
    """json.loads refusing duplicate keys and NaN/Infinity (as the TypeScript strict reader); ValueError."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except _DuplicateKey as e:
        raise ValueError(f"the key {json.dumps(e.args[0])} is given more than once") from None
    except _BadConstant as e:
        raise ValueError(f"{e.args[0]} is not a JSON value") from None


def read_header(path):
    """(header dict without __metadata__, metadata dict, data start offset, file size), validated."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise SafetensorsError(f"{path}: {size} bytes, too short for a safetensors file (8-byte header length)")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER_BYTES or 8 + n > size:
            raise SafetensorsError(f"{path}: header length {n} does not fit the file ({size} bytes) "
                                   f"or exceeds {MAX_HEADER_BYTES} bytes; not a safetensors file or truncated")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"{path}: the header is not valid JSON ({e})") from None
    except _DuplicateKey as e:
        raise SafetensorsError(f"{path}: the header has the key {json.dumps(e.args[0])} more than once") from None
    except _BadConstant as e:
        raise SafetensorsError(f"{path}: the header is not valid JSON ({e.args[0]} is not a JSON value)") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: the header must be a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise SafetensorsError(f"{path}: __metadata__ must be a map of strings to strings")
    data_len = size - 8 - n
    spans = []
    for name, e in header.items():
        if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
            raise SafetensorsError(f"{path}: tensor '{name}' must have exactly dtype, shape and data_offsets")
        dt, shape, offs = e["dtype"], e["shape"], e["data_offsets"]
        if dt not in _ITEMSIZE:
            what = "a known safetensors dtype" if dt in _KNOWN_DTYPES else "not a safetensors dtype"
            raise SafetensorsError(f"{path}: tensor '{name}' has dtype {dt!r} ({what}); this reader accepts F32, F16, BF16")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise SafetensorsError(f"{path}: tensor '{name}' has an invalid shape {shape!r}")
        if (not isinstance(offs, list) or len(offs) != 2 or not all(isinstance(o, int) and not isinstance(o, bool) for o in offs)
                or not 0 <= offs[0] <= offs[1] <= data_len):
            raise SafetensorsError(f"{path}: tensor '{name}' has data_offsets {offs!r} outside the data "
                                   f"section ({data_len} bytes)")
        count = 1
        for d in shape:
            count *= d
        if offs[1] - offs[0] != count * _ITEMSIZE[dt]:
            raise SafetensorsError(f"{path}: tensor '{name}' {dt} {shape} needs {count * _ITEMSIZE[dt]} bytes, "
                                   f"data_offsets span {offs[1] - offs[0]}")
        spans.append((offs[0], offs[1], name))
    spans.sort()
    for (b0, e0, n0), (b1, _, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise SafetensorsError(f"{path}: tensors '{n0}' and '{n1}' overlap")
    # as the TypeScript reader: the tensors cover the data section exactly, with no hole and
    # no trailing bytes (hidden bytes could otherwise ride along unread)
    covered = 0
    for b, e, name in spans:
        if b > covered:
            raise SafetensorsError(f"{path}: {b - covered} unused bytes before tensor '{name}' at offset {covered} "
                                   f"(the format allows no holes)")
        covered = max(covered, e)
    if covered != data_len:
        raise SafetensorsError(f"{path}: {data_len - covered} bytes after the last tensor's data "
                               f"(trailing bytes; the format allows no holes)")
    return header, meta, 8 + n, size


def load(path):
    """(dict name -> float32 torch tensor, metadata dict)."""
    header, meta, start, _ = read_header(path)
    out = {}
    with open(path, "rb") as f:
        for name, e in header.items():
            b, end = e["data_offsets"]
            f.seek(start + b)
            buf = f.read(end - b)
            dt = e["dtype"]
            if dt == "F32":
                a = np.frombuffer(buf, dtype="<f4").astype(np.float32)
            elif dt == "F16":
                a = np.frombuffer(buf, dtype="<f2").astype(np.float32)
            else:  # BF16: the upper 16 bits of a float32
                a = (np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
            out[name] = torch.from_numpy(a.copy()).reshape(e["shape"])
    return out, meta


def save(path, tensors, metadata=None):
    """Writes float32 `tensors` (name -> tensor, in the given order) and string `metadata`,
    atomically (temp file in the same directory, fsync, rename)."""
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        a = t.detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4", copy=False)
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise SafetensorsError("metadata must map strings to strings")
        header = {"__metadata__": dict(metadata), **header}
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    write_atomic(path, [struct.pack("<Q", len(h)), h] + blobs)


def write_atomic(path, chunks):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = os.path.join(d, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            for c in chunks:
                f.write(c)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
