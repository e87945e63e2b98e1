"""Shared PyTorch helpers for the CUDA harness scripts (torch_direct.py, torch_vit.py).

- direct_hidden(): the paper's direct Fourier-KArAt, cos/sin features materialised as
  [B, h, N, N, G] tensors (what the fused kernels avoid).
- KaratLib: ctypes binding of kernels-cuda/build/libkarat_cuda.so (the C ABI of
  include/karat_cuda.h), run on PyTorch's current CUDA stream with PyTorch-allocated buffers.
- FusedFourierKArAt: torch.autograd.Function over KaratLib.
- read_cases(): reader of the harness --dump file (format in karat_harness.cu).
- bench records in the bench/common.ts format, appended as JSON lines.
"""
import ctypes
import json
import os
import statistics
import struct

import torch


def direct_hidden(scores, coeffs):
    """scores [B,h,N,N], coeffs [h,2,r,N,G] -> hidden [B,h,N,r] with materialised features."""
    B, h, N, _ = scores.shape
    r, G = coeffs.shape[2], coeffs.shape[4]
    m = torch.arange(1, G + 1, device=scores.device, dtype=scores.dtype)
    ang = scores.unsqueeze(-1) * m                                  # [B,h,N,N,G]
    cos = torch.cos(ang).reshape(B, h, N, N * G)
    sin = torch.sin(ang).reshape(B, h, N, N * G)
    a = coeffs[:, 0].reshape(h, r, N * G).transpose(1, 2).unsqueeze(0)  # [1,h,NG,r]
    b = coeffs[:, 1].reshape(h, r, N * G).transpose(1, 2).unsqueeze(0)
    return torch.matmul(cos, a) + torch.matmul(sin, b)


class KaratDims(ctypes.Structure):
    _fields_ = [("batch", ctypes.c_int), ("heads", ctypes.c_int), ("tokens", ctypes.c_int),
                ("rank", ctypes.c_int), ("grid", ctypes.c_int)]


class KaratLib:
    """The fused kernels through ctypes; tensors must be contiguous float32 on the current device."""

    def __init__(self, path):
        self.path = path
        lib = ctypes.CDLL(path)
        vp, sz = ctypes.c_void_p, ctypes.c_size_t
        dims_p = ctypes.POINTER(KaratDims)
        lib.karat_fourier_fwd.argtypes = [vp, vp, vp, dims_p, vp]
        lib.karat_fourier_fwd.restype = ctypes.c_int
        lib.karat_fourier_bwd.argtypes = [vp, vp, vp, vp, vp, vp, sz, dims_p, vp]
        lib.karat_fourier_bwd.restype = ctypes.c_int
        lib.karat_fourier_bwd_workspace_bytes.argtypes = [dims_p]
        lib.karat_fourier_bwd_workspace_bytes.restype = sz
        lib.karat_status_string.argtypes = [ctypes.c_int]
        lib.karat_status_string.restype = ctypes.c_char_p
        lib.karat_last_cuda_error.restype = ctypes.c_int
        lib.karat_abi_version.restype = ctypes.c_int
        self.lib = lib
        self.abi = lib.karat_abi_version()

    @staticmethod
    def dims(scores, coeffs):
        B, h, N, _ = scores.shape
        return KaratDims(B, h, N, coeffs.shape[2], coeffs.shape[4])

    def _check(self, status, what):
        if status != 0:
            msg = self.lib.karat_status_string(status).decode()
            raise RuntimeError(f"{what}: {msg} (cuda error {self.lib.karat_last_cuda_error()})")

    @staticmethod
    def _ptr(t):
        assert t.is_cuda and t.dtype == torch.float32 and t.is_contiguous(), "need contiguous float32 CUDA tensors"
        return ctypes.c_void_p(t.data_ptr())

    def workspace_bytes(self, scores, coeffs):
        d = self.dims(scores, coeffs)
        return self.lib.karat_fourier_bwd_workspace_bytes(ctypes.byref(d))

    def forward(self, scores, coeffs):
        d = self.dims(scores, coeffs)
        out = torch.empty((d.batch, d.heads, d.tokens, d.rank), device=scores.device, dtype=torch.float32)
        stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
        self._check(self.lib.karat_fourier_fwd(self._ptr(scores), self._ptr(coeffs), self._ptr(out),
                                               ctypes.byref(d), stream), "karat_fourier_fwd")
        return out

    def backward(self, dy, scores, coeffs):
        d = self.dims(scores, coeffs)
        ws_bytes = self.lib.karat_fourier_bwd_workspace_bytes(ctypes.byref(d))
        ws = torch.empty(((ws_bytes + 3) // 4,), device=scores.device, dtype=torch.float32)
        dS = torch.empty_like(scores)
        dC = torch.empty_like(coeffs)
        stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
        self._check(self.lib.karat_fourier_bwd(self._ptr(dy), self._ptr(scores), self._ptr(coeffs),
                                               self._ptr(dS), self._ptr(dC), self._ptr(ws),
                                               ctypes.c_size_t(ws_bytes), ctypes.byref(d), stream),
                    "karat_fourier_bwd")
        return dS, dC


_LIB = None


def set_lib(lib):
    global _LIB
    _LIB = lib


class FusedFourierKArAt(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scores, coeffs):
        scores = scores.contiguous()
        coeffs = coeffs.contiguous()
        ctx.save_for_backward(scores, coeffs)
        return _LIB.forward(scores, coeffs)

    @staticmethod
    def backward(ctx, dy):
        scores, coeffs = ctx.saved_tensors
        dS, dC = _LIB.backward(dy.contiguous(), scores, coeffs)
        return dS, dC


def load_lib(path):
    """KaratLib or None (with the reason printed)."""
    if not path or not os.path.exists(path):
        print(f"fused kernels: library not found at {path!r}; fused variants skipped")
        return None
    try:
        lib = KaratLib(path)
        set_lib(lib)
        return lib
    except OSError as e:
        print(f"fused kernels: cannot load {path}: {e}; fused variants skipped")
        return None


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
