#!/usr/bin/env bash
# Latency of the default graph against the --score-levels 2 option, side by side in one cdo-bench run
# (docs/results/hard_surfaces.md, "Inference cost"). The two graphs differ only in the image score: the default
# is the paper's, the max of the all-level map (--score-levels 0); the option also builds the map of
# strides 4 + 8 and takes its max (one more blur, upsample and ReduceMax). Both are exported from one
# trained run, so the weights are the same, and put in one bundle as variants `fp32` (the default) and
# `fp32-score-levels-2`. The bundle's thresholds are the run's; the OK/NG agreement column compares two
# score rules, not a precision loss, so only the timing columns mean anything here.
#
#   tools/score_latency.sh RUN_DIR [WORK] [cdo-bench options]
#   tools/score_latency.sh result/hard/default/turf/seed_111 result/lat --iters 300 --warmup 20 --threads 2
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
PY=$BIN/python
RUN=${1:?usage: tools/score_latency.sh RUN_DIR [WORK] [cdo-bench options]}
WORK=${2:-result/score_latency}
shift $(( $# >= 2 ? 2 : 1 ))
rm -rf "$WORK" && mkdir -p "$WORK"
for k in 0 2; do  # the run folder with only model_config.json's score_levels changed
  cp -r "$RUN" "$WORK/run_levels$k" && rm -rf "$WORK/run_levels$k/tb"
  $PY - "$WORK/run_levels$k/model_config.json" "$k" <<'EOF'
import json, sys
path, k = sys.argv[1], int(sys.argv[2])
cfg = json.load(open(path))
cfg["score_levels"] = k
json.dump(cfg, open(path, "w"), indent=2)
EOF
  "$BIN/cdo-export" "$WORK/run_levels$k" -o "$WORK/bundle_levels$k" > "$WORK/export_levels$k.log"
done
$PY - "$WORK" <<'EOF'
import shutil, sys
from pathlib import Path
from cdo_deploy.bundle import load_bundle_meta
work = Path(sys.argv[1])
bundle = work / "bundle"
shutil.copytree(work / "bundle_levels0", bundle)
shutil.copy(work / "bundle_levels2" / "model.onnx", bundle / "model_score_levels_2.onnx")
meta = load_bundle_meta(bundle)
meta.variants["fp32-score-levels-2"] = "model_score_levels_2.onnx"
meta.save(bundle)
print(f"bundle {bundle}: variants {meta.variants}")
EOF
"$BIN/cdo-bench" "$WORK/bundle" --backend onnxruntime --batch 1 --device cpu --json "$WORK/cdo_bench.json" "$@"
