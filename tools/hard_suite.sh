#!/usr/bin/env bash
# Hard validation suite (docs/hard_surfaces.md): plain CDO vs the new default on stochastic,
# fine-grained, coloured and low-contrast surfaces with subtle defects, SEEDS seeds each;
# the easy demo classes are checked the same way. On 2 CPU cores: about 1-4 min per run
# (15 runs per experiment with the defaults below).
#
#   tools/hard_suite.sh                     # everything, into result/hard
#   SEEDS=1 EXPERIMENTS="baseline" tools/hard_suite.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
TRAIN=${TRAIN:-.venv/bin/cdo-train}
DATA=${DATA:-result/hard_data}
OUT=${OUT:-result/hard}
SEEDS=${SEEDS:-3}
EASY_SEEDS=${EASY_SEEDS:-$SEEDS}
EXPERIMENTS=${EXPERIMENTS:-"baseline default"}

# 40 train, 8 good + 16 defective test images per class, 256 px, deterministic.
$PY -m cdo_train.data.demo "$DATA" --classes turf cells speckle weave grain --n-train 40

preset() {  # experiment -> extra presets on top of configs/demo.yaml (128 px, 12 epochs)
  case "$1" in
    baseline) echo "" ;;                                 # plain CDO: the paper's noise rectangles
    default) echo "--config configs/hard.yaml" ;;        # the new default: 36 epochs
    realistic) echo "--config configs/realistic.yaml" ;; # realistic anomalies (did not help)
    *) echo "unknown experiment $1" >&2; exit 1 ;;
  esac
}

for exp in $EXPERIMENTS; do
  # shellcheck disable=SC2046
  $TRAIN --config configs/demo.yaml $(preset "$exp") --data-root "$DATA" \
    --class-name turf --class-name cells --class-name speckle --seeds "$SEEDS" \
    --output-dir "$OUT/hard" --name "$exp" --no-progress
  # shellcheck disable=SC2046
  $TRAIN --config configs/demo.yaml $(preset "$exp") --data-root "$DATA" \
    --class-name weave --class-name grain --seeds "$EASY_SEEDS" \
    --output-dir "$OUT/easy" --name "$exp" --no-progress
done

# Tables: the saved (last-epoch) model of every run, mean ± std over seeds, Δ vs baseline.
for suite in hard easy; do
  $PY tools/comparison.py --logdir "$OUT/$suite" --baseline baseline --last 1 \
    -o "$OUT/$suite/comparison/table_last.png"
done
# Head-only choices (score rule, blur, levels) re-scored from the trained models, no retraining.
for exp in $EXPERIMENTS; do
  $PY tools/head_study.py --logdir "$OUT/hard" --experiment "$exp" -o "$OUT/hard/comparison/head_$exp" \
    --sigmas 2,4,8 --levels 012,01,12 --topk 10,50,200
done
