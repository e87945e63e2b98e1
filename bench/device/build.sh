#!/usr/bin/env bash
# Builds what the GPU machine needs to run the WebGPU benchmark (it has no npm, no
# node_modules, no network):
#   build/device/webgpu-bench.mjs  bench/webgpu.ts + tfjs + tfjs-karat in one ESM file,
#                                  with the `webgpu` (Dawn) package left external
#   .device/                       node, Vulkan loader .debs, webgpu.tar.xz, env.sh
#                                  (made by ../shared/device/prepare.sh when missing)
# Usage, from the project root:  bash bench/device/build.sh [--smoke]
#   --smoke  also runs the bundle here (SwiftShader) with --quick --check.
# Then send to the GPU machine: the working tree plus the ignored paths
#   build/device  .device
# and run there:  bash bench/device/run-webgpu.sh   (writes JSON into "$OUT")
set -euo pipefail
cd "$(dirname "$0")/../.."
out=build/device
mkdir -p "$out"
esbuild=node_modules/.bin/esbuild
[ -x "$esbuild" ] || esbuild=node_modules/esbuild/bin/esbuild
# tfjs-node(-gpu) and the CUDA addon are optional, lazily loaded: keep them out.
# --ignore-annotations: tfjs packages declare "sideEffects" lists that would drop the
# bare imports registering the cpu backend, kernels and gradients.
"$esbuild" bench/webgpu.ts --bundle --platform=node --format=esm --target=node18 \
  --outfile="$out/webgpu-bench.mjs" \
  --external:webgpu --external:@tensorflow/tfjs-node --external:@tensorflow/tfjs-node-gpu \
  --external:node-fetch --ignore-annotations --log-level=warning \
  --banner:js="import {createRequire as __karatCreateRequire} from 'node:module'; const require = __karatCreateRequire(import.meta.url);"
ls -l "$out/webgpu-bench.mjs"
if [ ! -f .device/env.sh ]; then
  prep=../shared/device/prepare.sh
  [ -x "$prep" ] || prep=/work/shared/device/prepare.sh
  if [ -x "$prep" ]; then "$prep"; else echo "note: .device/ missing and no prepare.sh found" >&2; fi
fi
du -shc "$out" .device 2>/dev/null | tail -1
if [ "${1:-}" = "--smoke" ]; then
  node "$out/webgpu-bench.mjs" --quick --check --json "$out/smoke.json"
fi
