"""Latency of the discrepancy-head options against the default head, side by side in one cdo-bench run.

From one finished run it builds the heads that ``cdo-train`` would have saved with each option, on
the same weights: ``fp32`` the run's own head, ``fp32-z`` with ``--level-norm z``, ``fp32-z-knnN``
with ``--level-norm z --head cdo+knn --bank-size N`` (the level scales and the memory bank are made
from the run's own split, as the trainer makes them after its last step). Each is exported with
``cdo-export``; the ONNX graphs go into one bundle as variants and ``cdo-bench`` times them
interleaved (ONNX Runtime, CPU). The bundle's thresholds are the run's, so only the timing columns
mean anything here (the OK/NG agreement compares different heads, not a precision loss).

Usage:
    python tools/head_latency.py RUN_DIR WORK [--banks 1024,4096] [cdo-bench options...]
    python tools/head_latency.py result/photo/steps1000/flower/seed_111 result/head_latency \\
        --iters 300 --warmup 20 --threads 2
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def _variant(run: Path, out: Path, level_norm: bool, bank: int) -> Path:
    """A copy of ``run`` whose saved model carries the head option (weights unchanged)."""
    import torch
    import yaml

    from cdo_train.model.level_norm import z_scales
    from cdo_train.model.memory_bank import build_memory_bank
    from cdo_train.training.config import TrainConfig
    from cdo_train.training.run_images import load_run_images
    from cdo_train.training.saved_model import load_model, save_model

    shutil.copytree(run, out, ignore=shutil.ignore_patterns("tb", "checkpoint.pt", "figures"))
    model = load_model(run)
    cfg = TrainConfig().merged(yaml.safe_load((run / "config.yaml").read_text()))
    images = load_run_images(cfg, run.parent.name, cfg.seed, main=True, warn=False)  # the trainer's split
    if images.held is None:
        raise SystemExit(f"Error: {run}: no held-out good images to normalise and calibrate with")
    held, cpu = images.held.images, torch.device("cpu")
    if level_norm:
        model.set_level_scales(z_scales(model, held, cpu))
        model.cfg = dataclasses.replace(model.cfg, level_norm="z")
    if bank:
        model.set_bank(build_memory_bank(model, images.train.numpy(), held, bank, cfg.seed, cpu))
    save_model(model, out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("work", type=Path)
    ap.add_argument("--banks", default="1024", help="comma-separated memory-bank sizes (with --level-norm z)")
    args, bench = ap.parse_known_args(argv)
    from cdo_deploy.bundle import load_bundle_meta

    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    variants = {"fp32": (False, 0), "fp32-z": (True, 0)}
    variants.update({f"fp32-z-knn{n}": (True, int(n)) for n in args.banks.split(",") if n})
    bundles = {}
    for name, (z, bank) in variants.items():
        run = args.run if name == "fp32" else _variant(args.run, args.work / f"run-{name}", z, bank)
        bundles[name] = args.work / f"bundle-{name}"
        with open(args.work / f"export-{name}.log", "w") as log:
            subprocess.run([str(BIN / "cdo-export"), str(run), "-o", str(bundles[name])], check=True, stdout=log,
                           stderr=subprocess.STDOUT)
    bundle = args.work / "bundle"
    shutil.copytree(bundles["fp32"], bundle)
    meta = load_bundle_meta(bundle)
    meta.variants = {"fp32": meta.variants["fp32"]}
    for name in variants:
        if name != "fp32":
            shutil.copy(bundles[name] / "model.onnx", bundle / f"model-{name}.onnx")
            meta.variants[name] = f"model-{name}.onnx"
    meta.save(bundle)
    print(f"bundle {bundle}: variants {', '.join(meta.variants)}", flush=True)
    return subprocess.run([str(BIN / "cdo-bench"), str(bundle), "--backend", "onnxruntime", "--batch", "1",
                           "--device", "cpu", "--json", str(args.work / "cdo_bench.json"), *bench]).returncode


if __name__ == "__main__":
    sys.exit(main())
