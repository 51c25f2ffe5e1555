#!/usr/bin/env bash
# The comparison behind `make curriculum-demo`: demo data, several curriculum schedules x classes x seeds
# on CPU, then tools/comparison.py tables (last-5 mean and peak) and learning curves.
# Usage: tools/curriculum_demo.sh OUT_DIR   (cdo-train must be on PATH)
# Knobs: SCHEDULES="none linear step self-paced anti random" SEEDS=3 EPOCHS=6 SIZE=96 (about 20 min on 2 cores)
set -euo pipefail
OUT="${1:-demo_out/curriculum}"
SCHEDULES="${SCHEDULES:-none linear step self-paced anti random}"
SEEDS="${SEEDS:-3}"
EPOCHS="${EPOCHS:-6}"
SIZE="${SIZE:-96}"
HERE="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$OUT"
echo "== 1/3 demo data in $OUT/data"
python -m cdo_train.data.demo "$OUT/data"
echo "== 2/3 training: $SCHEDULES; $SEEDS seed(s), $EPOCHS epochs, $SIZE px"
for seed_offset in $(seq 0 $((SEEDS - 1))); do   # seed-major: an interrupted run still compares every schedule
  for s in $SCHEDULES; do
    cdo-train --config "$HERE/../configs/demo.yaml" --config "$HERE/../configs/curriculum_$s.yaml" \
      --data-root "$OUT/data" --image-size "$SIZE" --epochs "$EPOCHS" --eval-every 1 \
      --seed $((111 + seed_offset)) --seeds 1 --output-dir "$OUT/result" --no-progress --exist-ok
  done
done
echo "== 3/3 comparison tables and learning curves in $OUT/result/comparison"
python "$HERE/comparison.py" --logdir "$OUT/result" -o "$OUT/result/comparison/table_last5avg.png"
python "$HERE/comparison.py" --logdir "$OUT/result" -o "$OUT/result/comparison/table_peak.png" --peak
