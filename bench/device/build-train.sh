#!/usr/bin/env bash
# Builds the `karat` CLI as one file for the GPU machine (no npm, no node_modules there):
#   build/device/karat-cli.mjs   src/cli/run.ts + tfjs + tfjs-karat, `webgpu` (Dawn) external
# The CIFAR-10 subset is found in packages/cifar10-subset/ of the working tree that travels along.
# Usage, from the project root:  bash bench/device/build-train.sh [--smoke]
# Send: the working tree plus build/device and .device; run there: bash bench/device/run-train.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
out=build/device
bash bench/device/bundle.sh src/cli/run.ts karat-cli.mjs
if [ "${1:-}" = "--smoke" ]; then
  node "$out/karat-cli.mjs" train --preset quick --backend cpu --epochs 1 --steps-per-epoch 1 --test-limit 50 \
    --out-dir "$out/smoke-runs" --run-name smoke --progress lines
fi
