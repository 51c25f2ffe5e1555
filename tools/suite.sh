#!/usr/bin/env bash
# The validation suites, one body: SUITE=hard (tools/hard_suite.sh, docs/results/hard_surfaces.md) or SUITE=photo
# (tools/photo_suite.sh, docs/results/photo_suite.md). Each generates its data (60 train / 30 good + 40 defective test
# images per class, 256 px) and runs cdo-train experiments on it. Every run uses one thread (the thread count
# changes float summation order, which moves AUPRO by ~1 point); JOBS runs side by side (default 2, one per core
# of this machine).
#
#   hard:  photographed-looking procedural surfaces (turf, cells, speckle; weave, grain) through a simulated
#          line camera (--photo); data result/hard_data, runs result/hard
#   photo: real photographs from installed packages (lunar, fur, fundus, stars; flower, rocket objects);
#          data result/photo_data, runs result/photo
#
#   tools/hard_suite.sh                                  # the default (plain cdo-train, no config), 3 seeds
#   EXPERIMENTS="default paper" SEEDS=1 tools/hard_suite.sh
#   EXPERIMENTS="default steps500 levels2 knn" SEEDS=1 tools/photo_suite.sh
#   EXPERIMENTS="cur-none cur-linear cur-step cur-root cur-self-paced cur-anti cur-random" \
#     CLASSES="turf cells speckle" tools/hard_suite.sh     # the curriculum comparison (configs/curriculum_*.yaml)
# EXTRA="..." adds cdo-train options to every run of this call (e.g. EXTRA="--image-size 128").
#
# Experiments are named in preset() below; each writes $OUT/<experiment>/<class>/seed_<n>.
# Re-running skips finished runs, continues interrupted ones (cdo-train --resume, from their checkpoint)
# and starts runs that died before their first checkpoint again (--exist-ok). Generating data that is
# already there with the same parameters is skipped too. DATA_CLASSES, N_TRAIN, N_TEST_GOOD, N_TEST_DEFECT
# and SIZE shrink the generated data (tests); DATA_SEED picks the photo suite's data seed (default 0).
# Peers (anomalib PatchCore on the same teacher) and tables: tools/peers.py --data-root $DATA.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
TRAIN=${TRAIN:-.venv/bin/cdo-train}
SUITE=${SUITE:-hard}
SEEDS=${SEEDS:-3}
JOBS=${JOBS:-2}
EXPERIMENTS=${EXPERIMENTS:-"default"}
EXTRA=${EXTRA:-}
PENALTY=${PENALTY:-result/penalty_images}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
SIZES=(--n-train "${N_TRAIN:-60}" --n-test-good "${N_TEST_GOOD:-30}" --n-test-defect "${N_TEST_DEFECT:-40}" --size "${SIZE:-256}")
case "$SUITE" in
  hard)
    DATA=${DATA:-result/hard_data}; OUT=${OUT:-result/hard}; CLASSES=${CLASSES:-"turf cells speckle weave grain"}
    # shellcheck disable=SC2086
    $PY -m cdo_train.data.demo "$DATA" --classes ${DATA_CLASSES:-turf cells speckle weave grain} "${SIZES[@]}" --photo ;;
  photo)
    DATA=${DATA:-result/photo_data}; OUT=${OUT:-result/photo}; CLASSES=${CLASSES:-"lunar fur fundus stars flower rocket"}
    # shellcheck disable=SC2086
    $PY -m cdo_train.data.photo_suite "$DATA" ${DATA_CLASSES:+--classes $DATA_CLASSES} "${SIZES[@]}" --seed "${DATA_SEED:-0}" ;;
  *) echo "unknown SUITE $SUITE (hard or photo)" >&2; exit 1 ;;
esac

preset() {  # experiment -> cdo-train options on top of the defaults
  case "$1" in
    default) echo "" ;;                                   # plain `cdo-train --data-root D --class-name C`
    paper) echo "--config configs/paper.yaml" ;;          # the previous default: the paper's 50 epochs, batch 16
    steps*) echo "--steps ${1#steps}" ;;                  # training length study, e.g. steps500
    head-cdo) echo "--head cdo" ;;                        # the plain teacher/student head
    light) echo "--student light" ;;                      # the light asymmetric student
    levels*) echo "--score-levels ${1#levels}" ;;         # image score from the first N levels, e.g. levels2
    knn) echo "--head cdo+knn" ;;                         # discrepancy plus a memory-bank kNN head
    seg) echo "--head cdo+seg" ;;                         # DeSTSeg-style segmentation head trained after the student
    cur-*) echo "--config configs/curriculum_${1#cur-}.yaml" ;;  # a curriculum schedule on top of the defaults
    hard*) echo "--hard-quantile 0.${1#hard}" ;;          # the hard-feature loss, e.g. hard99: quantile 0.99
    penalty) echo "--penalty-dir ${PENALTY:-result/penalty_images}" ;;  # off-distribution penalty (tools/penalty_images.py)
    fp32-*) echo "--cpu-bf16 false $(preset "${1#fp32-}")" ;;  # the fp32 step (today's), e.g. fp32-steps1000
    *) echo "unknown experiment $1" >&2; exit 1 ;;
  esac
}

finished() {  # run folder -> whether it holds a finished run (an interrupted one has a summary too)
  [ -f "$1/summary.json" ] && ! grep -q '"status": "interrupted"' "$1/summary.json"
}

jobs_list() {
  for exp in $EXPERIMENTS; do
    preset "$exp" >/dev/null
    for s in $(seq 0 $((SEEDS - 1))); do
      for c in $CLASSES; do
        if ! finished "$OUT/$exp/$c/seed_$((111 + s))"; then
          echo "$exp $c $((111 + s))"
        fi
      done
    done
  done
}

run_one() {  # experiment class seed; finished runs are skipped by jobs_list
  local run="$OUT/$1/$2/seed_$3" log="$OUT/logs/$1-$2-$3.log"
  if [ -f "$run/checkpoint.pt" ]; then  # interrupted: continue where it stopped
    $TRAIN --resume "$run" --no-progress >> "$log" 2>&1
  else  # never started, or died before its first checkpoint: start again (clears the folder)
    # shellcheck disable=SC2046,SC2086
    $TRAIN $(preset "$1") $EXTRA --data-root "$DATA" --class-name "$2" --seed "$3" --output-dir "$OUT" --name "$1" \
      --exist-ok --no-progress > "$log" 2>&1
  fi && echo "done $1 $2 $3" || echo "FAILED $1 $2 $3 (see $OUT/logs)"
}
export -f run_one preset
export TRAIN DATA OUT EXTRA PENALTY
mkdir -p "$OUT/logs"
jobs_list | xargs -r -P "$JOBS" -L 1 bash -c 'run_one "$0" "$1" "$2"'  # -r: nothing left, nothing run
