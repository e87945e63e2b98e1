#!/usr/bin/env bash
# Builds the `karat` CLI as one file for the GPU machine (no npm, no node_modules there):
#   build/device/karat-cli.mjs   src/cli/run.ts + tfjs + tfjs-karat, `webgpu` (Dawn) external
# The embedded CIFAR-10 subset is found in data/ of the working tree that travels along.
# Usage, from the project root:  bash bench/device/build-train.sh [--smoke]
# Send: the working tree plus build/device and .device; run there: bash bench/device/run-train.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
out=build/device
mkdir -p "$out"
esbuild=node_modules/.bin/esbuild
[ -x "$esbuild" ] || esbuild=node_modules/esbuild/bin/esbuild
"$esbuild" src/cli/run.ts --bundle --platform=node --format=esm --target=node18 \
  --outfile="$out/karat-cli.mjs" \
  --external:webgpu --external:@tensorflow/tfjs-node --external:@tensorflow/tfjs-node-gpu \
  --external:node-fetch --ignore-annotations --log-level=warning \
  --banner:js="import {createRequire as __karatCreateRequire} from 'node:module'; const require = __karatCreateRequire(import.meta.url);"
ls -l "$out/karat-cli.mjs"
if [ ! -f .device/env.sh ]; then
  prep=../shared/device/prepare.sh
  [ -x "$prep" ] || prep=/work/shared/device/prepare.sh
  if [ -x "$prep" ]; then "$prep"; else echo "note: .device/ missing and no prepare.sh found" >&2; fi
fi
if [ "${1:-}" = "--smoke" ]; then
  node "$out/karat-cli.mjs" train --preset quick --backend cpu --epochs 1 --steps-per-epoch 1 --test-limit 50 \
    --out-dir "$out/smoke-runs" --run-name smoke --progress lines
fi
