"""``cdo-bench``: backends side by side, per batch size, in one run.

For every requested backend, every model file of the bundle that backend runs
(the formats table) and every batch size, the same synthetic camera images
(BGR uint8, ``image_hw``, default twice the model size) go through the real
stages: pre-processing (resize + RGB), inference, post-processing (decision +
regions). After ``warmup`` untimed runs, ``iters`` runs are timed per stage;
each row reports p50/p90/p99 and mean/std in ms per batch, images per second
(batch * 1000 / mean end-to-end ms) and peak resident memory of the process
during the row (``VmHWM`` after a reset, MB).

Every backend gets a row, failures included: ``ok``, ``unavailable`` (backend
not installed or no file for it in the bundle) or ``failed`` (it raised), with
the reason in ``note``. With ``torch_run`` the PyTorch eager model of a
training run (``cdo_train.api.load_run``, needs ``cdo[train]``) is the
reference row; ``vs_torch`` is its end-to-end p50 divided by the row's, at the
same batch size (2.0 = twice as fast as PyTorch).

Example:
    >>> cfg = BenchConfig(bundle=Path("bundle"), batches=(1, 8), iters=50)   # doctest: +SKIP
    >>> print(format_table(run_bench(cfg)))                                  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .backends import BACKENDS, create_backend
from .bundle import load_bundle_meta
from .errors import CdoError
from .formats import list_model_files
from .postprocess import find_regions
from .preprocess import to_model_input
from .results import BenchRow, json_float

__all__ = ["BenchConfig", "STATUS_LEGEND", "format_table", "run_bench"]

log = logging.getLogger(__name__)

STATUS_LEGEND = {
    "ok": "measured",
    "unavailable": "backend not installed here, or no model file for it in the bundle",
    "failed": "backend raised while loading or running; see note",
}

InferFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class BenchConfig:
    """What to measure.

    Attributes:
        bundle: bundle folder.
        backends: backend names (rows for each, failures included).
        batches: batch sizes.
        warmup: untimed runs per row.
        iters: timed runs per row.
        device: ``auto``, ``cpu``, ``cuda[:N]`` (ONNX Runtime also ``tensorrt[:N]``).
        variants: only these variants (``None``: all in the bundle).
        image_hw: synthetic camera image size (H, W); default twice the model size.
        torch_run: training run folder for the PyTorch eager reference row.
    """

    bundle: Path
    backends: tuple[str, ...] = ("onnxruntime", "tensorrt")
    batches: tuple[int, ...] = (1, 8)
    warmup: int = 5
    iters: int = 50
    device: str = "auto"
    variants: tuple[str, ...] | None = None
    image_hw: tuple[int, int] | None = None
    torch_run: Path | None = None

    def __post_init__(self) -> None:
        if not self.batches or min(self.batches) < 1:
            raise CdoError("--batch sizes must be >= 1")
        if self.iters < 1 or self.warmup < 0:
            raise CdoError("--iters must be >= 1 and --warmup >= 0")


def _stats(ms: list[float]) -> dict[str, float | None]:
    a = np.asarray(ms, dtype=np.float64)
    return {"p50": json_float(np.percentile(a, 50), 4), "p90": json_float(np.percentile(a, 90), 4),
            "p99": json_float(np.percentile(a, 99), 4), "mean": json_float(a.mean(), 4),
            "std": json_float(a.std(), 4)}


def _reset_peak_rss() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_rss_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _measure(row: BenchRow, infer: InferFn, images: list[np.ndarray], hw: tuple[int, int],
             pixel_threshold: float, warmup: int, iters: int) -> BenchRow:
    h, w = hw
    pre_ms, inf_ms, post_ms, e2e_ms = [], [], [], []
    _reset_peak_rss()
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        x = np.stack([to_model_input(img, h, w) for img in images])
        t1 = time.perf_counter()
        maps, scores = infer(x)
        t2 = time.perf_counter()
        for j, img in enumerate(images):
            find_regions(np.asarray(maps[j]).reshape(h, w), pixel_threshold, img.shape[:2])
        t3 = time.perf_counter()
        if i >= warmup:
            pre_ms.append((t1 - t0) * 1e3)
            inf_ms.append((t2 - t1) * 1e3)
            post_ms.append((t3 - t2) * 1e3)
            e2e_ms.append((t3 - t0) * 1e3)
    row.pre_ms, row.infer_ms, row.post_ms, row.e2e_ms = _stats(pre_ms), _stats(inf_ms), _stats(post_ms), _stats(e2e_ms)
    mean = row.e2e_ms["mean"]
    row.images_per_s = json_float(len(images) * 1e3 / mean, 2) if mean else None
    row.peak_rss_mb = _peak_rss_mb()
    return row


def _torch_device(device: str) -> str:
    kind, _, idx = device.partition(":")
    if kind == "cpu":
        return "cpu"
    if kind in ("cuda", "tensorrt"):
        return f"cuda:{idx or 0}"
    return "auto"  # cdo_train.api.load_run picks the GPU when there is one


def _torch_rows(cfg: BenchConfig, run_dir: Path, images: list[np.ndarray], pixel_threshold: float,
                bundle_hw: tuple[int, int]) -> list[BenchRow]:
    try:
        from cdo_train.api import load_run  # lazy: needs torch (cdo[train])
    except ImportError as e:
        return [BenchRow("torch-eager", "-", 0, status="unavailable",
                         note=f"cdo_train.api not importable ({e}); pip install 'cdo[train]'")]
    try:
        device = _torch_device(cfg.device)
        run = load_run(run_dir, device=device)
        hw = (int(run.image_size[0]), int(run.image_size[1]))
    except Exception as e:  # noqa: BLE001 - any failure becomes a row
        return [BenchRow("torch-eager", "-", 0, status="failed", note=f"load_run({run_dir}): {e}")]
    note = "" if hw == bundle_hw else f"run is {hw[0]}x{hw[1]}, bundle {bundle_hw[0]}x{bundle_hw[1]}"
    rows = []
    for b in cfg.batches:
        row = BenchRow("torch-eager", "checkpoint", b, device=f"torch {device}", note=note)
        try:
            rows.append(_measure(row, run.predict, images[:b], hw, pixel_threshold, cfg.warmup, cfg.iters))
        except Exception as e:  # noqa: BLE001
            row.status, row.note = "failed", f"{type(e).__name__}: {e}"
            rows.append(row)
    return rows


def run_bench(cfg: BenchConfig) -> list[BenchRow]:
    """Measure every (backend, model file, batch) combination.

    Returns:
        Rows in backend order, torch reference last; never raises for a
        backend failure (that becomes a ``failed`` row).

    Raises:
        CdoError: missing bundle, unknown backend name, bad settings.
    """
    meta = load_bundle_meta(cfg.bundle)
    for name in cfg.backends:
        BACKENDS.get(name)  # unknown names fail before anything is measured
    thr = meta.pixel_threshold if meta.pixel_threshold is not None else meta.image_threshold
    pixel_threshold = float(thr) if thr is not None else 0.5
    hw = (meta.height, meta.width)
    img_hw = cfg.image_hw or (2 * meta.height, 2 * meta.width)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(*img_hw, 3), dtype=np.uint8) for _ in range(max(cfg.batches))]
    rows: list[BenchRow] = []
    for name in cfg.backends:
        reason = BACKENDS.get(name).availability()
        files = [f for f in list_model_files(cfg.bundle, meta, name)
                 if cfg.variants is None or f.variant in cfg.variants]
        if reason is not None or not files:
            note = reason or f"no model file for {name} in {cfg.bundle} (model.json variants/engines)"
            rows.append(BenchRow(name, "-", 0, status="unavailable", note=note))
            continue
        for mf in files:
            try:
                backend = create_backend(name, mf.path, cfg.device, max_batch=max(cfg.batches))
            except Exception as e:  # noqa: BLE001 - any failure becomes a row
                rows.append(BenchRow(name, mf.variant, 0, status="failed", note=f"load: {e}"))
                continue
            try:
                for b in cfg.batches:
                    row = BenchRow(name, mf.variant, b, device=backend.device_label)
                    if b > backend.max_batch:
                        row.status, row.note = "unavailable", f"model accepts batch <= {backend.max_batch}"
                        rows.append(row)
                        continue

                    def infer(x: np.ndarray, be: Any = backend) -> tuple[np.ndarray, np.ndarray]:
                        out = be.infer(x)
                        return out.anomaly_map, out.score

                    try:
                        rows.append(_measure(row, infer, images[:b], hw, pixel_threshold, cfg.warmup, cfg.iters))
                    except Exception as e:  # noqa: BLE001
                        row.status, row.note = "failed", f"{type(e).__name__}: {e}"
                        rows.append(row)
                    log.info("bench %s %s batch %d: %s", name, mf.variant, b, row.status)
            finally:
                backend.close()
    if cfg.torch_run is not None:
        torch_rows = _torch_rows(cfg, cfg.torch_run, images, pixel_threshold, hw)
        ref = {r.batch: r.e2e_ms.get("p50") for r in torch_rows if r.status == "ok"}
        for r in rows:
            base, mine = ref.get(r.batch), r.e2e_ms.get("p50")
            if r.status == "ok" and base and mine:
                r.vs_torch = json_float(base / mine, 2)
        for r in torch_rows:
            if r.status == "ok":
                r.vs_torch = 1.0
        rows += torch_rows
    return rows


def _f(v: float | None, nd: int = 2) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def format_table(rows: list[BenchRow]) -> str:
    """Fixed-width table of the rows (ms per batch), with the status legend."""
    head = ["backend", "variant", "device", "batch", "pre p50", "infer p50/p90/p99", "post p50",
            "e2e p50/p90/p99", "e2e mean±std", "img/s", "peak MB", "vs torch", "status"]
    lines = [head]
    for r in rows:
        ok = r.status == "ok"
        lines.append([
            r.backend, r.variant, r.device or "-", str(r.batch) if r.batch else "-",
            _f(r.pre_ms.get("p50")) if ok else "-",
            "/".join(_f(r.infer_ms.get(k)) for k in ("p50", "p90", "p99")) if ok else "-",
            _f(r.post_ms.get("p50")) if ok else "-",
            "/".join(_f(r.e2e_ms.get(k)) for k in ("p50", "p90", "p99")) if ok else "-",
            f"{_f(r.e2e_ms.get('mean'))}±{_f(r.e2e_ms.get('std'))}" if ok else "-",
            _f(r.images_per_s, 1), _f(r.peak_rss_mb, 0),
            "-" if r.vs_torch is None else f"{r.vs_torch:.2f}x",
            r.status + (f" ({r.note})" if r.note else ""),
        ])
    widths = [max(len(row[i]) for row in lines) for i in range(len(head) - 1)]
    out = []
    for row in lines:
        out.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(row[:-1])) + "  " + row[-1])
    out.append("times in ms per batch; status: " + "; ".join(f"{k} = {v}" for k, v in STATUS_LEGEND.items()))
    return "\n".join(out)
