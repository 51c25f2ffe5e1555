#!/usr/bin/env bash
# Latency of the default graph against the previous one, side by side in one cdo-bench run
# (docs/hard_surfaces.md, "Inference cost"). The only difference between the two graphs is the image
# score: the default reads strides 4 + 8 (--score-levels 2; one more blur, upsample and max than the
# paper's score over all three levels, --score-levels 0). Both are exported from one trained run, so the
# weights are the same, and put in one bundle as variants `fp32` (default) and `fp32-all-levels`.
# The thresholds of the bundle are the run's; the OK/NG agreement column compares two score rules, not
# a precision loss, so only the timing columns mean anything here.
#
#   tools/score_latency.sh RUN_DIR [WORK] [cdo-bench options]
#   tools/score_latency.sh result/hard/default/turf/seed_111 result/lat --iters 300 --threads 2
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
PY=$BIN/python
RUN=${1:?usage: tools/score_latency.sh RUN_DIR [WORK] [cdo-bench options]}
WORK=${2:-result/score_latency}
shift $(( $# >= 2 ? 2 : 1 ))
rm -rf "$WORK" && mkdir -p "$WORK"
for k in 2 0; do  # the run folder with only model_config.json's score_levels changed
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
shutil.copytree(work / "bundle_levels2", bundle)
shutil.copy(work / "bundle_levels0" / "model.onnx", bundle / "model_all_levels.onnx")
meta = load_bundle_meta(bundle)
meta.variants["fp32-all-levels"] = "model_all_levels.onnx"
meta.save(bundle)
print(f"bundle {bundle}: variants {meta.variants}")
EOF
"$BIN/cdo-bench" "$WORK/bundle" --backend onnxruntime --batch 1 --device cpu --json "$WORK/cdo_bench.json" "$@"
