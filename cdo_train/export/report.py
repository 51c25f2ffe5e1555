"""Accuracy and CPU speed of every ONNX variant of a bundle on the run's test set.

Rows: the PyTorch reference (``cdo_train.training.evaluation.predict``, what training
reported) and each ``variants`` entry of ``model.json`` run in ONNX Runtime on
CPU. Columns: image and pixel AUROC, AUPRO, OK/NG decisions at the bundle's
image threshold that differ from the reference, and median latency per batch
(batch 1 and ``batch``) after one warm-up run.

Usage::

    python -m cdo_train.export.report BUNDLE [--run RUN_DIR] [--batch 8] [--repeats 5]

Example:
    >>> rows = variant_report("bundle")                       # doctest: +SKIP
    >>> rows[1].variant, rows[1].image_auroc                  # doctest: +SKIP
    ('fp32', 1.0)
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cdo_deploy.bundle import load_bundle_meta
from cdo_deploy.errors import CdoError

from .verify import onnx_session, run_onnx, torch_reference

__all__ = ["VariantRow", "format_report", "variant_report"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VariantRow:
    """One variant's accuracy (test set) and CPU latency (ms per batch, median)."""

    variant: str
    image_auroc: float | None
    pixel_auroc: float | None
    aupro: float | None
    decision_changes: int
    n_images: int
    ms_batch1: float | None
    ms_batch: float | None
    batch: int


def _latency(session, images: np.ndarray, batch: int, repeats: int) -> tuple[float, float]:
    out = []
    for b in (1, batch):
        x = np.ascontiguousarray(np.resize(images, (b, *images.shape[1:])))
        session.run(None, {"image": x})  # warm-up
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            session.run(None, {"image": x})
            times.append((time.perf_counter() - t) * 1e3)
        out.append(float(np.median(times)))
    return out[0], out[1]


def variant_report(bundle_dir: str | Path, run_dir: str | Path | None = None, batch: int = 8,
                   repeats: int = 5, threads: int = 0) -> list[VariantRow]:
    """Evaluate the PyTorch model and every ONNX variant of a bundle.

    Args:
        bundle_dir: a bundle written by ``cdo-export``.
        run_dir: its run folder (default: ``train.run_dir`` in ``model.json``).
        batch: the larger batch size timed.
        repeats: timed runs per batch size.
        threads: ONNX Runtime intra-op threads (0 = default).

    Raises:
        CdoError: no run folder or no labelled test set.
    """
    from ..training.config import TrainConfig
    from ..data.splits import samples as split_samples
    from ..training.evaluation import load_images
    from ..training.metrics import compute_metrics
    from ..training.saved_model import load_model
    from .run_inputs import read_run_info

    bundle = Path(bundle_dir)
    meta = load_bundle_meta(bundle)
    run = Path(run_dir or meta.train.get("run_dir", ""))
    info = read_run_info(run)
    cfg = info.config
    classes = cfg.get("class_names") or [None]
    try:
        samples = split_samples(TrainConfig().merged(cfg), classes[0], "test")
    except CdoError as e:
        raise CdoError(f"no test set for the report: {e}") from None
    if not samples:
        raise CdoError(f"the run {run} has no labelled test set to evaluate on")
    test = load_images(samples, meta.height)
    masks = test.masks if test.labels.any() else None
    thr = meta.image_threshold

    def row(name: str, maps: np.ndarray, scores: np.ndarray, ref: np.ndarray, lat: tuple) -> VariantRow:
        m = compute_metrics(test.labels, scores, masks, maps)
        changes = int(((scores >= thr) != (ref >= thr)).sum()) if thr is not None else 0
        return VariantRow(name, m["image_auroc"], m["pixel_auroc"], m["aupro"], changes, len(scores),
                          *lat, batch=batch)

    model = load_model(run)
    ref_maps, ref_scores = torch_reference(model, test.images)
    rows = [row("pytorch", ref_maps, ref_scores, ref_scores, (None, None))]
    for variant, file in meta.variants.items():
        if not file.endswith(".onnx"):
            continue  # AOTI packages (.pt2) run in the torch backend, not ONNX Runtime
        sess = onnx_session(bundle / file, threads)
        maps, scores = run_onnx(sess, test.images, batch)
        rows.append(row(variant, maps, scores, ref_scores, _latency(sess, test.images, batch, repeats)))
    return rows


def format_report(rows: list[VariantRow]) -> str:
    """A fixed-width table of :func:`variant_report` rows."""
    def f(v: float | None, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    b = rows[-1].batch if rows else 8
    lines = [f"{'variant':<9}{'image AUROC':>12}{'pixel AUROC':>12}{'AUPRO':>8}{'NG/OK changes':>15}"
             f"{'ms @1':>9}{f'ms @{b}':>9}"]
    for r in rows:
        lines.append(f"{r.variant:<9}{f(r.image_auroc, '.4f'):>12}{f(r.pixel_auroc, '.4f'):>12}{f(r.aupro, '.4f'):>8}"
                     f"{f'{r.decision_changes}/{r.n_images}':>15}{f(r.ms_batch1, '.1f'):>9}{f(r.ms_batch, '.1f'):>9}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """``python -m cdo_train.export.report BUNDLE``."""
    p = argparse.ArgumentParser(prog="python -m cdo_train.export.report", description=__doc__.splitlines()[0])
    p.add_argument("bundle")
    p.add_argument("--run", default=None, help="run folder (default: from model.json)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args(argv)
    try:
        rows = variant_report(a.bundle, a.run, a.batch, a.repeats, a.threads)
    except CdoError as e:
        raise SystemExit(f"Error: {e}") from None
    print(format_report(rows))


if __name__ == "__main__":
    main()
