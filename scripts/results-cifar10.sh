#!/usr/bin/env bash
# Softmax vs Fourier-KArAt (G3B, G3U) with the same small ViT and budget on CIFAR-10
# (32x32, patch 4), as published in docs/results.md. The three runs go in parallel
# (one process each); shared settings are in docs/results/cifar10-small.json.
#   bash scripts/results-cifar10.sh [cifar-10-binary.tar.gz]   # writes runs/results/{softmax,G3B,G3U}/
# The archive defaults to where `karat train --dataset cifar10 --download` puts it.
set -euo pipefail
archive=$(realpath "${1:-${KARAT_DATA_DIR:-$HOME/.cache/tfjs-karat}/cifar-10-binary.tar.gz}")
[ -f "$archive" ] || { echo "no CIFAR-10 archive at $archive (pass one, or run karat train --dataset cifar10 --download)" >&2; exit 1; }
data=(--data-dir "$archive")
cd "$(dirname "$0")/.."
CFG=docs/results/cifar10-small.json
node bin/karat.cjs train --config $CFG "${data[@]}" --attention softmax --run-name softmax > runs/results-softmax.log 2>&1 &
node bin/karat.cjs train --config $CFG "${data[@]}" --attention fourier --mode blockwise --run-name G3B > runs/results-G3B.log 2>&1 &
node bin/karat.cjs train --config $CFG "${data[@]}" --attention fourier --mode universal --run-name G3U > runs/results-G3U.log 2>&1 &
wait
