#!/usr/bin/env bash
# Creates (or reuses) the Python tools environment that the interop tests use to make real
# fixtures: Keras ViTs converted by tensorflowjs_converter, and timm ViTs saved with safetensors.
#
#   scripts/python-tools.sh [DIR]      (default DIR: .venv-tools in the repository root)
#
# The environment is built from Debian's /usr/bin/python3 with --system-site-packages, so it
# sees Debian's python3-torch and python3-torchvision (torch 1.13) and numpy; everything else is
# pinned below and installed from PyPI. A second run with the same pins does nothing. The tests
# find the interpreter through KARAT_PYTHON_TOOLS (or DIR/bin/python) and skip, with the reason,
# when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-.venv-tools}"
PY=/usr/bin/python3

# Pinned versions. tensorflowjs 4.22.0 converts tf_keras (Keras 2) models; TensorFlow 2.15 is
# the last release whose wheels keep numpy below 2 and so share Debian's numpy 1.24 with torch.
PINS=(
  "tensorflow-cpu==2.15.1"
  "tf-keras==2.15.1"
  "tensorflow-hub==0.16.1"
  "jax==0.4.23"
  "jaxlib==0.4.23"
  "timm==1.0.15"
  "safetensors==0.4.5"
  "huggingface-hub==0.26.5"
  "pandas==2.3.3"
  "wurlitzer==3.1.1"
)
# Installed without their declared dependencies: tensorflowjs declares flax and
# tensorflow-decision-forests for converters we do not use; its Keras converter imports
# tensorflow_decision_forests and jax at import time only, so those come in without their own
# training stacks.
NODEPS=(
  "tensorflowjs==4.22.0"
  "tensorflow-decision-forests==1.8.1"
)
STAMP_TEXT="$(printf '%s\n' "${PINS[@]}" "${NODEPS[@]}")"
STAMP="$DIR/.karat-pins"

if [ -x "$DIR/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$STAMP_TEXT" ]; then
  echo "python tools: $DIR is up to date"
  exit 0
fi

start=$(date +%s)
if ! "$PY" -c 'import torch, torchvision, numpy' >/dev/null 2>&1; then
  echo "python tools: $PY lacks torch/torchvision/numpy (Debian: python3-torch python3-torchvision)" >&2
  exit 1
fi
rm -f "$STAMP"
[ -x "$DIR/bin/python" ] || "$PY" -m venv --system-site-packages "$DIR"
# Keep Debian's numpy (torch is built against it).
NUMPY="$("$PY" -c 'import numpy; print(numpy.__version__)')"
CONSTRAINTS="$DIR/constraints.txt"
printf 'numpy==%s\n' "$NUMPY" > "$CONSTRAINTS"
PIP=("$DIR/bin/python" -m pip --disable-pip-version-check --no-input -q)
"${PIP[@]}" install -c "$CONSTRAINTS" "${PINS[@]}"
"${PIP[@]}" install --no-deps "${NODEPS[@]}"
"$DIR/bin/python" - <<'EOF'
import tensorflowjs, tf_keras, timm, safetensors, torch
print("python tools: tensorflowjs", tensorflowjs.__version__, "tf_keras", tf_keras.__version__,
      "timm", timm.__version__, "torch", torch.__version__)
EOF
printf '%s' "$STAMP_TEXT" > "$STAMP"
echo "python tools: installed in $(( $(date +%s) - start )) s"
