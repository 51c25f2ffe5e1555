#!/usr/bin/env bash
# The demo behind `make demo`: generate data, train, (export, inspect, bench as they land).
# Usage: tools/demo.sh OUT_DIR   (cdo-* commands must be on PATH)
set -euo pipefail
OUT="${1:-demo_out}"
mkdir -p "$OUT"
echo "== 1/2 generating demo data in $OUT/data"
python -m cdo_train.data.demo "$OUT/data"
echo "== 2/2 training (configs/demo.yaml)"
cdo-train --config configs/demo.yaml --data-root "$OUT/data" --output-dir "$OUT/result" --no-progress
