#!/usr/bin/env bash
# The demo behind `make demo`: generate data, train, export, inspect, benchmark.
# Usage: tools/demo.sh OUT_DIR   (cdo-* commands must be on PATH; run from the repo root)
set -euo pipefail
OUT="${1:-demo_out}"
mkdir -p "$OUT"
RUN="$OUT/result/tf_efficientnet_lite0-none/weave/seed_111"

echo "== 1/5 demo data -> $OUT/data"
python -m cdo_train.data.demo "$OUT/data"

echo "== 2/5 training (configs/demo.yaml: weave and grain, 128 px, 12 epochs)"
cdo-train --config configs/demo.yaml --data-root "$OUT/data" --output-dir "$OUT/result" --no-progress --exist-ok

echo "== 3/5 export $RUN -> $OUT/bundle (fp32 + fp16 + int8 ONNX)"
# --int8-keep-ends: with every convolution in int8, the int8 check refuses this 128-px demo model
# (image AUROC -1.6 points, 1 of 24 test parts changes OK/NG); with each backbone's first convolution
# and those feeding the head in fp32 it passes with no changed decision
cdo-export "$RUN" -o "$OUT/bundle" --fp16 --int8 --int8-keep-ends --force

echo "== 4/5 inspecting $OUT/data/weave/test with cdo-inspect --once"
rm -rf "$OUT/inspect"
cdo-inspect "$OUT/bundle" --source "$OUT/data/weave/test" --once --out "$OUT/inspect" --overlays ng
echo "-- decisions vs ground truth (weave test set; in-sample: the thresholds are the F1-optimal ones on these images)"
python tools/demo_report.py "$OUT/inspect/results.jsonl"
echo "overlays of NG parts: $OUT/inspect/overlays/"

echo "== 5/5 benchmark (ONNX Runtime, CPU)"
cdo-bench "$OUT/bundle" --batch 1,8 --warmup 3 --iters 30 --json "$OUT/bench.json"
echo "bundle: $OUT/bundle   run: $RUN   figures: $RUN/qualitative.png $RUN/discrepancy_hist.png"
