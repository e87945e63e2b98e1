#!/usr/bin/env python3
"""PyTorch direct Fourier-KArAt (features materialised as [B,h,N,N,G], as in the paper) at the
harness sizes: forward and forward+backward (autograd), timed with CUDA events, peak memory from
torch.cuda.max_memory_allocated (reset before each case; inputs included, like the harness's
explicit bytes). Writes bench/common.ts records: backend 'cuda', impl 'torch-direct'.

With --lib (kernels-cuda/build/libkarat_cuda.so) it also runs the fused kernels from PyTorch
(impl 'fused-torch', same stream and allocator) and checks them against the direct version
on the same random inputs. With --check CASES.bin it compares the CUDA harness outputs in that
file with PyTorch float64 direct results.

  python3 kernels-cuda/harness/torch_direct.py [--json OUT.jsonl] [--lib PATH] [--check CASES.bin]
                                               [--iters 20] [--warmup 3] [--cases all|small|perf]
"""
import argparse
import sys
import time

import torch

import karat_torch as kt

# Same names and sizes as karat_harness.cu.
CASES = [
    ("small-n33-g3", 1, 3, 33, 12, 3, False),
    ("small-n65-r20-g8", 2, 2, 65, 20, 8, False),
    ("mid-b4-n197-g3", 4, 3, 197, 12, 3, False),
    ("vit-tiny-b32-g3", 32, 3, 197, 12, 3, True),
    ("vit-small-b32-g3", 32, 6, 197, 12, 3, True),
    ("vit-base-b32-g1", 32, 12, 197, 12, 1, True),
    ("cifar-b128-n65-g3", 128, 3, 65, 12, 3, True),
]


def record(name, B, h, N, r, G, impl, pss, ms, ms_min, peak, iters, **extra):
    rec = {"backend": "cuda", "case": name, "impl": impl, "B": B, "h": h, "N": N, "r": r, "G": G,
           "pass": pss, "ms_median": round(ms, 5), "ms_min": round(ms_min, 5), "peak_bytes": int(peak),
           "iters": iters, "device": kt.device_name(), "torch": torch.__version__,
           "source": "kernels-cuda/harness/torch_direct.py"}
    rec.update(extra)
    return rec


def measure(fn, warmup, iters):
    """(median ms, min ms, peak bytes of one call with the live inputs)."""
    ms, ms_min = kt.time_cuda(fn, warmup, iters)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return ms, ms_min, torch.cuda.max_memory_allocated()


def run_case(case, args, lib):
    name, B, h, N, r, G, _ = case
    dev = torch.device("cuda")
    g = torch.Generator(device=dev).manual_seed(1234)
    S = (torch.randn((B, h, N, N), device=dev, generator=g) * 1.5).contiguous()
    C = (torch.randn((h, 2, r, N, G), device=dev, generator=g) / (N * G) ** 0.5).contiguous()
    dy = torch.randn((B, h, N, r), device=dev, generator=g)
    out = []
    torch.cuda.empty_cache()

    def direct_fwd():
        with torch.no_grad():
            return kt.direct_hidden(S, C)

    Sg = S.clone().requires_grad_(True)
    Cg = C.clone().requires_grad_(True)

    def direct_both():
        Sg.grad = None
        Cg.grad = None
        hid = kt.direct_hidden(Sg, Cg)
        hid.backward(dy)

    for impl, fwd, both in (("torch-direct", direct_fwd, direct_both),):
        ms, mn, peak = measure(fwd, args.warmup, args.iters)
        out.append(record(name, B, h, N, r, G, impl, "fwd", ms, mn, peak, args.iters))
        ms, mn, peak = measure(both, args.warmup, args.iters)
        out.append(record(name, B, h, N, r, G, impl, "fwd+bwd", ms, mn, peak, args.iters))

    if lib is not None:
        def fused_fwd():
            return lib.forward(S, C)

        def fused_both():
            lib.forward(S, C)
            return lib.backward(dy, S, C)

        # Correctness against the direct version on these inputs (float64 reference).
        with torch.no_grad():
            ref_h = kt.direct_hidden(S.double(), C.double())
        Sd = S.double().requires_grad_(True)
        Cd = C.double().requires_grad_(True)
        kt.direct_hidden(Sd, Cd).backward(dy.double())
        got_h = lib.forward(S, C)
        got_s, got_c = lib.backward(dy, S, C)
        errs = {"hidden": kt.norm_err(got_h, ref_h), "dscores": kt.norm_err(got_s, Sd.grad),
                "dcoeffs": kt.norm_err(got_c, Cd.grad)}
        ok = max(errs.values()) <= 1e-4
        del Sd, Cd, ref_h
        torch.cuda.empty_cache()
        ms, mn, peak = measure(fused_fwd, args.warmup, args.iters)
        out.append(record(name, B, h, N, r, G, "fused-torch", "fwd", ms, mn, peak, args.iters,
                          max_norm_err=errs, check="pass" if ok else "FAIL"))
        ms, mn, peak = measure(fused_both, args.warmup, args.iters)
        out.append(record(name, B, h, N, r, G, "fused-torch", "fwd+bwd", ms, mn, peak, args.iters,
                          max_norm_err=errs, check="pass" if ok else "FAIL",
                          workspace_bytes=lib.workspace_bytes(S, C)))
        print(f"  {name}: fused vs float64 direct: " + ", ".join(f"{k} {v:.2e}" for k, v in errs.items())
              + ("  pass" if ok else "  FAIL"))
    return out


def check_file(path):
    """Harness outputs vs PyTorch float64 direct results, per dumped case."""
    worst = 0.0
    for rec in kt.read_cases(path):
        dev = torch.device("cuda")
        S = rec["scores"].to(dev).double().requires_grad_(True)
        C = rec["coeffs"].to(dev).double().requires_grad_(True)
        hid = kt.direct_hidden(S, C)
        hid.backward(rec["dy"].to(dev).double())
        errs = {"hidden": kt.norm_err(rec["hidden"].to(dev), hid.detach()),
                "dscores": kt.norm_err(rec["dscores"].to(dev), S.grad),
                "dcoeffs": kt.norm_err(rec["dcoeffs"].to(dev), C.grad)}
        worst = max(worst, *errs.values())
        print(f"  {rec['name']:<20} " + ", ".join(f"{k} {v:.2e}" for k, v in errs.items()))
    print(f"check {path}: worst normalised error vs PyTorch float64 direct: {worst:.3e} "
          f"({'pass' if worst <= 1e-4 else 'FAIL'} at 1e-4)")
    return worst <= 1e-4


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default="")
    ap.add_argument("--lib", default="kernels-cuda/build/libkarat_cuda.so")
    ap.add_argument("--check", default="")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--cases", default="all", help="all | small | perf | comma-separated names")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("torch_direct.py: no CUDA device visible to PyTorch; nothing measured")
        return 3
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32, like the fused kernels
    print(f"torch {torch.__version__} on {kt.device_name()}")
    ok = True
    if args.check:
        ok = check_file(args.check) and ok
    lib = kt.load_lib(args.lib)
    names = set(args.cases.split(","))
    records = []
    for case in CASES:
        perf = case[6]
        if not (args.cases == "all" or (args.cases == "perf" and perf) or (args.cases == "small" and not perf)
                or case[0] in names):
            continue
        t0 = time.time()
        try:
            recs = run_case(case, args, lib)
        except torch.cuda.OutOfMemoryError as e:
            print(f"  {case[0]}: out of memory ({e})")
            continue
        ok = ok and all(r.get("check", "pass") == "pass" for r in recs)
        kt.print_records(recs)
        print(f"  ({time.time() - t0:.1f}s)")
        records += recs
    kt.append_records(args.json, records)
    return 0 if ok else 5


if __name__ == "__main__":
    sys.exit(main())
