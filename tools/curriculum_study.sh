#!/usr/bin/env bash
# The curriculum study (docs/results/curriculum.md): 7 schedules x fur, stars, flower x 3 seeds at the default length
# on the real-photo suite, by cdo-sweep (Ray Tune, one thread per trial). Re-run the same command to continue:
# finished trials are skipped, interrupted ones resumed. The `none` trials are the photo study's 1000-step default
# runs when those exist with the same configuration (tools/adopt_runs.py checks every computed field), so they
# are not trained twice. Each finished trial's small files are copied to docs/results/curriculum/ (--collect).
set -euo pipefail
cd "$(dirname "$0")/.."
SWEEP=configs/sweeps/curriculum.yaml
DATA=${DATA:-result/photo_data}
CONCURRENT=${CONCURRENT:-2}
export OMP_NUM_THREADS=1
.venv/bin/python -m cdo_train.data.photo_suite "$DATA" --classes fur stars flower >/dev/null
[ -d result/photo/steps1000 ] && .venv/bin/python tools/adopt_runs.py "$SWEEP" result/photo/steps1000 \
  --experiment none --set data_root="$DATA" || true
.venv/bin/cdo-sweep "$SWEEP" --set data_root="$DATA" --concurrent "$CONCURRENT" --threads-per-trial 1
.venv/bin/cdo-sweep "$SWEEP" --set data_root="$DATA" --collect docs/results/curriculum
