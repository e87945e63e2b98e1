#!/usr/bin/env bash
# Builds the issue-9 ViT benchmark (stock vs fused layers/AdamW on webgpu) for the GPU machine:
#   build/device/webgpu-vit.mjs   bench/webgpu_vit.ts + tfjs + tfjs-karat in one ESM file
#                                 (the `webgpu` Dawn package left external, as build.sh)
#   .device/                      node, Vulkan loader, env.sh (../shared/device/prepare.sh)
# Usage, from the project root:  bash bench/device/build-vit.sh [--smoke]
#   --smoke  also runs the bundle here (SwiftShader) on the smallest case.
# On the GPU machine (build/device and .device carried):  bash bench/device/run-webgpu-vit.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
out=build/device
mkdir -p "$out"
esbuild=node_modules/.bin/esbuild
[ -x "$esbuild" ] || esbuild=node_modules/esbuild/bin/esbuild
"$esbuild" bench/webgpu_vit.ts --bundle --platform=node --format=esm --target=node18 \
  --outfile="$out/webgpu-vit.mjs" \
  --external:webgpu --external:@tensorflow/tfjs-node --external:@tensorflow/tfjs-node-gpu \
  --external:node-fetch --ignore-annotations --log-level=warning \
  --banner:js="import {createRequire as __karatCreateRequire} from 'node:module'; const require = __karatCreateRequire(import.meta.url);"
ls -l "$out/webgpu-vit.mjs"
if [ ! -f .device/env.sh ]; then
  prep=../shared/device/prepare.sh
  [ -x "$prep" ] || prep=/work/shared/device/prepare.sh
  if [ -x "$prep" ]; then "$prep"; else echo "note: .device/ missing and no prepare.sh found" >&2; fi
fi
du -shc "$out" .device 2>/dev/null | tail -1
if [ "${1:-}" = "--smoke" ]; then
  node "$out/webgpu-vit.mjs" --quick --attention softmax --variants fused --iters 1 --warmup 0 \
    --json "$out/smoke-vit.json"
fi
