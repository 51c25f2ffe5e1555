"""``cdo-bench``: every backend x variant side by side, speed and accuracy, in one run.

Parts: with ``data`` (an MVTec class folder or an anomalib-style labelled folder,
:mod:`cdo_deploy.labelled`) the labelled good and defective test parts; without,
the bundle's calibration images or synthetic parts, each also with a drawn defect
(:mod:`cdo_deploy.parts`). Never only noise: post-processing is timed with and
without regions above the threshold.

1. Every requested backend loads every model file of the bundle it runs (the
   formats table), ``threads`` / ``hint`` applied (:meth:`Backend.set_options`).
2. Accuracy, once per backend x variant: every part through the model; image
   AUROC, pixel AUROC, AUPRO (:mod:`cdo_deploy.metrics`, training's metric code)
   with labels; the OK/NG decisions at the thresholds the runtime would use for
   that variant (the bundle's, or the variant's own from ``variant_thresholds``)
   compared with the reference row's (the first ``fp32`` row, ONNX Runtime by
   default): agreement in % and the parts that flip.
3. Speed, per batch size, all rows interleaved (one timed run of each row in turn,
   the starting row rotating), so machine noise hits every row alike. Batches
   alternate between good and defective parts; each timed run covers the real
   stages: pre-processing (resize + RGB), inference, post-processing (decision +
   regions). ``warmup`` untimed runs, then ``iters`` timed ones: p50/p90/p99 and
   mean/std in ms per batch, overall and for good and defective parts apart;
   images per second (batch * 1000 / mean end-to-end ms).

Every backend gets a row, failures included: ``ok``, ``unavailable`` (backend
not installed or no file for it in the bundle) or ``failed`` (it raised), with
the reason in ``note``. With ``torch_run`` the PyTorch eager model of a training
run (``cdo_train.api.load_run``, needs ``cdo[train]``) is one more row and the
``vs_torch`` reference: its end-to-end p50 divided by the row's.

Example:
    >>> cfg = BenchConfig(bundle=Path("bundle"), data=Path("data/weave"))   # doctest: +SKIP
    >>> print(format_table(run_bench(cfg)))                                  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .accuracy import Evaluation, agreement, evaluate
from .backends import BACKENDS, HINTS, create_backend
from .bench_table import STATUS_LEGEND, BenchReport, format_table, stats
from .bundle import BundleMeta, load_bundle_meta
from .cpu import cpu_info
from .errors import CdoError
from .formats import list_model_files
from .parts import timing_parts
from .postprocess import locate_defects
from .preprocess import to_model_input
from .results import BenchRow, json_float
from .thresholds import resolve_thresholds

__all__ = ["BenchConfig", "BenchReport", "STATUS_LEGEND", "bench_rounds", "format_table", "run_bench"]

log = logging.getLogger(__name__)

InferFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
PARTS = ("good", "defective")


@dataclass(frozen=True)
class BenchConfig:
    """What to measure.

    Attributes:
        bundle: bundle folder.
        backends: backend names (rows for each, failures included).
        batches: batch sizes.
        warmup: untimed runs per row and batch size.
        iters: timed runs per row and batch size.
        device: ``auto``, ``cpu``, ``cuda[:N]`` (ONNX Runtime also ``tensorrt[:N]``, OpenVINO ``gpu``/``npu``).
        variants: only these variants (``None``: all in the bundle).
        image_hw: synthetic part size (H, W) when neither data nor calibration images are there;
            default twice the model size.
        torch_run: training run folder for the PyTorch eager reference row.
        data: labelled parts (MVTec class folder or labelled folder) for accuracy and timing.
        threads: CPU inference threads per runtime (0 = each runtime's default).
        hint: ``latency`` or ``throughput`` (OpenVINO's performance hint).
    """

    bundle: Path
    backends: tuple[str, ...] = ("onnxruntime", "openvino", "tensorrt")
    batches: tuple[int, ...] = (1, 8)
    warmup: int = 5
    iters: int = 50
    device: str = "auto"
    variants: tuple[str, ...] | None = None
    image_hw: tuple[int, int] | None = None
    torch_run: Path | None = None
    data: Path | None = None
    threads: int = 0
    hint: str = "latency"

    def __post_init__(self) -> None:
        if not self.batches or min(self.batches) < 1:
            raise CdoError("--batch sizes must be >= 1")
        if self.iters < 1 or self.warmup < 0:
            raise CdoError("--iters must be >= 1 and --warmup >= 0")
        if self.threads < 0 or self.hint not in HINTS:
            raise CdoError(f"--threads must be >= 0 and --hint one of {', '.join(HINTS)}")


@dataclass
class _Runner:
    """One loaded backend x variant and what was measured for it."""

    backend: str
    variant: str
    device: str
    infer: InferFn
    max_batch: int
    thresholds: tuple[float, float] = (float("inf"), 0.5)  # image, pixel
    close: Callable[[], None] = lambda: None
    load_rss_mb: float | None = None
    evaluation: Evaluation | None = None
    note: str = ""
    failed: str = ""
    times: dict[int, dict[str, dict[str, list[float]]]] = field(default_factory=dict)


def _rss_mb(field_name: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _backend_runners(cfg: BenchConfig, meta: BundleMeta, rows: list[BenchRow]) -> list[_Runner]:
    runners = []
    for name in cfg.backends:
        reason = BACKENDS.get(name).availability()
        files = [f for f in list_model_files(cfg.bundle, meta, name)
                 if cfg.variants is None or f.variant in cfg.variants]
        if reason is not None or not files:
            note = reason or f"no model file for {name} in {cfg.bundle} (model.json variants/engines/openvino)"
            rows.append(BenchRow(name, "-", 0, status="unavailable", note=note))
            continue
        for mf in files:
            before = _rss_mb("VmRSS")
            try:
                be = create_backend(name, mf.path, cfg.device, max(cfg.batches), cfg.threads, cfg.hint)
            except Exception as e:  # noqa: BLE001 - any failure becomes a row
                rows.append(BenchRow(name, mf.variant, 0, status="failed", note=f"load: {e}"))
                continue

            def infer(x: np.ndarray, be: Any = be) -> tuple[np.ndarray, np.ndarray]:
                out = be.infer(x)
                return out.anomaly_map, out.score

            after = _rss_mb("VmRSS")
            runners.append(_Runner(name, mf.variant, be.device_label, infer, be.max_batch, be.close,
                                   load_rss_mb=None if before is None or after is None else round(after - before, 1)))
    return runners


def _torch_device(device: str) -> str:
    kind, _, idx = device.partition(":")
    if kind == "cpu":
        return "cpu"
    if kind in ("cuda", "tensorrt"):
        return f"cuda:{idx or 0}"
    return "auto"  # cdo_train.api.load_run picks the GPU when there is one


def _torch_runner(cfg: BenchConfig, run_dir: Path, meta: BundleMeta, rows: list[BenchRow]) -> _Runner | None:
    try:
        from cdo_train.api import load_run  # lazy: needs torch (cdo[train])
    except ImportError as e:
        rows.append(BenchRow("torch-eager", "-", 0, status="unavailable",
                             note=f"cdo_train.api not importable ({e}); pip install 'cdo[train]'"))
        return None
    try:
        device = _torch_device(cfg.device)
        run = load_run(run_dir, device=device)
        hw = (int(run.image_size[0]), int(run.image_size[1]))
    except Exception as e:  # noqa: BLE001 - any failure becomes a row
        rows.append(BenchRow("torch-eager", "-", 0, status="failed", note=f"load_run({run_dir}): {e}"))
        return None
    if hw != (meta.height, meta.width):
        rows.append(BenchRow("torch-eager", "checkpoint", 0, status="failed",
                             note=f"run is {hw[0]}x{hw[1]}, bundle {meta.height}x{meta.width}"))
        return None
    return _Runner("torch-eager", "checkpoint", f"torch {device}", run.predict, 1 << 30)


def _evaluate_all(runners: list[_Runner], inputs: np.ndarray, labels: np.ndarray | None, masks: np.ndarray | None,
                  batch: int) -> str:
    """Accuracy of every runner; decision agreement with the reference. Returns the reference's name."""
    for r in runners:
        try:
            r.evaluation = evaluate(r.infer, inputs, r.thresholds[0], labels, masks, min(batch, r.max_batch))
        except Exception as e:  # noqa: BLE001 - a failing runner becomes a failed row
            r.failed = f"accuracy run: {type(e).__name__}: {e}"
    done = [r for r in runners if r.evaluation is not None and r.backend != "torch-eager"]
    ref = next((r for r in done if r.variant == "fp32"), done[0] if done else None)
    return "" if ref is None else f"{ref.backend} {ref.variant}"


def _batch_of(pool: list[np.ndarray], start: int, b: int) -> list[np.ndarray]:
    return [pool[(start + j) % len(pool)] for j in range(b)]


def _time_one(r: _Runner, images: list[np.ndarray], hw: tuple[int, int]) -> tuple[float, float, float, float]:
    image_threshold, pixel_threshold = r.thresholds
    t0 = time.perf_counter()
    x = np.stack([to_model_input(img, *hw) for img in images])
    t1 = time.perf_counter()
    maps, scores = r.infer(x)
    t2 = time.perf_counter()
    maps = np.asarray(maps)
    for j, img in enumerate(images):  # the runtime's post-processing (Inspector.postprocess)
        locate_defects(maps[j].reshape(hw), bool(scores[j] >= image_threshold), image_threshold, pixel_threshold,
                       img.shape[:2])
    t3 = time.perf_counter()
    return (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, (t3 - t0) * 1e3


def _time_all(cfg: BenchConfig, runners: list[_Runner], pools: dict[str, list[np.ndarray]],
              hw: tuple[int, int], on_progress: Callable[[int], None] | None = None) -> None:
    """Time every runner, batch by batch, the runners interleaved; ``on_progress(1)`` after each round."""
    kinds = [k for k in PARTS if pools.get(k)]
    for b in cfg.batches:
        active = [r for r in runners if not r.failed and b <= r.max_batch]
        for r in active:
            r.times[b] = {k: {"pre": [], "infer": [], "post": [], "e2e": []} for k in kinds}
        for i in range(cfg.warmup + cfg.iters):
            kind = kinds[i % len(kinds)]
            images = _batch_of(pools[kind], (i // len(kinds)) * b, b)
            start = i % max(1, len(active))
            for r in active[start:] + active[:start]:
                if r.failed:
                    continue
                try:
                    t = _time_one(r, images, hw)
                except Exception as e:  # noqa: BLE001 - the row fails, the others go on
                    r.failed = f"batch {b}: {type(e).__name__}: {e}"
                    continue
                if i >= cfg.warmup:
                    for stage, ms in zip(("pre", "infer", "post", "e2e"), t):
                        r.times[b][kind][stage].append(ms)
            if on_progress is not None:
                on_progress(1)
        log.info("bench batch %d: %d row(s) timed", b, len(active))


def _rows(cfg: BenchConfig, runners: list[_Runner], ref: _Runner | None, names: list[str]) -> list[BenchRow]:
    rows = []
    peak = _rss_mb("VmHWM")
    for r in runners:
        acc, agree, flipped = {}, None, []
        if r.evaluation is not None:
            acc = {k: json_float(v) for k, v in r.evaluation.metrics.items()}
            if ref is not None and ref.evaluation is not None:
                agree, idx = agreement(r.evaluation, ref.evaluation)
                flipped = [names[i] for i in idx]
        for b in cfg.batches:
            row = BenchRow(r.backend, r.variant, b, device=r.device, note=r.note, accuracy=acc,
                           agreement_pct=agree, flipped=flipped, load_rss_mb=r.load_rss_mb, peak_rss_mb=peak)
            t = r.times.get(b)
            if b > r.max_batch:
                row.status, row.note = "unavailable", f"model accepts batch <= {r.max_batch}"
            elif r.failed and (not t or not any(v["e2e"] for v in t.values())):
                row.status, row.note = "failed", r.failed
            elif t:
                merged = {s: [x for v in t.values() for x in v[s]] for s in ("pre", "infer", "post", "e2e")}
                row.pre_ms, row.infer_ms = stats(merged["pre"]), stats(merged["infer"])
                row.post_ms, row.e2e_ms = stats(merged["post"]), stats(merged["e2e"])
                row.parts = {k: {"post_ms": stats(v["post"]), "e2e_ms": stats(v["e2e"])} for k, v in t.items()}
                mean = row.e2e_ms["mean"]
                row.images_per_s = json_float(b * 1e3 / mean, 2) if mean else None
                if r.failed:
                    row.status, row.note = "failed", r.failed
            rows.append(row)
    return rows


def bench_rounds(cfg: BenchConfig) -> int:
    """Timing rounds of a run (each times every row of one batch size once): the progress total."""
    return len(cfg.batches) * (cfg.warmup + cfg.iters)


def run_bench(cfg: BenchConfig, on_progress: Callable[[int], None] | None = None) -> BenchReport:
    """Measure every (backend, model file, batch) combination, accuracy included.

    ``on_progress(n)`` is called as ``n`` more of the :func:`bench_rounds` timing rounds are done.

    Returns:
        The report: rows in backend order, torch reference last; a backend failure
        becomes a ``failed`` row, never an exception.

    Raises:
        CdoError: missing bundle, unknown backend name, bad settings, unreadable ``data``.
    """
    meta = load_bundle_meta(cfg.bundle)
    for name in cfg.backends:
        BACKENDS.get(name)  # unknown names fail before anything is loaded
    thr = resolve_thresholds(meta) if meta.image_threshold is not None else None
    hw = (meta.height, meta.width)
    n = max(cfg.batches)
    labels = masks = None
    if cfg.data is not None:
        from .labelled import load_labelled

        data = load_labelled(cfg.data, *hw)
        inputs, labels, masks, names = data.inputs, data.labels, data.masks, list(data.names)
        pools = {k: [img for img, y in zip(data.images, data.labels) if y == i] for i, k in enumerate(PARTS)}
        what = f"{data.root} ({data.layout} layout): {data.summary()}"
    else:
        good, bad, what = timing_parts(list(meta.calibration_images), max(8, n),
                                       cfg.image_hw or (2 * hw[0], 2 * hw[1]))
        pools = {"good": good, "defective": bad}
        inputs = np.stack([to_model_input(img, *hw) for img in good + bad])
        names = [f"good#{i}" for i in range(len(good))] + [f"defective#{i}" for i in range(len(bad))]
    rows: list[BenchRow] = []
    runners = _backend_runners(cfg, meta, rows)
    if cfg.torch_run is not None:
        t = _torch_runner(cfg, cfg.torch_run, meta, rows)
        runners += [t] if t is not None else []
    for r in runners:
        if thr is not None:
            own = resolve_thresholds(meta, variant=r.variant)
            r.thresholds = (own.image, own.pixel)
            if own.source != thr.source:
                r.note = f"thresholds {own.image:.4g}/{own.pixel:.4g} ({own.source})"
    try:
        ref_name = _evaluate_all(runners, inputs, labels, masks, n)
        _time_all(cfg, runners, pools, hw, on_progress)
    finally:
        for r in runners:
            r.close()
    ref = next((r for r in runners if f"{r.backend} {r.variant}" == ref_name), None)
    measured = _rows(cfg, runners, ref, names)
    torch_p50 = {r.batch: r.e2e_ms.get("p50") for r in measured if r.backend == "torch-eager" and r.status == "ok"}
    for r in measured:
        base, mine = torch_p50.get(r.batch), r.e2e_ms.get("p50")
        if r.status == "ok" and base and mine:
            r.vs_torch = json_float(base / mine, 2)
    thresholds = {"image": thr.image, "pixel": thr.pixel} if thr else {}
    order = {name: i for i, name in enumerate(cfg.backends)}  # torch-eager (not listed) last
    ordered = sorted(rows + measured, key=lambda r: order.get(r.backend, len(order)))
    return BenchReport(ordered, what, ref_name, cpu_info().describe(), thresholds)
