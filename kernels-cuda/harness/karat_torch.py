"""Shared PyTorch helpers for the CUDA harness scripts (torch_direct.py, torch_vit.py).

The Fourier-KArAt math and the kernel binding come from the repository's PyTorch package
(python/tfjs_karat/karat.py), so that each side has it in one place:
- direct_hidden(): the paper's direct Fourier-KArAt, cos/sin features materialised as
  [B, h, N, N, G] tensors (what the fused kernels avoid);
- KaratLib: ctypes binding of kernels-cuda/build/libkarat_cuda.so (the C ABI of
  include/karat_cuda.h), run on PyTorch's current CUDA stream with PyTorch-allocated buffers;
- FusedFourierKArAt: torch.autograd.Function over KaratLib.
Here: read_cases() (reader of the harness --dump file, format in karat_harness.cu), error and
timing helpers, and bench records in the bench/common.ts format, appended as JSON lines.
"""
import json
import os
import statistics
import struct
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))

from tfjs_karat.karat import FusedFourierKArAt, KaratDims, KaratLib, set_lib  # noqa: E402,F401
from tfjs_karat.karat import fourier_hidden_direct as direct_hidden  # noqa: E402,F401


def load_lib(path):
    """KaratLib (also used by FusedFourierKArAt) or None (with the reason printed)."""
    if not path or not os.path.exists(path):
        print(f"fused kernels: library not found at {path!r}; fused variants skipped")
        return None
    try:
        lib = KaratLib(path)
    except OSError as e:
        print(f"fused kernels: cannot load {path}: {e}; fused variants skipped")
        return None
    set_lib(lib)
    return lib


def read_cases(path):
    """Records of a karat_harness --dump file as dicts of CPU float32 tensors."""
    data = open(path, "rb").read()
    off, out = 0, []
    while off < len(data):
        magic, version, name_len = struct.unpack_from("<8sii", data, off)
        if magic != b"KARATCAS" or version != 1:
            raise ValueError(f"bad case record at byte {off}")
        off += 16
        name = data[off:off + name_len].decode()
        off += name_len + (4 - name_len % 4) % 4
        B, h, N, r, G = struct.unpack_from("<5i", data, off)
        off += 20
        rec = {"name": name, "dims": (B, h, N, r, G)}
        for key, shape in (("scores", (B, h, N, N)), ("coeffs", (h, 2, r, N, G)), ("dy", (B, h, N, r)),
                           ("hidden", (B, h, N, r)), ("dscores", (B, h, N, N)), ("dcoeffs", (h, 2, r, N, G))):
            n = 1
            for s in shape:
                n *= s
            rec[key] = torch.frombuffer(bytearray(data[off:off + 4 * n]), dtype=torch.float32).reshape(shape)
            off += 4 * n
        out.append(rec)
    return out


def norm_err(got, ref):
    """max |got - ref| / max |ref| (inf when got has a non-finite value)."""
    got = got.double()
    ref = ref.double()
    if not torch.isfinite(got).all():
        return float("inf")
    den = ref.abs().max().item()
    err = (got - ref).abs().max().item()
    return err / den if den > 0 else err


def time_cuda(fn, warmup, iters):
    """Median and min milliseconds of fn() by CUDA events, one event pair per call."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        e0 = torch.cuda.Event(enable_timing=True)
        e1 = torch.cuda.Event(enable_timing=True)
        e0.record()
        fn()
        e1.record()
        e1.synchronize()
        times.append(e0.elapsed_time(e1))
    return statistics.median(times), min(times)


def device_name():
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def append_records(path, records):
    if not path:
        return
    with open(path, "a") as f:
        for rec in records:
            f.write(json.dumps(rec) + "\n")


def print_records(records):
    for r in records:
        print(f"  {r['case']:<22} {r['impl']:<22} {r['pass']:<9} {r['ms_median']:9.3f} ms  "
              f"{r['peak_bytes'] / 2**20:9.1f} MiB")
