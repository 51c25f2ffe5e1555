#!/usr/bin/env bash
# GPU check (issues 6, 17): benches first, the CUDA test suite last; every step capped, the whole run in a budget.
#
# Usage:   OUT=dir tools/gpu_check.sh 2>&1 | tee dir/console.log     (default OUT: ./gpu_check_out)
# Env:     PYTHON              interpreter (default .venv/bin/python when present, else python3)
#          GPU_CHECK_BUDGET_S  wall-clock budget of the whole script (default 540 = 9 min): a step's cap is cut
#                              to what is left minus GPU_CHECK_RESERVE_S (default 20, for summary + packing),
#                              a step with less than GPU_CHECK_MIN_STEP_S (default 10) left is skipped
#          GPU_CHECK_SLOW=1    also run the slow-marked GPU tests (compiles a real fp16 package)
#          GPU_CHECK_ITERS     timed iterations of the torch benches (default 300)
#          GPU_CHECK_DRY_RUN=1 log each step's command instead of running it; ordering, budget, summary and
#                              packing run for real (tests/tools/test_gpu_check.py does this on a CPU);
#                              GPU_CHECK_DRY_SLEEP=S makes each dry step take S seconds
#
# Steps, in this order (each logs to logs/<step>.log, is timed and capped; a failed step does not stop the others):
#   env          versions, GPU, importable modules                          -> env.json
#   train        demo data + fast training (1 process)                      -> train_throughput.json
#   export       cdo-export of that run (model.onnx)
#   aoti         AOTInductor fp16 package (fused Triton head; retried without it on failure) -> aoti.json
#   bench_torch  cdo-bench: the torch backend (+ cdo_train.api eager reference), batches 1,8,64 -> bench_torch.json
#   bench_fair   tools/gpu_bench.py: fair eager baseline (fp16 autocast, channels-last, pinned uint8 upload,
#                reference head), its CUDA-graph ceiling and the AOTI fast path; device-only and
#                host-to-host throughput separately                         -> gpu_bench.json
#   bench_onnx   cdo-bench: onnxruntime and tensorrt rows                   -> bench_onnx.json
#   tests        pytest -m gpu (tests/gpu + backend conformance), last: the longest step -> pytest_gpu.xml
# Then the summary (gpu_check.json, a table printed last) and the packing: $OUT gets gpu_check.tar.gz (every
# log and JSON, under 15 MiB) and gpu_check.json -- the device returns at most 8 files, two folders deep.
# Without a CUDA GPU the GPU-only steps are skipped and a small CPU smoke run (resnet18, 64 px) exercises
# the rest; the script exits 0 unless a step that ran failed.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
OUT="${OUT:-$REPO/gpu_check_out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$REPO/.venv/bin/python" ]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 PYTHON
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")"  # data, runs, bundle: big files never reach $OUT
RES="$WORK/gpu_check"                                   # what the archive holds
mkdir -p "$RES/logs"
STEPS="$RES/steps.tsv"
: > "$STEPS"
START=$(date +%s)
BUDGET="${GPU_CHECK_BUDGET_S:-540}"
RESERVE="${GPU_CHECK_RESERVE_S:-20}"
MIN_STEP="${GPU_CHECK_MIN_STEP_S:-10}"
DRY="${GPU_CHECK_DRY_RUN:-0}"
STEPPY="$REPO/tools/gpu_check_steps.py"
# step caps in seconds, in run order (benches before the test suite; aoti_unfused only if aoti failed)
PLAN="env:30 train:120 export:120 aoti:150 aoti_unfused:120 bench_torch:60 bench_fair:90 bench_onnx:45 tests:240"

cap_of() { local kv; for kv in $PLAN; do [ "${kv%%:*}" = "$1" ] && { echo "${kv#*:}"; return; }; done; echo 60; }

finish() {
  local rc=$?
  trap - EXIT
  "$PYTHON" "$STEPPY" summary "$RES" "$BUDGET" "$(( $(date +%s) - START ))" \
    || echo "!! summary failed (rc=$?); the archive still holds every log" >&2
  "$PYTHON" "$STEPPY" pack "$RES" "$OUT" || echo "!! packing failed (rc=$?)" >&2
  rm -rf "$WORK"
  exit "$rc"
}
trap finish EXIT
trap 'exit 143' TERM INT  # run the EXIT trap (summary + archive) when the caller stops us

echo "== gpu_check: budget ${BUDGET}s (${RESERVE}s kept for summary + packing); step caps:" \
     "$(echo "$PLAN" | sed 's/:/ /g; s/\([0-9]\) /\1s, /g')s" >&2

# step NAME CMD... : run (shell functions too) within min(cap, budget left), time and record it;
# returns the command's status (0 when skipped for lack of time: a skip is recorded, not retried)
step() {
  local name="$1"; shift
  local limit t0 t1 rc st left
  limit=$(cap_of "$name")
  left=$(( BUDGET - RESERVE - ($(date +%s) - START) ))
  if [ "$left" -lt "$MIN_STEP" ]; then skip "$name" "time budget ${BUDGET}s spent"; return 0; fi
  [ "$limit" -gt "$left" ] && limit="$left"
  echo "== $name (cap ${limit}s, $(( left ))s left): $*" >&2
  t0=$(date +%s%N)
  if [ "$DRY" = 1 ]; then
    echo "dry run: $*" > "$RES/logs/$name.log"
    sleep "${GPU_CHECK_DRY_SLEEP:-0}"
    rc=0
  else
    timeout --kill-after=10 "$limit" bash -c "$(declare -f run_tests bench fair_bench)"$'\n''"$@"' _ "$@" \
      > "$RES/logs/$name.log" 2>&1
    rc=$?
  fi
  t1=$(date +%s%N)
  if [ "$DRY" = 1 ]; then st="dry-run"; elif [ "$rc" -eq 0 ]; then st=ok
  elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then st="failed (timeout ${limit}s)"; else st="failed (rc=$rc)"; fi
  printf '%s\t%s\t%d.%d\t%s\n' "$name" "$st" $(( (t1 - t0) / 1000000000 )) $(( (t1 - t0) / 100000000 % 10 )) \
    "$limit" >> "$STEPS"
  [ "$rc" -ne 0 ] && tail -n 15 "$RES/logs/$name.log" >&2
  return "$rc"
}
skip() { printf '%s\t%s\t0\t-\n' "$1" "skipped ($2)" >> "$STEPS"; echo "== $1: skipped ($2)" >&2; }

# -- the commands of the steps (step runs them in a fresh bash under timeout) ---------------------
run_tests() {
  local slow=""
  [ "${GPU_CHECK_SLOW:-0}" = 1 ] && slow=1
  CDO_SLOW="$slow" "$PYTHON" -m pytest -q -m gpu -rs -p no:cacheprovider --junitxml="$RES/pytest_gpu.xml" \
    tests/gpu tests/deploy/backends/test_backend_conformance.py
  local rc=$?
  [ "$rc" -eq 5 ] && return 0  # nothing selected
  return "$rc"
}
bench() { "$PYTHON" -c 'import sys; from cdo_deploy.cli import bench_main; bench_main(sys.argv[1:])' "$@"; }
fair_bench() { "$PYTHON" "$REPO/tools/gpu_bench.py" "$@"; }
export RES REPO

# -- env, train, export, aoti --------------------------------------------------------------------
step env "$PYTHON" "$STEPPY" env "$RES"
if [ "$DRY" = 1 ]; then HAS_CUDA="${GPU_CHECK_DRY_CUDA:-1}"; else
  HAS_CUDA=$("$PYTHON" -c "import json,sys; print(int(bool(json.load(open(sys.argv[1])).get('cuda'))))" \
    "$RES/env.json" 2>/dev/null || echo 0)
fi
step train "$PYTHON" "$STEPPY" train "$WORK" "$RES" "$HAS_CUDA"
RUN_DIR="$(cat "$WORK/run_dir.txt" 2>/dev/null || true)"
BUNDLE="$WORK/bundle"
[ "$DRY" = 1 ] && RUN_DIR="${RUN_DIR:-$WORK/runs/dry}" && mkdir -p "$BUNDLE" && : > "$BUNDLE/model.json"
if [ -n "$RUN_DIR" ]; then
  step export "$PYTHON" -c 'import sys; from cdo_train.export.cli import main; main(sys.argv[1:])' \
    "$RUN_DIR" -o "$BUNDLE" --max-batch 64
else
  skip export "no trained run"
fi
if [ "$HAS_CUDA" != 1 ]; then
  skip aoti "no CUDA GPU"
elif [ ! -f "$BUNDLE/model.json" ]; then
  skip aoti "no bundle"
else
  step aoti "$PYTHON" "$STEPPY" aoti "$RUN_DIR" "$BUNDLE" "$RES" \
    || step aoti_unfused "$PYTHON" "$STEPPY" aoti "$RUN_DIR" "$BUNDLE" "$RES" --no-fused-head
fi

# -- benches (before the test suite) -------------------------------------------------------------
ITERS="${GPU_CHECK_ITERS:-300}"
if [ ! -f "$BUNDLE/model.json" ]; then
  skip bench_torch "no bundle"; skip bench_fair "no bundle"; skip bench_onnx "no bundle"
elif [ "$HAS_CUDA" = 1 ]; then
  step bench_torch bench "$BUNDLE" --backend torch --batch 1,8,64 --warmup 20 --iters "$ITERS" \
    --device cuda:0 --image-size 256x256 --torch "$RUN_DIR" --json "$RES/bench_torch.json" -v
  step bench_fair fair_bench --run "$RUN_DIR" --bundle "$BUNDLE" --device cuda:0 --batch 1,8,64 --warmup 20 \
    --iters "$(( ITERS / 3 ))" --json "$RES/gpu_bench.json"
  step bench_onnx bench "$BUNDLE" --backend onnxruntime,tensorrt --batch 1,8,64 --warmup 2 --iters 10 \
    --variant fp32 --image-size 256x256 --json "$RES/bench_onnx.json" -v
else  # CPU smoke: every backend gets its row (torch/tensorrt: unavailable, no package/engine here)
  skip bench_torch "no CUDA GPU"
  step bench_fair fair_bench --run "$RUN_DIR" --device cpu --batch 1,4 --warmup 1 --iters 3 \
    --json "$RES/gpu_bench.json"
  step bench_onnx bench "$BUNDLE" --backend onnxruntime,tensorrt,torch --batch 1,8,64 --warmup 1 --iters 5 \
    --device cpu --image-size 64x64 --json "$RES/bench_onnx.json"
fi

# -- the CUDA test suite, last -------------------------------------------------------------------
step tests run_tests

grep -q $'\tfailed' "$STEPS" && exit 1
exit 0
