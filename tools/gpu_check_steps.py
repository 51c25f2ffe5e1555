"""The Python side of ``tools/gpu_check.sh``: one subcommand per step, the summary and the archive.

The shell script orders the steps, caps each with ``timeout`` and keeps the whole run inside its
budget; the work is here so it can be imported and tested on a CPU (``tests/tools/test_gpu_check.py``).

Subcommands::

    env RESULTS                       versions, GPU, importable modules       -> RESULTS/env.json
    train WORK RESULTS CUDA(0|1)      demo data + training (1 process)        -> RESULTS/train_throughput.json
    aoti RUN BUNDLE RESULTS [--no-fused-head]  AOTInductor fp16 package       -> RESULTS/aoti.json
    summary RESULTS BUDGET_S ELAPSED_S  everything in RESULTS/gpu_check.json, a table on stdout
    pack RESULTS OUT                  RESULTS/ -> OUT/gpu_check.tar.gz (+ OUT/gpu_check.json)

The device machine returns at most 8 files of at most 16 MiB, two folders deep: ``pack`` writes one
archive (logs truncated to their last ``LOG_TAIL`` bytes if it would exceed ``ARCHIVE_MAX``) and the
summary JSON next to it; the console log is the caller's ``tee``.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import platform
import shutil
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

ARCHIVE = "gpu_check.tar.gz"
SUMMARY = "gpu_check.json"
ARCHIVE_MAX = 15 << 20  # the device returns files up to 16 MiB
LOG_TAIL = 1 << 20
MODULES = ["torch", "triton", "numpy", "yaml", "timm", "cv2", "click", "safetensors", "onnx", "onnxruntime",
           "matplotlib", "scipy", "tqdm", "pytest", "tensorrt", "onnxslim", "polygraphy"]
REQUIRED = ("torch", "numpy", "yaml", "timm", "cv2", "click", "safetensors", "onnx", "onnxruntime", "scipy", "pytest")


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def env(results: Path) -> dict[str, Any]:
    doc: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform(),
                           "modules": {m: importlib.util.find_spec(m) is not None for m in MODULES}}
    doc["missing"] = [m for m in REQUIRED if not doc["modules"][m]]
    try:
        import torch

        doc.update(torch=torch.__version__, cuda=torch.cuda.is_available(), cuda_version=torch.version.cuda)
        if torch.cuda.is_available():
            doc.update(gpu=torch.cuda.get_device_name(0), gpus=torch.cuda.device_count(),
                       capability=".".join(map(str, torch.cuda.get_device_capability(0))))
        import triton

        doc["triton"] = triton.__version__
    except ImportError as e:
        doc.setdefault("cuda", False)
        doc["import_error"] = str(e)
    (results / "env.json").write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def train(work: Path, results: Path, cuda: bool) -> dict[str, Any]:
    import logging

    from cdo_train.training.config import TrainConfig
    from cdo_train.data import make_demo_dataset
    from cdo_train.training.distributed import launch

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if cuda:  # lite0 at 256 px, the setting; random teacher: speed does not depend on the weights
        data = dict(n_train=512, n_test_good=8, n_test_defect=8, size=256)
        cfg_kw = dict(backbone="tf_efficientnet_lite0", image_size=256, batch_size=64, epochs=4, device="cuda:0")
    else:  # CPU smoke run
        data = dict(n_train=8, n_test_good=3, n_test_defect=5, size=64)
        cfg_kw = dict(backbone="resnet18", image_size=64, batch_size=4, epochs=1, device="cpu")
    # --eval-every counts optimiser steps: evaluate once, at the end
    cfg_kw["eval_every"] = cfg_kw["epochs"] * -(-data["n_train"] // cfg_kw["batch_size"])
    root = make_demo_dataset(work / "data", classes=["weave"], **data)
    cfg = TrainConfig(data_root=str(root), class_names=("weave",), teacher_weights="random", progress=False,
                      output_dir=str(work / "runs"), name="gpu_check", **cfg_kw)
    (res,) = launch(cfg, 1)
    (work / "run_dir.txt").write_text(str(res.run_dir))
    tp = json.loads((res.run_dir / "throughput.json").read_text())
    # throughput.json: every epoch's images/s (per_epoch_images_per_s), the cold first epoch apart
    tp["last_metrics"] = {k: res.last.get(k) for k in ("image_auroc", "pixel_auroc")}
    (results / "train_throughput.json").write_text(json.dumps(tp, indent=2) + "\n")
    return tp


def aoti(run: Path, bundle: Path, results: Path, fused: bool) -> dict[str, Any]:
    import dataclasses
    import logging

    from cdo_train.export.aoti import export_aoti
    from cdo_train.training.saved_model import load_model

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    res = export_aoti(load_model(run), bundle, device="cuda:0", precision="fp16", max_batch=64, fused_head=fused)
    doc = {k: str(v) if k == "path" else v for k, v in dataclasses.asdict(res).items()}
    doc["fused_head"] = fused
    (results / "aoti.json").write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def _bench_rows(results: Path) -> list[dict[str, Any]]:
    rows = []
    for name in ("bench_torch.json", "bench_onnx.json"):
        for r in (_load(results / name) or {}).get("rows", []):
            ok = r["status"] == "ok"
            inf, e2e = r.get("infer_ms") or {}, r.get("e2e_ms") or {}
            rows.append({"backend": r["backend"], "variant": r["variant"], "batch": r["batch"], "status": r["status"],
                         "infer_p50": inf.get("p50"), "infer_p99": inf.get("p99"), "e2e_p50": e2e.get("p50"),
                         "e2e_p99": e2e.get("p99"), "img_s_e2e": r.get("images_per_s"),
                         "img_s_infer": r["batch"] * 1e3 / inf["mean"] if ok and inf.get("mean") else None,
                         "note": r.get("note", "")})
    return rows


def _tests(results: Path) -> dict[str, Any] | None:
    xml = results / "pytest_gpu.xml"
    if not xml.is_file():
        return None
    root = ET.parse(xml).getroot()
    suite = root if root.tag == "testsuite" else root[0]
    doc: dict[str, Any] = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    doc["failed"] = [f"{c.get('classname')}::{c.get('name')}" for c in suite.iter("testcase")
                     if c.find("failure") is not None or c.find("error") is not None]
    return doc


def _targets(rows: list[dict[str, Any]], fair: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def fair_ratio(batch: int, img_s: float | None, key: str = "host_to_host") -> float | None:
        base = next((r for r in fair if r["name"] == "eager-fair" and r["batch"] == batch and r["status"] == "ok"),
                    None)
        return round(img_s / base[key]["images_per_s"], 2) if base and img_s else None

    out = []
    fast = [r for r in rows if r["backend"] == "torch" and r["status"] == "ok"]
    b1 = [r for r in fast if r["batch"] == 1]
    if b1:
        out.append({"target": "batch 1 e2e p99 <= 1.0 ms (cdo-bench torch)", "measured": b1[0]["e2e_p99"],
                    "met": b1[0]["e2e_p99"] is not None and b1[0]["e2e_p99"] <= 1.0})
    aoti64 = [r for r in fair if r["name"] == "aoti" and r["batch"] >= 64 and r["status"] == "ok"]
    for r in aoti64[:1]:
        dev, h2h = r["device_only"]["images_per_s"], r["host_to_host"]["images_per_s"]
        out.append({"target": f"batch {r['batch']} fp16 >= 20000 img/s device-only (aoti)", "measured": dev,
                    "met": dev >= 20000, "vs_eager_fair": r.get("ratio_vs_eager_fair", {}).get("device_only")})
        out.append({"target": f"batch {r['batch']} fp16 img/s host to host (aoti, info)", "measured": h2h,
                    "met": None, "vs_eager_fair": r.get("ratio_vs_eager_fair", {}).get("host_to_host")})
    for r in fast:
        r["vs_eager_fair"] = fair_ratio(r["batch"], r["img_s_e2e"])
    return out


def summary(results: Path, budget_s: float, elapsed_s: float | None = None) -> dict[str, Any]:
    steps = []
    for line in (results / "steps.tsv").read_text().splitlines() if (results / "steps.tsv").is_file() else []:
        name, status, seconds, cap = (line.split("\t") + ["", "", "0", ""])[:4]
        steps.append({"step": name, "status": status, "seconds": float(seconds or 0), "cap_s": cap})
    rows = _bench_rows(results)
    fair = (_load(results / "gpu_bench.json") or {}).get("rows", [])
    doc = {"env": _load(results / "env.json"), "budget_s": budget_s, "steps": steps,
           "elapsed_s": round(sum(s["seconds"] for s in steps) if elapsed_s is None else elapsed_s, 1), "train": _load(results / "train_throughput.json"),
           "aoti": _load(results / "aoti.json"), "tests": _tests(results), "bench": rows, "fair_bench": fair}
    doc["targets"] = _targets(rows, fair)
    (results / SUMMARY).write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def _f(v: Any, nd: int = 2) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def print_summary(doc: dict[str, Any], out: Any = sys.stdout) -> None:
    env_ = doc["env"] or {}
    p = lambda s="": print(s, file=out)  # noqa: E731
    p(f"\n== gpu_check summary ({env_.get('gpu', 'no CUDA GPU')}, torch {env_.get('torch')}, "
      f"triton {env_.get('triton')})")
    p(f"  {'step':<13} {'status':<34} {'s':>7} {'cap s':>6}")
    for s in doc["steps"]:
        p(f"  {s['step']:<13} {s['status']:<34} {s['seconds']:7.1f} {s['cap_s']:>6}")
    p(f"  total {doc['elapsed_s']:.1f} s of the {doc['budget_s']:.0f} s budget")
    if doc["tests"]:
        t = doc["tests"]
        p(f"  tests: {t['tests']} collected, {t['failures'] + t['errors']} failed, {t['skipped']} skipped"
          + (f"; failed: {', '.join(t['failed'][:10])}" if t["failed"] else ""))
    if doc["train"]:
        t = doc["train"]
        p(f"  training: {t.get('images_per_s')} img/s ({t.get('backbone')} {t.get('image_size')} px, batch "
          f"{t.get('batch_size')}, {t.get('device')}, amp {t.get('amp')}, cold first epoch "
          f"{t.get('cold_epoch_images_per_s')}); per epoch {t.get('per_epoch_images_per_s')}")
    if doc["aoti"]:
        a = doc["aoti"]
        p(f"  aoti: {a['variant']} {a['mb']} MB in {a['seconds']} s, fused head {a['fused_head']}, "
          f"parity {a['map_max_abs']:.3g}")
    if doc["fair_bench"]:
        p(f"  {'row':<18}{'batch':>6}{'device-only img/s':>19}{'host-to-host img/s':>20}{'h2h p99 ms':>12}"
          f"{'vs eager-fair dev/h2h':>23}  status")
        for r in doc["fair_bench"]:
            d, h, ratio = r.get("device_only") or {}, r.get("host_to_host") or {}, r.get("ratio_vs_eager_fair") or {}
            p(f"  {r['name']:<18}{r['batch']:>6}{_f(d.get('images_per_s'), 0):>19}{_f(h.get('images_per_s'), 0):>20}"
              f"{_f(h.get('p99_ms'), 3):>12}{_f(ratio.get('device_only')) + '/' + _f(ratio.get('host_to_host')):>23}"
              f"  {r['status']}{' (' + r.get('note', '')[:60] + ')' if r.get('note') else ''}")
    if doc["bench"]:
        p(f"  {'backend':<12}{'variant':<10}{'batch':>6}{'infer p50/p99 ms':>20}{'e2e p50/p99 ms':>18}"
          f"{'img/s e2e':>11}{'vs fair':>9}  status")
        for r in doc["bench"]:
            p(f"  {r['backend']:<12}{r['variant']:<10}{r['batch']:>6}"
              f"{_f(r['infer_p50'], 3) + '/' + _f(r['infer_p99'], 3):>20}"
              f"{_f(r['e2e_p50'], 3) + '/' + _f(r['e2e_p99'], 3):>18}{_f(r['img_s_e2e'], 0):>11}"
              f"{_f(r.get('vs_eager_fair')):>9}  {r['status']}{' (' + r['note'][:60] + ')' if r['note'] else ''}")
    for t in doc["targets"]:
        met = "MET" if t["met"] else ("-" if t["met"] is None else "NOT MET")
        p(f"  target {t['target']}: {t['measured']}  {met}")


def pack(results: Path, out: Path) -> Path:
    """``results`` -> ``out/gpu_check.tar.gz`` (<= ARCHIVE_MAX) and ``out/gpu_check.json``."""
    out.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in results.rglob("*") if p.is_file())
    archive = out / ARCHIVE
    for tail in (None, LOG_TAIL, LOG_TAIL // 16):
        with tarfile.open(archive, "w:gz") as tar:
            for f in files:
                rel = f"{results.name}/{f.relative_to(results)}"
                if tail is not None and f.suffix == ".log" and f.stat().st_size > tail:
                    data = f.read_bytes()[-tail:]
                    info = tarfile.TarInfo(rel)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                else:
                    tar.add(f, arcname=rel)
        if archive.stat().st_size <= ARCHIVE_MAX:
            break
    if (results / SUMMARY).is_file():
        shutil.copyfile(results / SUMMARY, out / SUMMARY)
    return archive


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="gpu_check.sh steps")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("env").add_argument("results", type=Path)
    t = sub.add_parser("train")
    t.add_argument("work", type=Path)
    t.add_argument("results", type=Path)
    t.add_argument("cuda", choices=("0", "1"))
    a = sub.add_parser("aoti")
    a.add_argument("run", type=Path)
    a.add_argument("bundle", type=Path)
    a.add_argument("results", type=Path)
    a.add_argument("--no-fused-head", action="store_true")
    s = sub.add_parser("summary")
    s.add_argument("results", type=Path)
    s.add_argument("budget_s", type=float)
    s.add_argument("elapsed_s", type=float, nargs="?")
    k = sub.add_parser("pack")
    k.add_argument("results", type=Path)
    k.add_argument("out", type=Path)
    args = p.parse_args(argv)
    if args.cmd == "env":
        doc = env(args.results)
        print(json.dumps(doc, indent=2))
        if doc["missing"]:
            print(f"!! missing Python modules: {' '.join(doc['missing'])} (steps that need them will fail)",
                  file=sys.stderr)
    elif args.cmd == "train":
        print(json.dumps(train(args.work, args.results, args.cuda == "1"), indent=2))
    elif args.cmd == "aoti":
        print(json.dumps(aoti(args.run, args.bundle, args.results, not args.no_fused_head), indent=2))
    elif args.cmd == "summary":
        doc = summary(args.results, args.budget_s, args.elapsed_s)
        buf = io.StringIO()
        print_summary(doc, buf)
        (args.results / "summary.txt").write_text(buf.getvalue())
        print(buf.getvalue(), end="")
    else:
        archive = pack(args.results, args.out)
        n = len(tarfile.open(archive).getnames())
        print(f"  archive: {archive} ({archive.stat().st_size / 1e6:.2f} MB, {n} files); JSON: {args.out / SUMMARY}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
