#!/usr/bin/env bash
# Shared by the bench/device/build*.sh scripts: bundles one TypeScript entry with tfjs and
# tfjs-karat into a single ESM file under build/device/ for the GPU machine (no npm, no
# node_modules there), and makes sure .device/ (node, Vulkan loader, env.sh) exists.
#   bash bench/device/bundle.sh ENTRY.ts OUTPUT.mjs
# The `webgpu` (Dawn) package stays external (it travels in .device/webgpu.tar.xz);
# tfjs-node(-gpu) and the CUDA addon are optional, lazily loaded, and kept out.
# --ignore-annotations: tfjs packages declare "sideEffects" lists that would drop the bare
# imports registering the cpu backend, kernels and gradients.
set -euo pipefail
cd "$(dirname "$0")/../.."
entry=$1
out=build/device
mkdir -p "$out"
esbuild=node_modules/.bin/esbuild
[ -x "$esbuild" ] || esbuild=node_modules/esbuild/bin/esbuild
"$esbuild" "$entry" --bundle --platform=node --format=esm --target=node18 \
  --outfile="$out/$2" \
  --external:webgpu --external:@tensorflow/tfjs-node --external:@tensorflow/tfjs-node-gpu \
  --external:node-fetch --ignore-annotations --log-level=warning \
  --banner:js="import {createRequire as __karatCreateRequire} from 'node:module'; const require = __karatCreateRequire(import.meta.url);"
ls -l "$out/$2"
if [ ! -f .device/env.sh ]; then
  # KARAT_DEVICE_PREPARE: the GPU machine's set-up script (writes .device/: node, Vulkan loader, env.sh)
  prep=${KARAT_DEVICE_PREPARE:-}
  if [ -n "$prep" ] && [ -x "$prep" ]; then "$prep"; else echo "note: .device/ missing; set KARAT_DEVICE_PREPARE to the script that makes it" >&2; fi
fi
du -shc "$out" .device 2>/dev/null | tail -1
