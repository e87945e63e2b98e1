#!/usr/bin/env bash
# On the GPU machine (after bench/device/build-train.sh here; carry build/device and .device):
#   bash bench/device/run-train.sh     -> "$OUT"/train-*.log and runs (summary.json, log.csv)
# Training throughput of the `quick` preset's model and of ViT-Tiny G3B (CIFAR-10 subset,
# patch 4) on webgpu (the GPU through Dawn/Vulkan), a few steps each: images/s for
# docs/training.md. About 3 minutes.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-results/device}
mkdir -p "$OUT"
# shellcheck disable=SC1091
source .device/env.sh > "$OUT/env.log" 2>&1 || { echo "env.sh failed"; cat "$OUT/env.log"; exit 3; }
cli="node build/device/karat-cli.mjs"
run() {  # name, then karat train flags
  local name=$1; shift
  timeout 240 $cli train --backend webgpu --out-dir "$OUT/runs" --run-name "$name" --progress lines --test-limit 500 "$@" \
    > "$OUT/train-$name.log" 2>&1
  echo "$name rc=$?"; tail -n 4 "$OUT/train-$name.log"
}
run quick-G3B --preset quick --epochs 1 --steps-per-epoch 40
run quick-softmax --preset quick --attention softmax --epochs 1 --steps-per-epoch 40
run tiny-G3B --model tiny --patch-size 4 --epochs 1 --steps-per-epoch 20 --batch-size 128 --mixup 0 --cutmix 0
run tiny-softmax --model tiny --patch-size 4 --attention softmax --epochs 1 --steps-per-epoch 20 --batch-size 128 --mixup 0 --cutmix 0
