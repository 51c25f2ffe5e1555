#!/usr/bin/env bash
# The real-photo study behind docs/results/photo_suite.md and docs/results/performance.md, in the order that
# answers most first; re-run the same command to continue (finished runs and PatchCore results are reused).
#   1. the candidate default (500 steps, bf16 + channels-last step) on every class
#   2. anomalib's PatchCore on the same teacher (tools/peers.py, needs `make peers-venv`)
#   3. today's default (1000 steps, fp32 NCHW step): the paired baseline of the training-cost change
#   4. 250 steps (the length study), then seeds 112 and 113 of 1-3
# QUEUE=a|b splits the classes over two queues that run side by side (one thread each, no run in both);
# QUEUE=all (default) runs everything in one queue with JOBS=2.
set -euo pipefail
cd "$(dirname "$0")/.."
QUEUE=${QUEUE:-all}
case "$QUEUE" in
  a) export CLASSES=${CLASSES:-"lunar fur fundus"} JOBS=1 ;;
  b) export CLASSES=${CLASSES:-"stars flower rocket"} JOBS=1 ;;
  all) export CLASSES=${CLASSES:-"lunar fur fundus stars flower rocket"} ;;
esac
export OMP_NUM_THREADS=1
peers() {  # $1 = seeds
  if [ -f .venv-peers/.cdo-peers-installed ]; then
    local args=()
    for c in $CLASSES; do args+=(--class-name "$c"); done
    .venv-peers/bin/python tools/peers.py --data-root result/photo_data "${args[@]}" --seeds "$1" \
      --peer patchcore --threads 1 --cdo-runs result/photo --out result/photo_peers
  else
    echo "no .venv-peers (make peers-venv): PatchCore skipped" >&2
  fi
}
for seeds in 1 3; do
  EXPERIMENTS=steps500 SEEDS=$seeds tools/photo_suite.sh
  peers $seeds
  EXPERIMENTS=fp32-steps1000 SEEDS=$seeds tools/photo_suite.sh
  EXPERIMENTS=steps250 SEEDS=$seeds tools/photo_suite.sh
done
