"""The ``cdo-bench`` table: latency and accuracy columns per row, and the legend.

Columns (ms per batch): pre-processing p50, inference p50/p90/p99,
post-processing p50 for good / defective parts, end-to-end p50/p90/p99 and
mean±std, end-to-end p50 for good / defective parts, images/s, image AUROC,
pixel AUROC, AUPRO (``-`` where the data has no labels or masks), agreement
of the OK/NG decisions with the reference row in % (parts that flip), the
ratio to the PyTorch eager row, status.

Example:
    >>> stats([1.0, 2.0, 3.0])["p50"]
    2.0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .results import BenchRow, json_float

__all__ = ["STATUS_LEGEND", "BenchReport", "format_table", "stats"]

STATUS_LEGEND = {
    "ok": "measured",
    "unavailable": "backend not installed here, or no model file for it in the bundle",
    "failed": "backend raised while loading or running; see note",
}


@dataclass
class BenchReport:
    """Rows plus what they were measured on.

    Attributes:
        rows: one per backend x variant x batch (failures included).
        parts: description of the parts timed (and evaluated).
        reference: the row decisions are compared with (``"onnxruntime fp32"``), or ``""``.
        cpu: the CPU and its features (:func:`cdo_deploy.cpu.cpu_info`).
        thresholds: image and pixel thresholds used.
    """

    rows: list[BenchRow]
    parts: str
    reference: str = ""
    cpu: str = ""
    thresholds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"parts": self.parts, "reference": self.reference, "cpu": self.cpu, "thresholds": self.thresholds,
                "legend": STATUS_LEGEND, "rows": [r.to_dict() for r in self.rows]}



def stats(ms: list[float]) -> dict[str, float | None]:
    """p50/p90/p99/mean/std of a list of times (empty: all ``None``)."""
    if not ms:
        return dict.fromkeys(("p50", "p90", "p99", "mean", "std"))
    a = np.asarray(ms, dtype=np.float64)
    return {"p50": json_float(np.percentile(a, 50), 4), "p90": json_float(np.percentile(a, 90), 4),
            "p99": json_float(np.percentile(a, 99), 4), "mean": json_float(a.mean(), 4),
            "std": json_float(a.std(), 4)}


def _f(v: float | None, nd: int = 2) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def _split(r: BenchRow, key: str) -> str:
    vals = [_f((r.parts.get(k) or {}).get(key, {}).get("p50")) for k in ("good", "defective")]
    return "/".join(vals)


def _cells(r: BenchRow) -> list[str]:
    ok = r.status == "ok"
    acc = r.accuracy or {}
    agree = "-" if r.agreement_pct is None else f"{r.agreement_pct:.1f} ({len(r.flipped)})"
    return [
        r.backend, r.variant, r.device or "-", str(r.batch) if r.batch else "-",
        _f(r.pre_ms.get("p50")) if ok else "-",
        "/".join(_f(r.infer_ms.get(k)) for k in ("p50", "p90", "p99")) if ok else "-",
        _split(r, "post_ms") if ok else "-",
        "/".join(_f(r.e2e_ms.get(k)) for k in ("p50", "p90", "p99")) if ok else "-",
        f"{_f(r.e2e_ms.get('mean'))}±{_f(r.e2e_ms.get('std'))}" if ok else "-",
        _split(r, "e2e_ms") if ok else "-",
        _f(r.images_per_s, 1),
        _f(acc.get("image_auroc"), 4), _f(acc.get("pixel_auroc"), 4), _f(acc.get("aupro"), 4), agree,
        "-" if r.vs_torch is None else f"{r.vs_torch:.2f}x",
        r.status + (f" ({r.note})" if r.note else ""),
    ]


def format_table(report: BenchReport | list[BenchRow]) -> str:
    """Fixed-width table of the rows, with what was measured and the status legend."""
    rows = report if isinstance(report, list) else report.rows
    head = ["backend", "variant", "device", "batch", "pre p50", "infer p50/p90/p99", "post p50 good/defect",
            "e2e p50/p90/p99", "e2e mean±std", "e2e p50 good/defect", "img/s", "image AUROC", "pixel AUROC",
            "AUPRO", "agree % (flips)", "vs torch", "status"]
    lines = [head] + [_cells(r) for r in rows]
    widths = [max(len(row[i]) for row in lines) for i in range(len(head) - 1)]
    out = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(row[:-1])) + "  " + row[-1] for row in lines]
    if not isinstance(report, list):
        out.insert(0, f"parts: {report.parts}")
        out.insert(1, f"cpu: {report.cpu}")
        thr = report.thresholds
        if report.reference and thr.get("image") is not None:
            out.append(f"agreement: OK/NG decisions at image threshold {thr.get('image'):.6g} compared with "
                       f"{report.reference}; flipped parts are listed in the JSON")
    out.append("times in ms per batch; status: " + "; ".join(f"{k} = {v}" for k, v in STATUS_LEGEND.items()))
    return "\n".join(out)
