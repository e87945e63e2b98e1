"""The ViT of src/models/vit.ts in PyTorch: same configurations (presets tiny/small/base, the
paper's tiny-G3B etc.), softmax or KArAt attention (every basis; blockwise or universal), same
initialisation, parameters named as in the shared safetensors layout (timm's VisionTransformer
names; KArAt tensors as blocks.{i}.attn.karat.<param>, or karat.<param> once for universal).

Inputs are NCHW images (PyTorch convention); outputs are logits.
"""
import json
import math
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import karat as K
from . import safetensors as st

PRESETS = {
    "tiny": {"dim": 192, "depth": 12, "heads": 3, "mlpRatio": 4},
    "small": {"dim": 384, "depth": 12, "heads": 6, "mlpRatio": 4},
    "base": {"dim": 768, "depth": 12, "heads": 12, "mlpRatio": 4},
}
PAPER_RANK = 12
_PAPER = {
    "tiny-softmax": ("tiny", None, None), "tiny-g3b": ("tiny", 3, "blockwise"), "tiny-g3u": ("tiny", 3, "universal"),
    "small-softmax": ("small", None, None), "small-g3b": ("small", 3, "blockwise"), "small-g3u": ("small", 3, "universal"),
    "base-softmax": ("base", None, None), "base-g1b": ("base", 1, "blockwise"), "base-g1u": ("base", 1, "universal"),
}
PAPER_CONFIG_NAMES = ["tiny-softmax", "tiny-G3B", "tiny-G3U", "small-softmax", "small-G3B", "small-G3U",
                      "base-softmax", "base-G1B", "base-G1U"]
# heads of timm architectures, for checkpoints without our metadata
TIMM_HEADS = {"tiny": 3, "small": 6, "base": 12, "large": 16, "huge": 16}
METADATA_FORMAT = "tfjs-karat-vit"


class ModelConfigError(ValueError):
    """A ViT configuration that is invalid or does not fit the given weights."""


def paper_config(name):
    e = _PAPER.get(name.lower()) if isinstance(name, str) else None
    if e is None:
        raise ModelConfigError(f"argument 'config' must be one of {', '.join(PAPER_CONFIG_NAMES)}, got {name!r}")
    preset, grid, mode = e
    att = "softmax" if grid is None else {"type": "fourier", "grid": grid, "rank": PAPER_RANK,
                                           "baseActivation": "zero", "mode": mode}
    return {"preset": preset, **PRESETS[preset], "attention": att}


def vit_config(config=None, preset=None, dim=None, depth=None, heads=None, mlpRatio=None, attention=None,
               imageSize=32, patchSize=4, channels=3, numClasses=10, pool="token", dropout=0.0,
               attentionDropout=0.0, dropPath=0.0, layerNormEpsilon=1e-6, fcNorm=False):
    """The resolved configuration dict (the fields of the TypeScript ViTArgs, same defaults and
    precedence: paper config < preset < explicit dims)."""
    base = paper_config(config) if config is not None else {}
    if preset is not None:
        if preset not in PRESETS:
            raise ModelConfigError(f"vit: argument 'preset' must be one of {', '.join(PRESETS)}, got {preset!r}")
        if base.get("preset") not in (None, preset):
            raise ModelConfigError(f"vit: argument 'preset' ('{preset}') contradicts config '{config}' ('{base['preset']}')")
        base = {**base, "preset": preset, **PRESETS[preset]}
    dim = dim if dim is not None else base.get("dim")
    depth = depth if depth is not None else base.get("depth")
    heads = heads if heads is not None else base.get("heads")
    if dim is None or depth is None or heads is None:
        raise ModelConfigError("vit: give a 'preset' ('tiny', 'small', 'base'), a paper 'config' or all of dim, depth, heads")
    for k, v in (("dim", dim), ("depth", depth), ("heads", heads), ("patchSize", patchSize), ("channels", channels),
                 ("numClasses", numClasses)):
        if not K._pos_int(v):
            raise ModelConfigError(f"vit: argument '{k}' must be an integer >= 1, got {v!r}")
    if dim % heads:
        raise ModelConfigError(f"argument 'heads' ({heads}) must divide the embedding dimension dim ({dim})")
    mlp = mlpRatio if mlpRatio is not None else base.get("mlpRatio", 4)
    if not (isinstance(mlp, (int, float)) and mlp > 0):
        raise ModelConfigError(f"vit: argument 'mlpRatio' must be > 0, got {mlp!r}")
    ih, iw = (imageSize, imageSize) if isinstance(imageSize, int) else tuple(imageSize)
    if not (K._pos_int(ih) and K._pos_int(iw)) or ih % patchSize or iw % patchSize:
        raise ModelConfigError(f"vit: argument 'imageSize' ({ih}x{iw}) must be divisible by 'patchSize' ({patchSize})")
    if pool not in ("token", "gap"):
        raise ModelConfigError(f"vit: argument 'pool' must be 'token' or 'gap', got {pool!r}")
    if not isinstance(fcNorm, bool):
        raise ModelConfigError(f"vit: argument 'fcNorm' must be a boolean, got {fcNorm!r}")
    for k, v in (("dropout", dropout), ("attentionDropout", attentionDropout), ("dropPath", dropPath)):
        if not (isinstance(v, (int, float)) and 0 <= v < 1):
            raise ModelConfigError(f"vit: argument '{k}' must be in [0, 1), got {v!r}")
    att = attention if attention is not None else base.get("attention", "softmax")
    cfg = {"dim": dim, "depth": depth, "heads": heads, "mlpRatio": mlp, "patchSize": patchSize,
           "imageSize": [ih, iw], "channels": channels, "numClasses": numClasses, "pool": pool, "attention": att,
           "dropout": float(dropout), "attentionDropout": float(attentionDropout), "dropPath": float(dropPath),
           "layerNormEpsilon": float(layerNormEpsilon), "fcNorm": fcNorm}
    resolved = K.resolve_attention(att, "attention")
    n = tokens(cfg)
    if resolved is not None and resolved["rank"] != "full" and resolved["rank"] > n:
        raise ModelConfigError(f"vit: argument 'attention.rank' ({resolved['rank']}) must be <= the number of tokens "
                               f"N = {n} (imageSize {ih}x{iw}, patchSize {patchSize})")
    return cfg


def tokens(cfg):
    ih, iw = cfg["imageSize"]
    p = cfg["patchSize"]
    return (ih // p) * (iw // p) + (1 if cfg["pool"] == "token" else 0)


def _glorot_(t, ts_shape):
    """Glorot-uniform with the fans of the tfjs weight shape (tfjs-layers computeFans): the default
    of our layers (attention projections, patch embedding)."""
    return K.init_tensor(t, ("glorot_uniform", ts_shape))


def _glorot_normal_(t, ts_shape):
    """Glorot-normal (truncated), the default of tfjs-layers' Dense (MLP and classifier head)."""
    return K.init_tensor(t, ("glorot_normal", ts_shape))


class DropPath(nn.Module):
    def __init__(self, rate):
        super().__init__()
        self.rate = rate

    def forward(self, x):
        if not self.training or self.rate == 0:
            return x
        keep = 1 - self.rate
        mask = torch.floor(torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device, dtype=x.dtype) + keep)
        return x * (mask / keep)


class Attention(nn.Module):
    def __init__(self, dim, heads, att, n_tokens, attn_drop, own_operator):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.att = att
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = attn_drop
        with torch.no_grad():
            for i in range(3):  # query/key/value kernels [dim, h, d] in tfjs
                _glorot_(self.qkv.weight[i * dim:(i + 1) * dim], [dim, heads, self.head_dim])
            _glorot_(self.proj.weight, [heads, self.head_dim, dim])
            self.qkv.bias.zero_()
            self.proj.bias.zero_()
        self.karat = K.KArAtOperator(att, heads, n_tokens) if att is not None and own_operator else None

    def qkv_heads(self, x):
        B, N, D = x.shape
        return self.qkv(x).reshape(B, N, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)

    def scores_qkv(self, x):
        q, k, v = self.qkv_heads(x)
        return torch.matmul(q * (self.head_dim ** -0.5), k.transpose(-2, -1)), v

    def forward(self, x, shared=None):
        B, N, D = x.shape
        drop = (lambda t: F.dropout(t, self.attn_drop, True)) if self.training and self.attn_drop > 0 else None
        if self.att is None and hasattr(F, "scaled_dot_product_attention"):
            # PyTorch >= 2.0: the fused kernel (flash / memory-efficient); same math, scale 1/sqrt(d)
            q, k, v = self.qkv_heads(x)
            o = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
            return self.proj(o.transpose(1, 2).reshape(B, N, D))
        s, v = self.scores_qkv(x)
        if self.att is None:
            p = torch.softmax(s, -1)
            o = torch.matmul(drop(p) if drop else p, v)
        else:
            op = self.karat if self.karat is not None else shared
            o = K.operator_attention(s, op.params(), self.att, v, drop)
        return self.proj(o.transpose(1, 2).reshape(B, N, D))

    def attention_maps(self, x, shared=None):
        """σ(S) or σ̂(S) per head, [B, h, N, N]."""
        s, _ = self.scores_qkv(x)
        if self.att is None:
            return torch.softmax(s, -1)
        op = self.karat if self.karat is not None else shared
        return K.operator_activation(s, op.params(), self.att)


class Mlp(nn.Module):
    def __init__(self, dim, hidden, drop):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)
        with torch.no_grad():
            _glorot_normal_(self.fc1.weight, [dim, hidden])
            _glorot_normal_(self.fc2.weight, [hidden, dim])
            self.fc1.bias.zero_()
            self.fc2.bias.zero_()

    def forward(self, x):
        return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x)))))


class Block(nn.Module):
    def __init__(self, cfg, att, n_tokens, drop_path, own_operator):
        super().__init__()
        dim, eps = cfg["dim"], cfg["layerNormEpsilon"]
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, cfg["heads"], att, n_tokens, cfg["attentionDropout"], own_operator)
        self.attn_out_drop = nn.Dropout(cfg["dropout"])
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(round(dim * cfg["mlpRatio"])), cfg["dropout"])
        self.drop_path = DropPath(drop_path)

    def forward(self, x, shared=None):
        x = x + self.drop_path(self.attn_out_drop(self.attn(self.norm1(x), shared)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class ViT(nn.Module):
    """models.vit in PyTorch. `ViT(vit_config(config='tiny-G3B', imageSize=32, patchSize=4, numClasses=10))`."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.att = K.resolve_attention(cfg["attention"], "attention")
        dim, p, n = cfg["dim"], cfg["patchSize"], tokens(cfg)
        self.n_tokens = n
        self.universal = self.att is not None and self.att["mode"] == "universal"
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(cfg["channels"], dim, p, p)
        with torch.no_grad():
            w = torch.empty(p, p, cfg["channels"], dim)             # tfjs kernel [p, p, C, dim]
            _glorot_(w, list(w.shape))
            self.patch_embed.proj.weight.copy_(w.permute(3, 2, 0, 1))
            self.patch_embed.proj.bias.zero_()
        if cfg["pool"] == "token":
            self.cls_token = nn.Parameter(K.init_tensor(torch.empty(1, 1, dim), ("truncnormal", 0.02)))
        else:
            self.cls_token = None
        self.pos_embed = nn.Parameter(K.init_tensor(torch.empty(1, n, dim), ("truncnormal", 0.02)))
        self.pos_drop = nn.Dropout(cfg["dropout"])
        depth = cfg["depth"]
        rates = [cfg["dropPath"] * i / (depth - 1) if depth > 1 else cfg["dropPath"] for i in range(depth)]
        self.blocks = nn.ModuleList(Block(cfg, self.att, n, rates[i], not self.universal) for i in range(depth))
        # timm's layout: the final LayerNorm before pooling (`norm`), or after it (`fc_norm`,
        # global_pool='avg'); the other one is an Identity without parameters.
        fc = cfg.get("fcNorm", False)
        self.norm = nn.Identity() if fc else nn.LayerNorm(dim, eps=cfg["layerNormEpsilon"])
        self.fc_norm = nn.LayerNorm(dim, eps=cfg["layerNormEpsilon"]) if fc else nn.Identity()
        self.head = nn.Linear(dim, cfg["numClasses"])
        with torch.no_grad():
            _glorot_normal_(self.head.weight, [dim, cfg["numClasses"]])
            self.head.bias.zero_()
        # universal: one operator set, held here (stored once, as `karat.<param>`)
        self.karat = K.KArAtOperator(self.att, cfg["heads"], n) if self.universal else None

    def embed(self, x):
        if x.dim() != 4 or list(x.shape[1:]) != [self.cfg["channels"], *self.cfg["imageSize"]]:
            raise ModelConfigError(f"ViT: input must be [batch, {self.cfg['channels']}, {self.cfg['imageSize'][0]}, "
                                   f"{self.cfg['imageSize'][1]}] (NCHW), got {list(x.shape)}")
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1)
        return self.pos_drop(x + self.pos_embed)

    def forward(self, x):
        x = self.embed(x)
        for b in self.blocks:
            x = b(x, self.karat)
        x = self.norm(x)
        return self.head(self.fc_norm(x[:, 0] if self.cls_token is not None else x.mean(1)))

    def metadata_config(self):
        """The `config` of the safetensors metadata (the shared contract's fields)."""
        c = self.cfg
        return {"dim": c["dim"], "depth": c["depth"], "heads": c["heads"], "mlpRatio": c["mlpRatio"],
                "patchSize": c["patchSize"], "imageSize": list(c["imageSize"]), "channels": c["channels"],
                "numClasses": c["numClasses"], "pool": c["pool"], **({"fcNorm": True} if c.get("fcNorm") else {}),
                "attention": c["attention"]}


def param_group(name, param):
    """(decay?, group) of a parameter, as src/training/model.ts paramRule: KArAt tensors in their
    own group; no decay on biases, norms, tokens and embeddings (rank <= 1 or those names)."""
    if re.search(r"(^|\.)karat\.", name):
        return "karat"
    if param.dim() <= 1 or re.search(r"(bias|norm|token|pos_embed)", name):
        return "no_decay"
    return "decay"


# --------------------------------------------------------------------------- safetensors I/O

def state_tensors(model):
    """name -> tensor in the shared safetensors layout (model.state_dict(): universal operator
    tensors appear once, as karat.<param>)."""
    return {k: v for k, v in model.state_dict().items()}


def save_safetensors(model, path, extra_metadata=None):
    meta = {"format": METADATA_FORMAT, "config": json.dumps(model.metadata_config())}
    meta.update(extra_metadata or {})
    st.save(path, state_tensors(model), meta)


def load_weights(model, tensors, source="weights"):
    """Copies `tensors` into `model` after checking that names and shapes match exactly."""
    own = model.state_dict()
    missing = [k for k in own if k not in tensors]
    extra = [k for k in tensors if k not in own]
    bad = [f"{k}: file {list(tensors[k].shape)}, model {list(own[k].shape)}" for k in own
           if k in tensors and tuple(tensors[k].shape) != tuple(own[k].shape)]
    if missing or extra or bad:
        parts = []
        if missing:
            parts.append(f"missing {missing[:6]}{' ...' if len(missing) > 6 else ''}")
        if extra:
            parts.append(f"unexpected {extra[:6]}{' ...' if len(extra) > 6 else ''}")
        if bad:
            parts.append(f"shape mismatch {bad[:4]}")
        raise ModelConfigError(f"{source} does not fit this model: {'; '.join(parts)}")
    model.load_state_dict({k: tensors[k] for k in own}, strict=True)
    return model


def infer_config(tensors, heads=None, arch=None, num_classes=None):
    """A config for a file without our metadata (a timm checkpoint): depth/width/patch/image size
    from the shapes; heads from `heads` or the arch name (vit_tiny_patch16_224 -> 3)."""
    need = ["patch_embed.proj.weight", "pos_embed", "head.weight"]
    miss = [k for k in need if k not in tensors]
    if miss:
        raise ModelConfigError(f"cannot infer a ViT configuration: no {', '.join(miss)}")
    D, C, p, _ = tensors["patch_embed.proj.weight"].shape
    depth = 0
    while f"blocks.{depth}.attn.qkv.weight" in tensors:
        depth += 1
    if depth == 0:
        raise ModelConfigError("cannot infer a ViT configuration: no blocks.0.attn.qkv.weight")
    hidden = tensors["blocks.0.mlp.fc1.weight"].shape[0]
    n = tensors["pos_embed"].shape[1]
    pool = "token" if "cls_token" in tensors else "gap"
    fc_norm = "fc_norm.weight" in tensors
    if fc_norm and ("norm.weight" in tensors or pool == "token"):
        raise ModelConfigError("fc_norm is supported without a class token and without 'norm' (timm class_token=False, "
                               "global_pool='avg') only")
    patches = n - (1 if pool == "token" else 0)
    side = int(round(math.sqrt(patches)))
    if side * side != patches:
        raise ModelConfigError(f"cannot infer the image size: {patches} patches is not a square number")
    if heads is None and arch is not None:
        m = re.search(r"(?:vit|deit)_(tiny|small|base|large|huge)", arch)
        heads = TIMM_HEADS.get(m.group(1)) if m else None
    if heads is None:
        raise ModelConfigError("the file has no tfjs-karat metadata: give the number of heads or a timm arch name "
                               "(e.g. vit_tiny_patch16_224)")
    return vit_config(dim=D, depth=depth, heads=heads, mlpRatio=hidden / D, patchSize=p, imageSize=side * p,
                      channels=C, numClasses=num_classes or tensors["head.weight"].shape[0], pool=pool, fcNorm=fc_norm)


def config_from_metadata(meta, source):
    if meta.get("format") != METADATA_FORMAT or "config" not in meta:
        return None
    try:
        c = json.loads(meta["config"])
    except json.JSONDecodeError as e:
        raise ModelConfigError(f"{source}: metadata 'config' is not JSON ({e})") from None
    keys = ("dim", "depth", "heads", "mlpRatio", "patchSize", "imageSize", "channels", "numClasses")
    miss = [k for k in keys if k not in c]
    if miss:
        raise ModelConfigError(f"{source}: metadata 'config' lacks {', '.join(miss)}")
    return vit_config(dim=c["dim"], depth=c["depth"], heads=c["heads"], mlpRatio=c["mlpRatio"], patchSize=c["patchSize"],
                      imageSize=c["imageSize"], channels=c["channels"], numClasses=c["numClasses"],
                      pool=c.get("pool", "token"), attention=c.get("attention", "softmax"), fcNorm=c.get("fcNorm", False))


def load_safetensors(path, heads=None, arch=None, **overrides):
    """(ViT with the file's weights, config). The configuration comes from the file's
    tfjs-karat metadata, or is inferred from the shapes (timm files; give heads or arch).
    `overrides` (dropout, attentionDropout, dropPath) set training-only fields."""
    tensors, meta = st.load(path)
    cfg = config_from_metadata(meta, path) or infer_config(tensors, heads, arch)
    for k, v in overrides.items():
        if k not in ("dropout", "attentionDropout", "dropPath"):
            raise ModelConfigError(f"load_safetensors: unknown override '{k}' (dropout, attentionDropout, dropPath)")
        cfg[k] = float(v)
    model = ViT(cfg)
    load_weights(model, tensors, path)
    return model, cfg
