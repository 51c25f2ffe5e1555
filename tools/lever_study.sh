#!/usr/bin/env bash
# The new levers of the accuracy issue on the real-photo suite, at the default length (1000 steps):
#   hard99   the hard-feature loss, normal pixels above the batch's 0.99 quantile (--hard-quantile 0.99)
#   penalty  the off-distribution penalty on tools/penalty_images.py's images (--penalty-dir)
#   seg      the DeSTSeg-style segmentation head (--head cdo+seg)
# SEEDS=1 (default) is the screen: seed 111 of every class; SEEDS=3 adds seeds 112-113 for the levers that pass it
# (LEVERS="..."). Runs: result/photo/<experiment>/<class>/seed_<n>, paired with the default's result/photo/steps1000
# runs of the same seeds. Re-run the same command to continue.
# QUEUE=a|b splits the classes over two queues side by side (one thread each), as tools/photo_study.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/photo_queue.sh
export PENALTY=${PENALTY:-result/penalty_images}
[ -d "$PENALTY" ] || .venv/bin/python tools/penalty_images.py "$PENALTY"
EXPERIMENTS=${LEVERS:-"hard99 penalty seg"} SEEDS=${SEEDS:-1} tools/photo_suite.sh
