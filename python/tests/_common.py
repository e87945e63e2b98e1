"""Shared helpers of the PyTorch-side checks (run by test/pytorch_twin.test.ts)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402

torch.set_num_threads(1)


def rel(a, b):
    """max |a - b| / max |b| (absolute when b is all zero); inf when a is not finite."""
    a, b = a.double(), b.double()
    if not torch.isfinite(a).all():
        return float("inf")
    den = b.abs().max().item()
    err = (a - b).abs().max().item()
    return err / den if den > 0 else err
