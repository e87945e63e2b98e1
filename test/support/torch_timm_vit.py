#!/usr/bin/python3
"""Reference ViT in plain PyTorch whose module layout follows timm's VisionTransformer names
exactly (patch_embed.proj, cls_token, pos_embed, blocks.{i}.norm1/attn.qkv/attn.proj/norm2/
mlp.fc1/mlp.fc2, norm, head; exact GELU; LayerNorm eps 1e-6; attention as timm's), plus
Fourier-KArAt attention computed from the formula of the KArAt paper:

    S = Q Kᵀ / sqrt(d);  ĥ[i, p] = Σ_q Σ_m A[p, q, m] cos(m S[i, q]) + B[p, q, m] sin(m S[i, q])
    out = ĥ (Wᵀ V)    (= σ̂(S) V with σ̂ = ĥ Wᵀ),  coeffs [h, 2, r, N, G] (0 = A, 1 = B), proj W [h, N, r]

Safetensors files are read and written by hand (the format is a JSON header plus raw
little-endian data), so no safetensors package is needed. Used by test/convert_torch.test.ts:

  torch_timm_vit.py make OUT_DIR CONFIG_JSON SEED BATCH
      builds the model with random weights (fixed seed), writes OUT_DIR/model_<dtype>.safetensors
      for dtype F32, F16, BF16 (timm names, no metadata, like a timm checkpoint), OUT_DIR/input.bin
      (float32 images [B, H, W, C], channels last) and OUT_DIR/logits_<dtype>.bin (float32 [B, K],
      computed in float64 from the weights as stored at that dtype)
  torch_timm_vit.py check FILE INPUT OUT [FILE INPUT OUT ...]
      loads FILE (a karat export: architecture from __metadata__.config) with a strict
      load_state_dict, runs INPUT (float32 [B, H, W, C]) and writes the logits to OUT
"""
import json
import math
import struct
import sys

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


class FourierKArAt(nn.Module):
    """Fourier-KArAt operator of h heads over N tokens (zero base activation)."""

    def __init__(self, heads, tokens, rank, grid):
        super().__init__()
        self.grid = grid
        self.coeffs = nn.Parameter(torch.zeros(heads, 2, rank, tokens, grid))
        self.proj = nn.Parameter(torch.zeros(heads, tokens, rank))

    def forward(self, s, v):
        # s [B, h, N, N] scores, v [B, h, N, d]
        m = torch.arange(1, self.grid + 1, dtype=s.dtype, device=s.device)
        ms = s.unsqueeze(-1) * m                           # [B, h, i, q, G]
        a, b = self.coeffs[:, 0], self.coeffs[:, 1]        # [h, r, q, G]
        hid = (torch.einsum('bhiqm,hpqm->bhip', torch.cos(ms), a) +
               torch.einsum('bhiqm,hpqm->bhip', torch.sin(ms), b))   # ĥ [B, h, i, r]
        wv = torch.einsum('hjp,bhjd->bhpd', self.proj, v)  # Wᵀ V [B, h, r, d]
        return hid @ wv                                    # [B, h, i, d]


class Attention(nn.Module):
    def __init__(self, dim, heads, qkv_bias=True):
        super().__init__()
        self.num_heads = heads
        self.head_dim = dim // heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.shared = []  # the universal operator (not a submodule: stored once, as 'karat.*')

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q = q * self.scale
        attn = q @ k.transpose(-2, -1)
        op = getattr(self, 'karat', None) or (self.shared[0] if self.shared else None)
        if op is None:
            x = attn.softmax(dim=-1) @ v
        else:
            x = op(attn, v)
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # exact (erf)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, hidden, qkv_bias):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch, channels, dim):
        super().__init__()
        self.proj = nn.Conv2d(channels, dim, kernel_size=patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # [B, gh*gw, D], row-major over the grid


class VisionTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        dim, depth, heads = c['dim'], c['depth'], c['heads']
        ih, iw = c['imageSize']
        p = c['patchSize']
        self.pool = c.get('pool', 'token')
        n = (ih // p) * (iw // p) + (1 if self.pool == 'token' else 0)
        self.patch_embed = PatchEmbed(p, c['channels'], dim)
        if self.pool == 'token':
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n, dim))
        hidden = int(round(dim * c['mlpRatio']))
        self.blocks = nn.ModuleList([Block(dim, heads, hidden, c.get('qkvBias', True)) for _ in range(depth)])
        att = c.get('attention', 'softmax')
        if att != 'softmax':
            kind = att.get('type', att.get('basis'))
            if kind != 'fourier' or att.get('baseActivation', 'zero') != 'zero':
                raise SystemExit(f'reference supports Fourier-KArAt with zero base activation, got {att}')
            mk = lambda: FourierKArAt(heads, n, att['rank'], att['grid'])
            if att.get('mode', 'blockwise') == 'universal':
                self.karat = mk()
                for b in self.blocks:
                    b.attn.shared.append(self.karat)
            else:
                for b in self.blocks:
                    b.attn.karat = mk()
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, c['numClasses'])

    def forward(self, x):
        x = self.patch_embed(x)
        if self.pool == 'token':
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.pos_embed
        for b in self.blocks:
            x = b(x)
        x = self.norm(x)
        x = x[:, 0] if self.pool == 'token' else x.mean(dim=1)
        return self.head(x)


# ---------------------------------------------------------------- safetensors by hand

def to_bf16_bytes(a):
    """float32 -> bfloat16 with round-to-nearest-even (as torch), little-endian bytes."""
    u = np.ascontiguousarray(a, dtype='<f4').view('<u4').astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype('<u2').tobytes()


def write_safetensors(path, tensors, dtype='F32', metadata=None):
    header, blobs, off = {}, [], 0
    if metadata is not None:
        header['__metadata__'] = metadata
    for name, t in tensors.items():
        a = t.detach().to(torch.float32).cpu().numpy()
        if dtype == 'F32':
            b = a.astype('<f4').tobytes()
        elif dtype == 'F16':
            b = a.astype('<f2').tobytes()
        elif dtype == 'BF16':
            b = to_bf16_bytes(a)
        else:
            raise ValueError(dtype)
        header[name] = {'dtype': dtype, 'shape': list(a.shape), 'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode('utf-8')
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    with open(path, 'rb') as f:
        data = f.read()
    (n,) = struct.unpack('<Q', data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop('__metadata__', {})
    base = 8 + n
    out = {}
    for name, e in header.items():
        if e['dtype'] != 'F32':
            raise SystemExit(f'{name}: expected F32, got {e["dtype"]}')
        b, en = e['data_offsets']
        a = np.frombuffer(data[base + b:base + en], dtype='<f4').reshape(e['shape'])
        out[name] = torch.from_numpy(a.copy())
    return out, meta


def rounded(t, dtype):
    if dtype == 'F16':
        return t.to(torch.float16).to(torch.float32)
    if dtype == 'BF16':
        return t.to(torch.bfloat16).to(torch.float32)
    return t


# ---------------------------------------------------------------- commands

def make(out_dir, config_json, seed, batch):
    c = json.loads(config_json)
    torch.manual_seed(int(seed))
    model = VisionTransformer(c)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('norm1.weight') or name.endswith('norm2.weight') or name == 'norm.weight':
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name in ('pos_embed', 'cls_token'):
                p.copy_(0.5 * torch.randn_like(p))
            else:
                fan_in = p.shape[1] if p.dim() == 2 else (p[0].numel() if p.dim() == 4 else 1)
                p.copy_(torch.randn_like(p) / math.sqrt(fan_in) if p.dim() >= 2 else 0.2 * torch.randn_like(p))
    ih, iw = c['imageSize']
    x = torch.randn(int(batch), c['channels'], ih, iw)
    x.permute(0, 2, 3, 1).contiguous().numpy().astype('<f4').tofile(f'{out_dir}/input.bin')
    state = model.state_dict()
    for dtype in ('F32', 'F16', 'BF16'):
        write_safetensors(f'{out_dir}/model_{dtype}.safetensors', state, dtype)
        ref = VisionTransformer(c).double()
        ref.load_state_dict({k: rounded(v, dtype).double() for k, v in state.items()}, strict=True)
        with torch.no_grad():
            y = ref(x.double())
        y.numpy().astype('<f4').tofile(f'{out_dir}/logits_{dtype}.bin')
    print(json.dumps({'params': sum(p.numel() for p in model.parameters()), 'names': list(state.keys())}))


def check(args):
    if len(args) % 3 != 0 or not args:
        raise SystemExit('check needs FILE INPUT OUT triples')
    for i in range(0, len(args), 3):
        path, inp, out = args[i:i + 3]
        tensors, meta = read_safetensors(path)
        if meta.get('format') != 'tfjs-karat-vit':
            raise SystemExit(f'{path}: no tfjs-karat-vit metadata')
        c = json.loads(meta['config'])
        model = VisionTransformer(c).double()
        model.load_state_dict({k: v.double() for k, v in tensors.items()}, strict=True)
        ih, iw = c['imageSize']
        x = torch.from_numpy(np.fromfile(inp, dtype='<f4').reshape(-1, ih, iw, c['channels'])).permute(0, 3, 1, 2)
        with torch.no_grad():
            y = model(x.double())
        y.numpy().astype('<f4').tofile(out)
    print('ok')


if __name__ == '__main__':
    cmd = sys.argv[1] if len(sys.argv) > 1 else ''
    if cmd == 'make' and len(sys.argv) == 6:
        make(*sys.argv[2:])
    elif cmd == 'check':
        check(sys.argv[2:])
    else:
        raise SystemExit(__doc__)
