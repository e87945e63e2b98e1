#!/usr/bin/env bash
# Builds what the GPU machine needs to run the WebGPU benchmark (it has no npm, no
# node_modules, no network):
#   build/device/webgpu-bench.mjs  bench/webgpu.ts + tfjs + tfjs-karat in one ESM file,
#                                  with the `webgpu` (Dawn) package left external
#   .device/                       node, Vulkan loader .debs, webgpu.tar.xz, env.sh
#                                  (made by $KARAT_DEVICE_PREPARE when missing)
# Usage, from the project root:  bash bench/device/build.sh [--smoke]
#   --smoke  also runs the bundle here (SwiftShader) with --quick --check.
# Then send to the GPU machine: the working tree plus the ignored paths
#   build/device  .device
# and run there:  bash bench/device/run-webgpu.sh   (writes JSON into "$OUT")
set -euo pipefail
cd "$(dirname "$0")/../.."
out=build/device
bash bench/device/bundle.sh bench/webgpu.ts webgpu-bench.mjs
if [ "${1:-}" = "--smoke" ]; then
  node "$out/webgpu-bench.mjs" --quick --check --json "$out/smoke.json"
fi
