#!/usr/bin/env bash
# On the GPU machine, from the project root (after bench/device/build-vit.sh here, with
# build/device and .device sent along):   bash bench/device/run-webgpu-vit.sh [extra args]
# ViT-Tiny 224/16 batch 32, softmax and G3B, stock tfjs vs fused layers + fused AdamW, without
# and with the lean backward pass (+ deferred submit 400): train step and inference ms, peak
# bytes, GPU kernel ms, dispatches; then the per-kernel profile of one step (stock and fused);
# then the GPU-buffer memory of one step per variant at batch 32 (webgpu_memory).
# About 4-6 minutes on an H100.
# Writes into "$OUT" (default results/device): webgpu-vit.json/.log, webgpu-memory.json/.log.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-results/device}
mkdir -p "$OUT"
# shellcheck disable=SC1091
source .device/env.sh > "$OUT/env-vit.log" 2>&1 || { echo "env.sh failed, see $OUT/env-vit.log"; cat "$OUT/env-vit.log"; exit 3; }
node build/device/webgpu-vit.mjs --json "$OUT/webgpu-vit.json" --profile "$@" 2>&1 | tee "$OUT/webgpu-vit.log"
rc=${PIPESTATUS[0]}
echo "exit $rc" | tee -a "$OUT/webgpu-vit.log"
node build/device/webgpu-memory.mjs --batches 32 --variants stock,fused,fused+lean \
  --json "$OUT/webgpu-memory.json" 2>&1 | tee "$OUT/webgpu-memory.log"
rc2=${PIPESTATUS[0]}
echo "exit $rc2" | tee -a "$OUT/webgpu-memory.log"
[ "$rc" -ne 0 ] && exit "$rc"
exit "$rc2"
