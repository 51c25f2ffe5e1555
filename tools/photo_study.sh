#!/usr/bin/env bash
# The real-photo study behind docs/results/photo_suite.md and docs/results/performance.md, in the order that
# answers most first; re-run the same command to continue (finished runs and PatchCore results are reused).
#   1. the default (1000 steps; the bf16 step on CPUs with native bf16) on every class: steps1000
#   2. anomalib's PatchCore on the same teacher (tools/peers.py, needs `make peers-venv`)
#   3. the fp32 step at 1000 steps (the default before the bf16 step): its paired baseline
#   4. 500 and 250 steps (the length study)
# Steps 1 and 2 run all 3 seeds (111-113) before 3 and 4, which run seed 111 and then the other two.
# (seed 111 of steps500 on every class and of steps250 / fp32-steps1000 on some ran first, when 500
# steps was the candidate default: docs/results/photo_suite.md)
# QUEUE=a|b splits the classes over two queues that run side by side (one thread each, no run in both);
# QUEUE=all (default) runs everything in one queue with JOBS=2.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/photo_queue.sh
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
# the default and PatchCore at all 3 seeds first (the paired comparison), then the length and precision study
EXPERIMENTS=steps1000 SEEDS=3 tools/photo_suite.sh
peers 3
for seeds in 1 3; do
  EXPERIMENTS=fp32-steps1000 SEEDS=$seeds tools/photo_suite.sh
  EXPERIMENTS="steps500 steps250" SEEDS=$seeds tools/photo_suite.sh
done
