#!/usr/bin/env bash
# The one script for a GPU-machine run (run from the repository root, $OUT set):
# CUDA kernels (harness, PyTorch direct and ViT anchors), then the WebGPU benchmark (kernel
# checks vs the CPU kernel, op level fused vs composite, ViT-Tiny softmax vs G3B vs G3U).
# Prepare here first:  make -C kernels-cuda harness lib && bash bench/device/build.sh
# and carry: .device build/device kernels-cuda/build
set -u
cd "$(dirname "$0")/../.."
: "${OUT:?set OUT}"
T0=$(date +%s)
echo "== run-all start $(date -u +%FT%TZ)"
KARAT_DEVICE_BUDGET_S=${KARAT_CUDA_BUDGET_S:-200} bash kernels-cuda/device-run.sh
echo "cuda rc=$? after $(( $(date +%s) - T0 )) s"
OUT="$OUT/webgpu" bash bench/device/run-webgpu.sh "$@"
echo "webgpu rc=$? after $(( $(date +%s) - T0 )) s"
