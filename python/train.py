#!/usr/bin/env python3
"""Entry point for `torchrun --nproc_per_node=K python/train.py ...` (see tfjs_karat/train.py)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tfjs_karat.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
