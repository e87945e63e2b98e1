#!/usr/bin/env bash
# Builds the ViT training benchmark (stock vs fused layers/AdamW on webgpu) for the GPU machine:
#   build/device/webgpu-vit.mjs   bench/webgpu_vit.ts + tfjs + tfjs-karat in one ESM file
#                                 (the `webgpu` Dawn package left external, as build.sh)
#   build/device/webgpu-memory.mjs  bench/webgpu_memory.ts (GPU-buffer memory per variant)
#   .device/                      node, Vulkan loader, env.sh (made by $KARAT_DEVICE_PREPARE)
# Usage, from the project root:  bash bench/device/build-vit.sh [--smoke]
#   --smoke  also runs the bundle here (SwiftShader) on the smallest case.
# On the GPU machine (build/device and .device carried):  bash bench/device/run-webgpu-vit.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
out=build/device
bash bench/device/bundle.sh bench/webgpu_vit.ts webgpu-vit.mjs
bash bench/device/bundle.sh bench/webgpu_memory.ts webgpu-memory.mjs
if [ "${1:-}" = "--smoke" ]; then
  node "$out/webgpu-vit.mjs" --quick --attention softmax --variants fused --iters 1 --warmup 0 \
    --json "$out/smoke-vit.json"
  node "$out/webgpu-memory.mjs" --attention softmax --variants fused+lean --batches 1,2 --depth 1 --image 32 --patch 8 \
    --json "$out/smoke-memory.json"
fi
