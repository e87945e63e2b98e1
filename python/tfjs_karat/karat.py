"""The KArAt operator math for PyTorch, in one place (the TypeScript side's counterpart is
src/bases/* and core/fourier_karat.ts).

Shapes (spec: scores [B, h, N, N]; R = r, or N for rank 'full'):
  fourier   coeffs [h, 2, R, N, G] (index 0 = cosine A, 1 = sine B)
  rational  numerator [h, R, N, m+1], denominator [h, R, N, n] (when n >= 1)
  wavelets  waveletWeight, translation, scale [h, R, N] (mexican_hat, morlet, dog, meyer, shannon)
  bspline   splineCoeffs [h, R, N, G+k]
  proj      [h, N, r] unless rank 'full';  baseWeight [h, R, N] unless baseActivation 'zero'

hidden ĥ [B, h, N, R], ĥ[b,h,i,p] = Σ_q φ̂_pq(S[b,h,i,q]) (+ Σ_q baseWeight[h,p,q] b(S[b,h,i,q]));
σ̂(S) = ĥ Wᵀ; σ̂(S) V = ĥ (Wᵀ V) (the fold: the N x N activated attention is never formed).

Fourier hidden states use the CUDA kernels of kernels-cuda (libkarat_cuda.so through ctypes,
cuda_kernels.py) when that library is loaded and the tensors are on a CUDA device; plain PyTorch
ops otherwise.
"""
import math

import torch

from .cuda_kernels import (DEFAULT_LIB, FusedFourierKArAt, KaratDims, KaratLib, cuda_lib, load_lib,  # noqa: F401
                           set_lib)

BASIS_NAMES = ("fourier", "rational", "mexican_hat", "morlet", "dog", "meyer", "shannon", "bspline")
BASE_ACTIVATIONS = ("zero", "silu", "identity")
OPERATOR_KEYS = ("basis", "grid", "rank", "baseActivation", "rationalOrder", "splineOrder", "gridRange",
                 "init", "projInit", "seed")
LAYER_KEYS = ("type", "mode", "shareName")


class KArAtConfigError(ValueError):
    """An invalid KArAt / ViT configuration (names the field)."""


# ---------------------------------------------------------------------------------------- config

def _key(s):
    return s.replace("_", "").replace("-", "").replace(" ", "").lower() if isinstance(s, str) else None


def _match(value, allowed):
    k = _key(value)
    return next((a for a in allowed if _key(a) == k), None) if k is not None else None


def _pos_int(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def resolve_attention(act, arg="attention"):
    """'softmax' or a KArAtAttentionConfig dict (as the TypeScript resolveAttention) ->
    None for softmax, or a dict with every operator field filled plus 'mode' and 'shareName'."""
    if act is None or act == "softmax" or _match(act, ("softmax",)):
        return None
    if isinstance(act, str):
        b = _match(act, BASIS_NAMES)
        if b is None:
            raise KArAtConfigError(f"{arg} must be 'softmax' or a KArAt config object, got {act!r}")
        act = {"basis": b}
    if not isinstance(act, dict):
        raise KArAtConfigError(f"{arg} must be 'softmax' or a KArAt config object, got {act!r}")
    for k in act:
        if k not in OPERATOR_KEYS and k not in LAYER_KEYS:
            raise KArAtConfigError(f"{arg} has an unknown key '{k}'; known keys: {', '.join(OPERATOR_KEYS + LAYER_KEYS)}")
    op = {k: act[k] for k in OPERATOR_KEYS if act.get(k) is not None}
    if "basis" in op:
        b = _match(op["basis"], BASIS_NAMES)
        if b is None:
            raise KArAtConfigError(f"{arg}.basis must be one of {', '.join(BASIS_NAMES)}, got {op['basis']!r}")
        op["basis"] = b
    t = act.get("type")
    if t is not None:
        if _match(t, ("softmax",)):
            return None
        tt = _match(t, BASIS_NAMES + ("karat",))
        if tt is None:
            raise KArAtConfigError(f"{arg}.type must be 'softmax', 'karat' or a basis ({', '.join(BASIS_NAMES)}), got {t!r}")
        if tt != "karat":
            if "basis" in op and op["basis"] != tt:
                raise KArAtConfigError(f"{arg}.type '{tt}' contradicts {arg}.basis '{op['basis']}'")
            op["basis"] = tt
    out = {"basis": op.get("basis", "fourier"), "grid": op.get("grid", 3), "rank": op.get("rank", 12),
           "baseActivation": _match(op.get("baseActivation", "zero"), BASE_ACTIVATIONS) or op.get("baseActivation"),
           "rationalOrder": list(op.get("rationalOrder", [3, 3])), "splineOrder": op.get("splineOrder", 3),
           "gridRange": list(op.get("gridRange", [-1, 1])), "init": op.get("init", "scaled"),
           "projInit": op.get("projInit", "normal"), "seed": op.get("seed")}
    if isinstance(out["rank"], str) and _match(out["rank"], ("full",)):
        out["rank"] = "full"
    if not _pos_int(out["grid"]):
        raise KArAtConfigError(f"{arg}.grid must be an integer >= 1, got {out['grid']!r}")
    if out["rank"] != "full" and not _pos_int(out["rank"]):
        raise KArAtConfigError(f"{arg}.rank must be an integer >= 1 or 'full', got {out['rank']!r}")
    if out["baseActivation"] not in BASE_ACTIVATIONS:
        raise KArAtConfigError(f"{arg}.baseActivation must be one of {', '.join(BASE_ACTIVATIONS)}, got {out['baseActivation']!r}")
    ro = out["rationalOrder"]
    if len(ro) != 2 or not all(isinstance(v, int) and v >= 0 for v in ro):
        raise KArAtConfigError(f"{arg}.rationalOrder must be [m, n] with integers m >= 0, n >= 0, got {ro!r}")
    if not (isinstance(out["splineOrder"], int) and out["splineOrder"] >= 0):
        raise KArAtConfigError(f"{arg}.splineOrder must be an integer >= 0, got {out['splineOrder']!r}")
    gr = out["gridRange"]
    if len(gr) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in gr) or not gr[0] < gr[1]:
        raise KArAtConfigError(f"{arg}.gridRange must be [lo, hi] with finite lo < hi, got {gr!r}")
    out["init"] = _match(out["init"], ("scaled", "normal")) or out["init"]
    if out["init"] not in ("scaled", "normal"):
        raise KArAtConfigError(f"{arg}.init must be 'scaled' or 'normal', got {out['init']!r}")
    out["projInit"] = _match(out["projInit"], ("normal", "glorot")) or out["projInit"]
    if out["projInit"] not in ("normal", "glorot"):
        raise KArAtConfigError(f"{arg}.projInit must be 'normal' or 'glorot', got {out['projInit']!r}")
    mode = act.get("mode", "blockwise")
    m = _match(mode, ("blockwise", "universal"))
    if m is None:
        raise KArAtConfigError(f"{arg}.mode must be one of blockwise, universal, got {mode!r}")
    share = act.get("shareName", "universal")
    if not isinstance(share, str) or not share:
        raise KArAtConfigError(f"{arg}.shareName must be a non-empty string, got {share!r}")
    if share != "universal":
        raise KArAtConfigError(f"{arg}.shareName: the PyTorch ViT has one universal operator group; "
                               f"only the default 'universal' is supported, got {share!r}")
    out["mode"] = m
    out["shareName"] = share
    return out


# ------------------------------------------------------------------------------ parameter specs

def _glorot_fans(shape):
    """tfjs-layers computeFans (channelsLast)."""
    if len(shape) == 2:
        return shape[0], shape[1]
    rf = 1
    for s in shape[:-2]:
        rf *= s
    return shape[-2] * rf, shape[-1] * rf


def param_specs(cfg, heads, tokens):
    """[(name, shape, init)] of one operator set, in the TypeScript order (basis params, proj,
    baseWeight). init is ('normal', std) | ('zeros',) | ('ones',) | ('truncnormal', std)."""
    if cfg["rank"] != "full" and cfg["rank"] > tokens:
        raise KArAtConfigError(f"attention.rank must be <= the number of tokens N = {tokens}, got {cfg['rank']}")
    R = tokens if cfg["rank"] == "full" else cfg["rank"]
    h, N, b = heads, tokens, cfg["basis"]
    scaled = cfg["init"] != "normal"

    def cstd(per):
        return 1 / math.sqrt(N * per) if scaled else 1.0

    if b == "fourier":
        specs = [("coeffs", [h, 2, R, N, cfg["grid"]], ("normal", cstd(cfg["grid"])))]
    elif b == "rational":
        m, n = cfg["rationalOrder"]
        specs = [("numerator", [h, R, N, m + 1], ("normal", cstd(m + 1)))]
        if n >= 1:
            specs.append(("denominator", [h, R, N, n], ("normal", 1 / math.sqrt(n) if scaled else 1.0)))
    elif b == "bspline":
        J = cfg["grid"] + cfg["splineOrder"]
        specs = [("splineCoeffs", [h, R, N, J], ("normal", cstd(J)))]
    else:
        specs = [("waveletWeight", [h, R, N], ("normal", 1 / math.sqrt(N) if scaled else 1.0)),
                 ("translation", [h, R, N], ("zeros",)), ("scale", [h, R, N], ("ones",))]
    if cfg["rank"] != "full":
        shape = [h, N, cfg["rank"]]
        if cfg["projInit"] == "glorot":
            fi, fo = _glorot_fans(shape)
            specs.append(("proj", shape, ("truncnormal", math.sqrt(1 / max(1, (fi + fo) / 2)))))
        else:
            specs.append(("proj", shape, ("normal", 1 / math.sqrt(cfg["rank"]))))
    if cfg["baseActivation"] != "zero":
        specs.append(("baseWeight", [h, R, N], ("ones",)))
    return specs


def init_tensor(t, init, generator=None):
    """Fills `t` in place by an init spec of param_specs."""
    with torch.no_grad():
        kind = init[0]
        if kind == "normal":
            t.normal_(0.0, init[1], generator=generator)
        elif kind == "zeros":
            t.zero_()
        elif kind == "ones":
            t.fill_(1.0)
        elif kind == "truncnormal":
            # tfjs truncatedNormal: normal redrawn outside two standard deviations.
            torch.nn.init.trunc_normal_(t, 0.0, init[1], -2 * init[1], 2 * init[1])
        elif kind == "glorot_normal":
            # tfjs-layers glorotNormal: truncated normal, stddev sqrt(2 / (fanIn + fanOut))
            fi, fo = _glorot_fans(init[1])
            std = math.sqrt(2 / (fi + fo))
            torch.nn.init.trunc_normal_(t, 0.0, std, -2 * std, 2 * std)
        elif kind == "glorot_uniform":
            fi, fo = _glorot_fans(init[1])
            lim = math.sqrt(6 / (fi + fo))
            t.uniform_(-lim, lim, generator=generator)
        else:
            raise ValueError(f"unknown initialiser {init!r}")
    return t


class KArAtOperator(torch.nn.Module):
    """The learnable tensors of one operator set (h heads, N tokens) as parameters named as in
    the TypeScript layers and the safetensors files (coeffs, proj, numerator, ...)."""

    def __init__(self, cfg, heads, tokens):
        super().__init__()
        self.cfg, self.heads, self.tokens = cfg, heads, tokens
        self.specs = param_specs(cfg, heads, tokens)
        for name, shape, init in self.specs:
            self.register_parameter(name, torch.nn.Parameter(init_tensor(torch.empty(shape), init)))

    def params(self):
        return {name: getattr(self, name) for name, _, _ in self.specs}

    def extra_repr(self):
        return f"basis={self.cfg['basis']}, heads={self.heads}, tokens={self.tokens}, rank={self.cfg['rank']}"


# ------------------------------------------------------------------------------- basis hidden

def fourier_hidden_direct(scores, coeffs):
    """scores [B,h,N,N], coeffs [h,2,R,N,G] -> ĥ [B,h,N,R] with the cos/sin features materialised
    as [B,h,N,N·G] (the paper's direct form)."""
    B, h, N, _ = scores.shape
    R, G = coeffs.shape[2], coeffs.shape[4]
    m = torch.arange(1, G + 1, device=scores.device, dtype=scores.dtype)
    ang = scores.unsqueeze(-1) * m                                       # [B,h,N,N,G]
    cos = torch.cos(ang).reshape(B, h, N, N * G)
    sin = torch.sin(ang).reshape(B, h, N, N * G)
    a = coeffs[:, 0].reshape(h, R, N * G).transpose(1, 2).unsqueeze(0)   # [1,h,NG,R]
    b = coeffs[:, 1].reshape(h, R, N * G).transpose(1, 2).unsqueeze(0)
    return torch.matmul(cos, a) + torch.matmul(sin, b)


IMPLS = ("auto", "fused", "plain", "paper")
_IMPL = "auto"


def set_impl(name):
    """How KArAt attention is computed:
    'auto'  (default) the CUDA kernels for Fourier ĥ when loaded and on CUDA, plain ops otherwise;
            then the fold ĥ (Wᵀ V);
    'fused' the CUDA kernels or an error (for benchmarks that must not fall back);
    'plain' plain PyTorch ops (cos/sin features materialised), then the fold;
    'paper' the paper's direct form: features materialised AND the N x N activated attention
            σ̂ = ĥ Wᵀ formed, then σ̂ V (the baseline the fused kernels and the fold avoid)."""
    global _IMPL
    if name not in IMPLS:
        raise KArAtConfigError(f"KArAt implementation must be one of {', '.join(IMPLS)}, got {name!r}")
    _IMPL = name


def _fused_ok(scores, coeffs):
    return cuda_lib() is not None and scores.is_cuda and scores.dtype == torch.float32 and coeffs.shape[4] <= 8


def fourier_hidden(scores, coeffs):
    """ĥ of the Fourier basis: the fused CUDA kernel when loaded and on CUDA, else plain ops."""
    if _IMPL in ("auto", "fused") and _fused_ok(scores, coeffs):
        return FusedFourierKArAt.apply(scores.contiguous(), coeffs.contiguous())
    if _IMPL == "fused":
        raise RuntimeError("KArAt implementation 'fused': the CUDA kernels are not loaded (load_lib), the tensors "
                           "are not float32 on CUDA, or G > 8")
    return fourier_hidden_direct(scores, coeffs)


def _tile(scores, R):
    """S [B,h,N,N] -> [B,h,N,R,N] (x[..., p, q] = S[..., q])."""
    B, h, N, _ = scores.shape
    return scores.unsqueeze(3).expand(B, h, N, R, N)


def _per_fn(p):
    """[h, R, N] -> [1, h, 1, R, N]."""
    return p.unsqueeze(0).unsqueeze(2)


def _rational_hidden(scores, P, cfg, R):
    x = _tile(scores, R)
    m, n = cfg["rationalOrder"]
    num = P["numerator"]                                  # [h,R,N,m+1]

    def horner(c, count):
        acc = _per_fn(c[..., count - 1])
        for k in range(count - 2, -1, -1):
            acc = acc * x + _per_fn(c[..., k])
        return acc

    phi = horner(num, m + 1)
    if n >= 1:
        q = horner(P["denominator"], n) * x
        phi = phi / (q.abs() + 1)
    return phi.sum(-1)


_MEXICAN_HAT_C = 2 / (math.pi ** 0.25 * math.sqrt(3))


def _gauss(x):
    return torch.exp(-0.5 * x * x)


def _meyer_nu(t):
    c = t.clamp(0, 1)
    return c ** 4 * (35 + c * (-84 + c * (70 + c * -20)))


def _psi(name, x, N):
    if name == "mexican_hat":
        return (1 - x * x) * _gauss(x) * _MEXICAN_HAT_C
    if name == "morlet":
        return torch.cos(5 * x) * _gauss(x)
    if name == "dog":
        return x * _gauss(x)
    if name == "meyer":
        v = x.abs()
        inner = (v <= 0.5).to(x.dtype)
        taper = torch.cos(_meyer_nu(2 * v - 1) * (math.pi / 2))
        return torch.sin(math.pi * v) * (inner + (1 - inner) * taper)
    if name == "shannon":
        zero = (x == 0).to(x.dtype)
        safe = x + zero
        sinc = torch.sin(safe) / safe * (1 - zero) + zero
        q = torch.arange(N, dtype=x.dtype, device=x.device)
        w = torch.ones_like(q) if N == 1 else 0.54 - 0.46 * torch.cos(2 * math.pi * q / (N - 1))
        return sinc * w
    raise KArAtConfigError(f"unknown wavelet '{name}'")


def _wavelet_hidden(scores, P, cfg, R):
    N = scores.shape[-1]
    x = _tile(scores, R)
    xt = (x - _per_fn(P["translation"])) / _per_fn(P["scale"])
    return (_psi(cfg["basis"], xt, N) * _per_fn(P["waveletWeight"])).sum(-1)


def spline_knots(cfg):
    lo, hi = cfg["gridRange"]
    G, k = cfg["grid"], cfg["splineOrder"]
    step = (hi - lo) / G
    return [lo + (j - k) * step for j in range(G + 2 * k + 1)]


def spline_basis_values(x, cfg):
    """G+k B-spline values of x (Cox–de Boor), order-0 indicators of (t_j, t_{j+1}]."""
    t = spline_knots(cfg)
    above = [(x > tj).to(x.dtype) for tj in t]
    b = [above[j] - above[j + 1] for j in range(len(t) - 1)]
    for d in range(1, cfg["splineOrder"] + 1):
        b = [(x - t[j]) / (t[j + d] - t[j]) * b[j] + (t[j + d + 1] - x) / (t[j + d + 1] - t[j + 1]) * b[j + 1]
             for j in range(len(b) - 1)]
    return b


def _bspline_hidden(scores, P, cfg, R):
    feats = torch.stack(spline_basis_values(scores, cfg), -1)             # [B,h,N,N,J]
    return torch.einsum("bhiqj,hpqj->bhip", feats, P["splineCoeffs"])


def operator_hidden(scores, P, cfg):
    """ĥ [B, h, N, R] for any basis, base term included."""
    N = scores.shape[-1]
    R = N if cfg["rank"] == "full" else cfg["rank"]
    b = cfg["basis"]
    if b == "fourier":
        hid = fourier_hidden(scores, P["coeffs"])
    elif b == "rational":
        hid = _rational_hidden(scores, P, cfg, R)
    elif b == "bspline":
        hid = _bspline_hidden(scores, P, cfg, R)
    else:
        hid = _wavelet_hidden(scores, P, cfg, R)
    if cfg["baseActivation"] != "zero":
        base = scores * torch.sigmoid(scores) if cfg["baseActivation"] == "silu" else scores
        hid = hid + torch.einsum("bhiq,hpq->bhip", base, P["baseWeight"])
    return hid


def operator_activation(scores, P, cfg):
    """σ̂(S) [B, h, N, N] (forms the N x N matrix; for attention maps)."""
    hid = operator_hidden(scores, P, cfg)
    return hid if cfg["rank"] == "full" else torch.matmul(hid, P["proj"].transpose(1, 2).unsqueeze(0))


def fold(hidden, proj, values):
    """ĥ (Wᵀ V): hidden [B,h,N,r], proj [h,N,r], values [B,h,N,d] -> [B,h,N,d]."""
    return torch.matmul(hidden, torch.matmul(proj.transpose(1, 2).unsqueeze(0), values))


def operator_attention(scores, P, cfg, values, dropout=None):
    """σ̂(S) V through the fold; `dropout` (a callable) acts on ĥ, as in the TypeScript layer."""
    hid = operator_hidden(scores, P, cfg)
    if dropout is not None:
        hid = dropout(hid)
    if _IMPL == "paper" and cfg["rank"] != "full":
        return torch.matmul(torch.matmul(hid, P["proj"].transpose(1, 2).unsqueeze(0)), values)
    if cfg["rank"] == "full":
        return torch.matmul(hid, values)
    return fold(hid, P["proj"], values)
