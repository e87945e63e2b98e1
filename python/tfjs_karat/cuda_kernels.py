"""The CUDA kernels of kernels-cuda for PyTorch: libkarat_cuda.so (the C ABI of
include/karat_cuda.h) through ctypes on PyTorch's current CUDA stream, the library in use
(set_lib / load_lib / cuda_lib) and FusedFourierKArAt, the autograd Function of the Fourier hidden
states over it (karat.fourier_hidden uses it when the library is loaded and the tensors are on CUDA)."""
import ctypes
import os

import torch


class KaratDims(ctypes.Structure):
    _fields_ = [("batch", ctypes.c_int), ("heads", ctypes.c_int), ("tokens", ctypes.c_int),
                ("rank", ctypes.c_int), ("grid", ctypes.c_int)]


class KaratLib:
    """kernels-cuda/build/libkarat_cuda.so (C ABI of include/karat_cuda.h) on PyTorch's current
    CUDA stream with PyTorch-allocated buffers; tensors must be contiguous float32 on CUDA."""

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
        if not (t.is_cuda and t.dtype == torch.float32 and t.is_contiguous()):
            raise ValueError("karat CUDA kernels need contiguous float32 CUDA tensors")
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

DEFAULT_LIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "kernels-cuda", "build",
                           "libkarat_cuda.so")


def set_lib(lib):
    """Uses `lib` (a KaratLib, or None for plain PyTorch ops) for Fourier hidden states on CUDA."""
    global _LIB
    _LIB = lib


def cuda_lib():
    return _LIB


def load_lib(path=None, quiet=False):
    """Loads the CUDA kernels (default: kernels-cuda/build/libkarat_cuda.so, or $KARAT_CUDA_LIB)
    and uses them; returns the KaratLib, or None (plain PyTorch ops) with the reason printed."""
    path = path or os.environ.get("KARAT_CUDA_LIB") or DEFAULT_LIB
    if not os.path.exists(path):
        if not quiet:
            print(f"karat CUDA kernels: library not found at {path!r}; using plain PyTorch ops")
        return None
    try:
        lib = KaratLib(path)
    except OSError as e:
        if not quiet:
            print(f"karat CUDA kernels: cannot load {path}: {e}; using plain PyTorch ops")
        return None
    set_lib(lib)
    return lib


class FusedFourierKArAt(torch.autograd.Function):
    """ĥ = fourier_hidden(scores, coeffs) by the CUDA kernels (forward and backward)."""

    @staticmethod
    def forward(ctx, scores, coeffs):
        scores = scores.contiguous()
        coeffs = coeffs.contiguous()
        ctx.save_for_backward(scores, coeffs)
        return _LIB.forward(scores, coeffs)

    @staticmethod
    def backward(ctx, dy):
        scores, coeffs = ctx.saved_tensors
        return _LIB.backward(dy.contiguous(), scores, coeffs)
