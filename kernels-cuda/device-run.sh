#!/usr/bin/env bash
# kernels-cuda/device-run.sh: everything the CUDA side needs checked and measured on the GPU
# machine, in one go, within about 4 minutes. Run from the repository root with $OUT set:
#
#   OUT=/some/dir bash kernels-cuda/device-run.sh
#
# Prefers binaries prebuilt on the development machine (make -C kernels-cuda harness lib, which
# builds SASS for sm_80/sm_90 with the static CUDA runtime into kernels-cuda/build/, git-ignored:
# carry that folder). Falls back to nvcc on the GPU machine when they are missing.
# Writes (at most 4 files, all under $OUT/cuda/):
#   run.log        everything printed
#   records.jsonl  bench records (bench/common.ts format): harness 'fused', PyTorch
#                  'torch-direct' / 'fused-torch' per op, ViT 'torch-softmax' / 'torch-direct-*' /
#                  'torch-fused-*' train and infer steps
#   cases.bin      inputs and CUDA outputs of the small cases, for
#                  npx tsx kernels-cuda/harness/compare.ts $OUT/cuda/cases.bin   (on the dev machine)
#   summary.txt    pass/fail lines and the key numbers
# Exit status: 0 when every correctness check passed.
set -u
: "${OUT:?set OUT to the output folder}"
D="$OUT/cuda"
mkdir -p "$D"
LOG="$D/run.log"
exec > >(tee -a "$LOG") 2>&1
BUDGET=${KARAT_DEVICE_BUDGET_S:-225}
T0=$(date +%s)
left() { local l=$((BUDGET - ($(date +%s) - T0))); [ "$l" -lt 5 ] && l=5; echo "$l"; }
REC="$D/records.jsonl"
SUM="$D/summary.txt"
: >"$SUM"
status=0
note() { echo "$*" | tee -a "$SUM"; }

echo "== kernels-cuda device run, $(date -u +%FT%TZ), budget ${BUDGET}s"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | tee -a "$SUM"

B=kernels-cuda/build
if [ ! -x "$B/karat_harness" ] || [ ! -f "$B/libkarat_cuda.so" ]; then
  echo "== prebuilt binaries missing: building with nvcc here (sm_90 only)"
  if command -v nvcc >/dev/null 2>&1 && command -v make >/dev/null 2>&1; then
    timeout "$(left)" make -C kernels-cuda harness lib \
      ARCHS="-gencode arch=compute_90,code=sm_90" || note "BUILD FAILED"
  else
    note "BUILD SKIPPED: nvcc or make missing and no prebuilt binaries in $B"
  fi
fi

PY=$(command -v python3 || command -v python || true)

# 1. Standalone harness: correctness vs float64 reference, determinism, timings, dump.
if [ -x "$B/karat_harness" ]; then
  echo "== karat_harness (all cases)"
  if timeout "$(left)" "$B/karat_harness" --cases all --iters 50 --warmup 5 --json "$REC" --dump "$D/cases.bin"; then
    note "harness: PASS (all cases within 1e-4 of the float64 reference, backward bitwise deterministic)"
  else
    note "harness: FAIL (exit $?)"; status=1
  fi
else
  note "harness: NOT RUN (no binary)"; status=1
fi

# 2. PyTorch direct per-op timings; fused kernels from PyTorch; harness outputs vs PyTorch float64.
if [ -n "$PY" ]; then
  echo "== torch_direct.py"
  CHECK=()
  [ -f "$D/cases.bin" ] && CHECK=(--check "$D/cases.bin")
  if timeout "$(left)" "$PY" kernels-cuda/harness/torch_direct.py --json "$REC" --lib "$B/libkarat_cuda.so" "${CHECK[@]}"; then
    note "torch_direct: PASS"
  else
    note "torch_direct: FAIL or timeout (exit $?)"; status=1
  fi
  # 3. Whole-model ViT steps (perf anchors), leaving ~10 s for the summary.
  echo "== torch_vit.py"
  VB=$(( $(left) - 15 ))
  if [ "$VB" -gt 20 ]; then
    if timeout "$(( VB + 10 ))" "$PY" kernels-cuda/harness/torch_vit.py --json "$REC" --lib "$B/libkarat_cuda.so" \
        --budget-s "$VB"; then
      note "torch_vit: done"
    else
      note "torch_vit: FAIL or timeout (exit $?)"; status=1
    fi
  else
    note "torch_vit: SKIPPED (time budget used)"
  fi
else
  note "python: not found, PyTorch scripts not run"; status=1
fi

# 4. Summary table of the records.
if [ -n "$PY" ] && [ -f "$REC" ]; then
  "$PY" - "$REC" <<'EOF' | tee -a "$SUM"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"{'case':<22} {'impl':<22} {'pass':<8} {'ms_median':>10} {'peak MiB':>10}  check")
for r in rows:
    print(f"{r['case']:<22} {r['impl']:<22} {r['pass']:<8} {r['ms_median']:>10.3f} {r['peak_bytes']/2**20:>10.1f}  {r.get('check','')}")
EOF
fi
note "total $(( $(date +%s) - T0 ))s, status $status"
exit $status
