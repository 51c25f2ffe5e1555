#!/usr/bin/env bash
# GPU check (issue 6): CUDA tests, cdo-bench over every backend and batch size, training throughput.
#
# Usage:   OUT=dir tools/gpu_check.sh        (default OUT: ./gpu_check_out)
# Env:     PYTHON          interpreter (default .venv/bin/python when present, else python3)
#          GPU_CHECK_SLOW=1  also run the slow-marked GPU tests (compiles a real fp16 package)
#          GPU_CHECK_ITERS   timed bench iterations for the torch rows (default 300)
#          GPU_CHECK_BUDGET_S  wall-clock budget of the whole script (default 560): step timeouts are cut to
#                            fit it, steps that no longer fit are skipped, and the summary is always printed
#
# Steps (each logs to $OUT/logs/<step>.log and is timed; a failed step does not stop the others):
#   env      versions, GPU, which Python modules are importable          -> $OUT/env.json
#   tests    pytest -m gpu (tests/gpu + the backend conformance test)     -> $OUT/pytest_gpu.xml
#   train    demo data + fast training (cdo_train.distributed, 1 process) -> $OUT/train_throughput.json
#   export   cdo-export of that run (model.onnx)
#   aoti     AOTInductor fp16 package (fused Triton head; retried without it on failure) -> $OUT/aoti.json
#   bench    cdo-bench: torch (+ PyTorch eager reference) and onnxruntime/tensorrt, batches 1,8,64
#            -> $OUT/bench_torch.json, $OUT/bench_onnx.json
#   summary  everything in $OUT/gpu_check.json and a short table printed last
# Without a CUDA GPU the GPU-only steps are skipped and a small CPU smoke run (resnet18, 64 px)
# exercises the rest; the script exits 0 unless a step that ran failed.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
OUT="${OUT:-$REPO/gpu_check_out}"
mkdir -p "$OUT/logs"
OUT="$(cd "$OUT" && pwd)"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$REPO/.venv/bin/python" ]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 PYTHON OUT
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")"  # data, runs, bundle: big files stay out of $OUT
trap 'rm -rf "$WORK"' EXIT
STEPS="$OUT/steps.tsv"
: > "$STEPS"
START=$(date +%s)
BUDGET="${GPU_CHECK_BUDGET_S:-560}"

# step NAME TIMEOUT_S CMD... : run (shell functions too), time and record (ok / failed ...)
step() {
  local name="$1" limit="$2"; shift 2
  local t0 t1 rc st left
  left=$(( BUDGET - 20 - ($(date +%s) - START) ))  # 20 s kept for the summary
  if [ "$left" -lt 15 ]; then skip "$name" "time budget ${BUDGET}s spent"; return 1; fi
  [ "$limit" -gt "$left" ] && limit="$left"
  t0=$(date +%s%N)
  echo "== $name: $*" >&2
  timeout --kill-after=10 "$limit" bash -c "$(declare -f run_tests aoti bench)"$'\n''"$@"' _ "$@" \
    > "$OUT/logs/$name.log" 2>&1
  rc=$?
  t1=$(date +%s%N)
  if [ "$rc" -eq 0 ]; then st=ok; elif [ "$rc" -eq 124 ]; then st="failed (timeout ${limit}s)"; else st="failed (rc=$rc)"; fi
  printf '%s\t%s\t%d.%d\n' "$name" "$st" $(( (t1 - t0) / 1000000000 )) $(( (t1 - t0) / 100000000 % 10 )) >> "$STEPS"
  [ "$rc" -ne 0 ] && tail -n 15 "$OUT/logs/$name.log" >&2
  return "$rc"
}
skip() { printf '%s\t%s\t0\n' "$1" "skipped ($2)" >> "$STEPS"; echo "== $1: skipped ($2)" >&2; }

# -- the commands of the steps (defined first: step runs them in a fresh bash with a timeout) --
run_tests() {
  local slow=""
  [ "${GPU_CHECK_SLOW:-0}" = 1 ] && slow=1
  CDO_SLOW="$slow" "$PYTHON" -m pytest -q -m gpu -rs -p no:cacheprovider --junitxml="$OUT/pytest_gpu.xml" \
    tests/gpu tests/deploy/backends/test_backend_conformance.py
  local rc=$?
  [ "$rc" -eq 5 ] && return 0  # nothing selected
  return "$rc"
}

aoti() {
  "$PYTHON" - "$RUN_DIR" "$BUNDLE" "$OUT/aoti.json" "$@" <<'EOF'
import dataclasses, json, logging, sys
logging.basicConfig(level=logging.INFO, format="%(message)s")
from cdo_train.export.aoti import export_aoti
from cdo_train.runio import load_model
run, bundle, out = sys.argv[1:4]
fused = "--no-fused-head" not in sys.argv[4:]
res = export_aoti(load_model(run), bundle, device="cuda:0", precision="fp16", max_batch=64, fused_head=fused)
doc = {k: str(v) if k == "path" else v for k, v in dataclasses.asdict(res).items()}
doc["fused_head"] = fused
json.dump(doc, open(out, "w"), indent=2)
print(json.dumps(doc, indent=2))
EOF
}

bench() { "$PYTHON" -c 'import sys; from cdo_deploy.cli import bench_main; bench_main(sys.argv[1:])' "$@"; }

# -- env ---------------------------------------------------------------------------------------
step env 120 "$PYTHON" - "$OUT/env.json" <<'EOF'
import importlib.util, json, platform, sys
mods = ["torch", "triton", "numpy", "yaml", "timm", "cv2", "click", "safetensors", "onnx", "onnxruntime",
        "matplotlib", "scipy", "tqdm", "pytest", "tensorrt", "onnxslim"]
env = {"python": sys.version.split()[0], "platform": platform.platform(),
       "modules": {m: importlib.util.find_spec(m) is not None for m in mods}}
try:
    import torch
    env.update(torch=torch.__version__, cuda=torch.cuda.is_available(), cuda_version=torch.version.cuda)
    if torch.cuda.is_available():
        env.update(gpu=torch.cuda.get_device_name(0), gpus=torch.cuda.device_count(),
                   capability=".".join(map(str, torch.cuda.get_device_capability(0))))
    import triton
    env["triton"] = triton.__version__
except ImportError as e:
    env.setdefault("cuda", False)
    env["import_error"] = str(e)
json.dump(env, open(sys.argv[1], "w"), indent=2)
print(json.dumps(env, indent=2))
EOF
HAS_CUDA=$("$PYTHON" -c "import json,sys; print(int(bool(json.load(open(sys.argv[1])).get('cuda'))))" "$OUT/env.json" 2>/dev/null || echo 0)
MISSING=$("$PYTHON" -c "import json,sys; m=json.load(open(sys.argv[1]))['modules']; print(' '.join(k for k in ('torch','numpy','yaml','timm','cv2','click','safetensors','onnx','onnxruntime','matplotlib','scipy','tqdm','pytest') if not m[k]))" "$OUT/env.json" 2>/dev/null || echo "?")
[ -n "$MISSING" ] && echo "!! missing Python modules: $MISSING (steps that need them will fail)" >&2

# -- tests -------------------------------------------------------------------------------------
step tests 240 run_tests

# -- train -------------------------------------------------------------------------------------
step train 180 "$PYTHON" - "$WORK" "$OUT/train_throughput.json" "$HAS_CUDA" <<'EOF'
import json, logging, sys
from pathlib import Path
logging.basicConfig(level=logging.INFO, format="%(message)s")
from cdo_train.config import TrainConfig
from cdo_train.data import make_demo_dataset
from cdo_train.distributed import launch
from cdo_train.runio import read_metrics

work, out, cuda = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1"
if cuda:   # lite0 at 256 px, the issue's setting; random teacher: speed does not depend on the weights
    data = dict(n_train=512, n_test_good=8, n_test_defect=8, size=256)
    train = dict(backbone="tf_efficientnet_lite0", image_size=256, batch_size=64, epochs=4, eval_every=4,
                 device="cuda:0")
else:      # CPU smoke run
    data = dict(n_train=8, n_test_good=3, n_test_defect=5, size=64)
    train = dict(backbone="resnet18", image_size=64, batch_size=4, epochs=1, eval_every=1, device="cpu")
root = make_demo_dataset(work / "data", classes=["weave"], **data)
cfg = TrainConfig(data_root=str(root), class_names=("weave",), teacher_weights="random", progress=False,
                  output_dir=str(work / "runs"), name="gpu_check", **train)
(res,) = launch(cfg, 1)
(work / "run_dir.txt").write_text(str(res.run_dir))
tp = json.loads((res.run_dir / "throughput.json").read_text())
tp["per_epoch_images_per_s"] = [r.get("images_per_s") for r in read_metrics(res.run_dir)]
tp["last_metrics"] = {k: res.last.get(k) for k in ("image_auroc", "pixel_auroc")}
out.write_text(json.dumps(tp, indent=2) + "\n")
print(json.dumps(tp, indent=2))
EOF
RUN_DIR="$(cat "$WORK/run_dir.txt" 2>/dev/null || true)"
BUNDLE="$WORK/bundle"
export RUN_DIR BUNDLE

# -- export ------------------------------------------------------------------------------------
if [ -n "$RUN_DIR" ]; then
  step export 150 "$PYTHON" -c 'import sys; from cdo_train.export.cli import main; main(sys.argv[1:])' \
    "$RUN_DIR" -o "$BUNDLE" --max-batch 64
else
  skip export "no trained run"
fi

# -- aoti --------------------------------------------------------------------------------------
if [ "$HAS_CUDA" != 1 ]; then
  skip aoti "no CUDA GPU"
elif [ ! -f "$BUNDLE/model.json" ]; then
  skip aoti "no bundle"
else
  step aoti 300 aoti || step aoti_unfused 300 aoti --no-fused-head
fi

# -- bench -------------------------------------------------------------------------------------
if [ ! -f "$BUNDLE/model.json" ]; then
  skip bench_torch "no bundle"; skip bench_onnx "no bundle"
elif [ "$HAS_CUDA" = 1 ]; then
  step bench_torch 150 bench "$BUNDLE" --backend torch --batch 1,8,64 --warmup 20 --iters "${GPU_CHECK_ITERS:-300}" \
    --device cuda:0 --image-size 256x256 --torch "$RUN_DIR" --json "$OUT/bench_torch.json" -v
  step bench_onnx 120 bench "$BUNDLE" --backend onnxruntime,tensorrt --batch 1,8,64 --warmup 2 --iters 10 \
    --variant fp32 --image-size 256x256 --json "$OUT/bench_onnx.json" -v
else  # CPU smoke: every backend gets its row (torch/tensorrt: unavailable, no package/engine here)
  skip bench_torch "no CUDA GPU"
  step bench_onnx 120 bench "$BUNDLE" --backend onnxruntime,tensorrt,torch --batch 1,8,64 --warmup 1 --iters 5 \
    --device cpu --image-size 64x64 --json "$OUT/bench_onnx.json"
fi

# -- summary (printed last) --------------------------------------------------------------------
"$PYTHON" - "$OUT" <<'EOF'
import json, sys
import xml.etree.ElementTree as ET
from pathlib import Path

out = Path(sys.argv[1])
def load(name):
    p = out / name
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None
steps = [dict(zip(("step", "status", "seconds"), l.split("\t"))) for l in (out / "steps.tsv").read_text().splitlines()]
doc = {"env": load("env.json"), "steps": steps, "train": load("train_throughput.json"), "aoti": load("aoti.json"),
       "bench": [r for n in ("bench_torch.json", "bench_onnx.json") for r in (load(n) or {}).get("rows", [])]}
tests = None
if (out / "pytest_gpu.xml").is_file():
    s = ET.parse(out / "pytest_gpu.xml").getroot()
    s = s if s.tag == "testsuite" else s[0]
    tests = {k: int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
doc["tests"] = tests
def f(v, nd=2):
    return "-" if v is None else f"{v:.{nd}f}"
rows = []
for r in doc["bench"]:
    ok = r["status"] == "ok"
    inf = r.get("infer_ms") or {}
    e2e = r.get("e2e_ms") or {}
    ips_inf = r["batch"] * 1e3 / inf["mean"] if ok and inf.get("mean") else None
    rows.append({"backend": r["backend"], "variant": r["variant"], "batch": r["batch"], "status": r["status"],
                 "infer_p50": inf.get("p50"), "infer_p99": inf.get("p99"), "e2e_p50": e2e.get("p50"),
                 "e2e_p99": e2e.get("p99"), "img_s_e2e": r.get("images_per_s"), "img_s_infer": ips_inf,
                 "note": r.get("note", "")})
targets = []
fast = [r for r in rows if r["backend"] == "torch" and r["status"] == "ok"]
b1 = [r for r in fast if r["batch"] == 1]
b64 = [r for r in fast if r["batch"] >= 64]
if b1:
    targets.append(("batch 1 e2e p99 <= 1.0 ms", f(b1[0]["e2e_p99"], 3), b1[0]["e2e_p99"] <= 1.0))
if b64:
    best = max(b64, key=lambda r: r["img_s_infer"] or 0)
    targets.append(("batch 64 fp16 >= 20000 img/s (inference)", f(best["img_s_infer"], 0),
                    (best["img_s_infer"] or 0) >= 20000))
    targets.append(("batch 64 fp16 img/s end to end (info)", f(best["img_s_e2e"], 0), None))
doc["rows"], doc["targets"] = rows, [dict(zip(("target", "measured", "met"), t)) for t in targets]
(out / "gpu_check.json").write_text(json.dumps(doc, indent=2) + "\n")

env = doc["env"] or {}
print(f"\n== gpu_check summary ({env.get('gpu', 'no CUDA GPU')}, torch {env.get('torch')}, triton {env.get('triton')})")
for s in steps:
    print(f"  {s['step']:<13} {s['status']:<34} {float(s['seconds']):7.1f} s")
if tests:
    print(f"  tests: {tests['tests']} collected, {tests['failures'] + tests['errors']} failed, {tests['skipped']} skipped")
if doc["train"]:
    t = doc["train"]
    print(f"  training: {t['images_per_s']} img/s ({t['backbone']} {t['image_size']} px, batch {t['batch_size']}, "
          f"{t['device']}, amp {t['amp']}); per epoch {t['per_epoch_images_per_s']}")
if doc["aoti"]:
    a = doc["aoti"]
    print(f"  aoti: {a['variant']} {a['mb']} MB in {a['seconds']} s, fused head {a['fused_head']}, parity {a['map_max_abs']:.3g}")
if rows:
    print(f"  {'backend':<12}{'variant':<10}{'batch':>6}{'infer p50/p99 ms':>20}{'e2e p50/p99 ms':>18}{'img/s e2e':>11}"
          f"{'img/s infer':>13}  status")
    for r in rows:
        print(f"  {r['backend']:<12}{r['variant']:<10}{r['batch']:>6}{f(r['infer_p50'], 3) + '/' + f(r['infer_p99'], 3):>20}"
              f"{f(r['e2e_p50'], 3) + '/' + f(r['e2e_p99'], 3):>18}{f(r['img_s_e2e'], 0):>11}{f(r['img_s_infer'], 0):>13}"
              f"  {r['status']}{' (' + r['note'][:70] + ')' if r['note'] else ''}")
for name, val, met in targets:
    print(f"  target {name}: {val}  {'MET' if met else ('-' if met is None else 'NOT MET')}")
print(f"  JSON: {out / 'gpu_check.json'}")
EOF

grep -q $'\tfailed' "$STEPS" && exit 1
exit 0
