"""Reads each safetensors file given with the Python reader; prints one JSON line per file:
{"file": ..., "error": the refusal or null} (run by test/pytorch_twin.test.ts, which reads the
same files with the TypeScript reader)."""
import json
import sys

import _common  # noqa: F401  (puts python/ on the path)
from tfjs_karat import safetensors as st

for path in sys.argv[1:]:
    try:
        st.load(path)
        err = None
    except st.SafetensorsError as e:
        err = str(e)
    print(json.dumps({"file": path, "error": err}))
