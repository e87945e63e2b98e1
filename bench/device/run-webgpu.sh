#!/usr/bin/env bash
# On the GPU machine, from the project root (after bench/device/build.sh here, with
# build/device and .device sent along):   bash bench/device/run-webgpu.sh [extra args]
# Checks the fused WebGPU kernels against the CPU kernel, then benchmarks fused vs
# composite (op level, then ViT-Tiny unless KARAT_BENCH_MODELS=0); writes into "$OUT" (default results/device):
#   webgpu-bench.json  {meta, check, records, ratios}
#   webgpu-bench.log   console output;  gpu.txt  nvidia-smi / vulkan adapter notes
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-results/device}
mkdir -p "$OUT"
# shellcheck disable=SC1091
source .device/env.sh > "$OUT/env.log" 2>&1 || { echo "env.sh failed, see $OUT/env.log"; cat "$OUT/env.log"; exit 3; }
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || true; } > "$OUT/gpu.txt"
node --version >> "$OUT/gpu.txt" 2>&1
models=--models
[ "${KARAT_BENCH_MODELS:-1}" = 0 ] && models=
node build/device/webgpu-bench.mjs --check $models --json "$OUT/webgpu-bench.json" "$@" 2>&1 | tee "$OUT/webgpu-bench.log"
rc=${PIPESTATUS[0]}
echo "exit $rc" | tee -a "$OUT/webgpu-bench.log"
exit "$rc"
