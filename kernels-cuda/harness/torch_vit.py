#!/usr/bin/env python3
"""ViT 224/16 batch-32 train step (forward + backward + AdamW) and inference in PyTorch, for
softmax attention vs Fourier-KArAt, to reproduce the PyTorch reference measurements of docs/benchmarks.md on the GPU
at hand and to measure the fused kernels inside a whole model.

The model is the repository's PyTorch twin of models.vit (python/tfjs_karat/vit.py: pre-norm,
class token, learned position embedding, MLP ratio 4; no timm needed). Attention variants:
  softmax        F.scaled_dot_product_attention (PyTorch >= 2.0; explicit softmax before)
  direct-GnB/U   the paper's direct KArAt (tfjs_karat.karat.set_impl('paper')): cos/sin features
                 [B,h,N,N,G] materialised, the N x N activated attention ĥ Wᵀ formed, then
                 multiplied by V
  fused-GnB/U    kernels-cuda fused ĥ (ctypes, libkarat_cuda.so; set_impl('fused')) and the fold
                 ĥ (Wᵀ V): nothing of size N² kept except the scores
B = blockwise (each block owns coeffs [h,2,r,N,G] and W [h,N,r]), U = universal (one set shared
by all blocks). r = 12.

Records (bench/common.ts format, JSON lines): backend 'cuda', case 'vit-tiny' etc., impl
'torch-softmax' | 'torch-direct-G3B' | 'torch-fused-G3B' ..., pass 'train' (fwd+bwd+AdamW) or
'infer' (no_grad forward), ms_median over --iters steps after --warmup, peak_bytes =
torch.cuda.max_memory_allocated() during the timed steps (model, optimizer state, activations).

  python3 kernels-cuda/harness/torch_vit.py [--models tiny,small,base] [--json OUT.jsonl]
      [--lib kernels-cuda/build/libkarat_cuda.so] [--iters 10] [--warmup 3] [--batch 32]
"""
import argparse
import math
import sys
import time

import torch
import torch.nn.functional as F

import karat_torch as kt  # also puts python/ on sys.path
from tfjs_karat import karat as K  # noqa: E402
from tfjs_karat import vit as V  # noqa: E402

PRESETS = {"tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12)}
# Variants per model: (attention kind, grid G, universal?) as in the perf anchors.
DEFAULT_VARIANTS = {
    "tiny": [("softmax", 0, False), ("direct", 3, False), ("direct", 3, True), ("fused", 3, False), ("fused", 3, True)],
    "small": [("softmax", 0, False), ("direct", 3, False), ("fused", 3, False)],
    "base": [("softmax", 0, False), ("direct", 1, False), ("fused", 1, False)],
}


def build_model(model_name, kind, grid, universal):
    """The twin ViT at 224/16, 1000 classes, with the KArAt implementation of `kind`."""
    att = "softmax" if kind == "softmax" else {"type": "fourier", "grid": grid, "rank": 12,
                                               "mode": "universal" if universal else "blockwise"}
    K.set_impl({"softmax": "auto", "direct": "paper", "fused": "fused"}[kind])
    return V.ViT(V.vit_config(preset=model_name, imageSize=224, patchSize=16, numClasses=1000, attention=att))


def label(kind, grid, universal):
    return "softmax" if kind == "softmax" else f"G{grid}{'U' if universal else 'B'}"


def run_variant(model_name, kind, grid, universal, args):
    dim, depth, heads = PRESETS[model_name]
    dev = torch.device("cuda")
    torch.manual_seed(0)
    model = build_model(model_name, kind, grid, universal).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(args.batch, 3, 224, 224, device=dev)
    y = torch.randint(0, 1000, (args.batch,), device=dev)

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    def infer():
        with torch.no_grad():
            return model(x)

    recs = []
    tag = label(kind, grid, universal)
    impl = "torch-softmax" if kind == "softmax" else f"torch-{kind}-{tag}"
    params = sum(p.numel() for p in model.parameters())
    for pss, fn in (("train", train_step), ("infer", infer)):
        for _ in range(args.warmup):
            fn()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        ms, ms_min = kt.time_cuda(fn, 0, args.iters)
        peak = torch.cuda.max_memory_allocated()
        recs.append({"backend": "cuda", "case": f"vit-{model_name}", "impl": impl, "B": args.batch, "h": heads,
                     "N": 197, "r": 12 if kind != "softmax" else 0, "G": grid, "pass": pss,
                     "ms_median": round(ms, 4), "ms_min": round(ms_min, 4), "peak_bytes": int(peak),
                     "iters": args.iters, "attention": tag, "params": params, "device": kt.device_name(),
                     "torch": torch.__version__, "precision": "fp32 (allow_tf32 matmul=%s, cudnn=%s)" % (
                         torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32),
                     "source": "kernels-cuda/harness/torch_vit.py"})
    loss = train_step().item()
    if not math.isfinite(loss):
        raise RuntimeError(f"{impl}: non-finite loss {loss}")
    del model, opt, x, y
    torch.cuda.empty_cache()
    return recs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="tiny,small,base")
    ap.add_argument("--json", default="")
    ap.add_argument("--lib", default="kernels-cuda/build/libkarat_cuda.so")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--tf32", action="store_true", help="allow TF32 matmuls (default: off, pure fp32)")
    ap.add_argument("--budget-s", type=float, default=1e9, help="stop starting new variants after this many seconds")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("torch_vit.py: no CUDA device visible to PyTorch; nothing measured")
        return 3
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    print(f"torch {torch.__version__} on {kt.device_name()}")
    lib = kt.load_lib(args.lib)
    t_start = time.time()
    failures = 0
    for model_name in args.models.split(","):
        if model_name not in PRESETS:
            print(f"unknown model {model_name}")
            return 2
        for kind, grid, universal in DEFAULT_VARIANTS[model_name]:
            if time.time() - t_start > args.budget_s:
                print(f"  budget of {args.budget_s}s used: skipping vit-{model_name} {kind} {label(kind, grid, universal)}")
                continue
            if kind == "fused" and lib is None:
                continue
            t0 = time.time()
            try:
                recs = run_variant(model_name, kind, grid, universal, args)
            except (RuntimeError, torch.cuda.OutOfMemoryError) as e:
                failures += 1
                print(f"  vit-{model_name} {kind} {label(kind, grid, universal)}: FAILED: {e}")
                torch.cuda.empty_cache()
                continue
            kt.print_records(recs)
            print(f"  ({time.time() - t0:.1f}s)")
            kt.append_records(args.json, recs)
    return 0 if failures == 0 else 5


if __name__ == "__main__":
    sys.exit(main())
