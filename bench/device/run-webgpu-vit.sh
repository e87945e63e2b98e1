#!/usr/bin/env bash
# On the GPU machine, from the project root (after bench/device/build-vit.sh here, with
# build/device and .device sent along):   bash bench/device/run-webgpu-vit.sh [extra args]
# ViT-Tiny 224/16 batch 32, softmax and G3B, stock tfjs vs fused layers + fused AdamW (+ deferred
# submit 400): train step and inference ms, peak bytes, GPU kernel ms, dispatches; then the
# per-kernel profile of one step (stock and fused). About 3-5 minutes on an H100.
# Writes into "$OUT" (default results/device): webgpu-vit.json, webgpu-vit.log.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-results/device}
mkdir -p "$OUT"
# shellcheck disable=SC1091
source .device/env.sh > "$OUT/env-vit.log" 2>&1 || { echo "env.sh failed, see $OUT/env-vit.log"; cat "$OUT/env-vit.log"; exit 3; }
node build/device/webgpu-vit.mjs --json "$OUT/webgpu-vit.json" --profile "$@" 2>&1 | tee "$OUT/webgpu-vit.log"
rc=${PIPESTATUS[0]}
echo "exit $rc" | tee -a "$OUT/webgpu-vit.log"
exit "$rc"
