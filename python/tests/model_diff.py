"""model_diff.py A.safetensors B.safetensors: max over tensors of max|a-b|/max|b| of two model files
with the same tensors (one JSON line)."""
import json
import sys

import _common
from _common import rel
from tfjs_karat import safetensors as st

a, _ = st.load(sys.argv[1])
b, _ = st.load(sys.argv[2])
assert sorted(a) == sorted(b), f"different tensors: {sorted(set(a) ^ set(b))}"
print(json.dumps({"maxRel": max(rel(a[k], b[k]) for k in a)}))
