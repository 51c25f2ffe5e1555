"""``export_run``: a ``cdo-train`` run folder -> a deploy bundle (and optional extras).

Steps (each output file is logged once: format, seconds, path, MB):

1. validate the options and the installed modules (nothing is written before);
2. rebuild the model from the run folder and read its thresholds and metrics;
3. trace the fp32 graph (:mod:`.graph`) and check it in ONNX Runtime against
   the trainer's own prediction on a few good images (a split batch, so the
   dynamic batch is exercised); a difference beyond ``FP32_TOL`` aborts;
4. optional fp16 / int8 variants (:mod:`.precision`), compared with fp32; the
   int8 variant is checked against fp32 on the held-out good and the test images
   (:mod:`.int8_check`) and refused when it fails, unless ``accept_int8``;
5. every ONNX file gets ``model.json``'s content as metadata (key ``cdo``);
   ``model.json`` gets the SHA-256 of every final ONNX file (metadata included;
   ``sha256`` per file, ``onnx_sha256`` for ``model.onnx``), checked by every
   later load; then the walk of :mod:`.checks` runs on every graph;
6. optional OpenVINO IRs, TensorRT engine (:mod:`cdo_deploy.engine_build`) and Triton repository.

Everything is written into a hidden sibling folder that is renamed to the
bundle folder only when all steps succeeded: a failed export leaves nothing.

Example:
    >>> res = export_run("result/exp/weave/seed_111", "bundle", ExportOptions(fp16=True))  # doctest: +SKIP
    >>> res.meta.variants                                                                  # doctest: +SKIP
    {'fp32': 'model.onnx', 'fp16': 'model_fp16.onnx'}
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from cdo_deploy.bundle import META_FILE, ONNX_FILE, BundleMeta, load_bundle_meta
from cdo_deploy.errors import CdoError
from cdo_deploy.thresholds import fmt_threshold

from .formats import ExportOptions, get_format
from .int8_check import Int8Check
from .run_inputs import RunInfo, check_run_folder, good_images, read_run_info, weak_run_warnings
from .verify import FP32_TOL, Parity, compare, onnx_session, run_onnx, torch_reference

__all__ = ["ExportResult", "ExportedFile", "export_run", "export_stages"]

log = logging.getLogger(__name__)
N_CHECK = 4


@dataclass(frozen=True)
class ExportedFile:
    """One file written by the export."""

    format: str
    path: Path
    seconds: float
    mb: float


@dataclass
class ExportResult:
    """What :func:`export_run` wrote and measured."""

    bundle_dir: Path
    meta: BundleMeta
    files: list[ExportedFile] = field(default_factory=list)
    parity: list[Parity] = field(default_factory=list)
    tensorrt_problems: dict[str, list[str]] = field(default_factory=dict)
    int8_check: Int8Check | None = None
    warnings: list[str] = field(default_factory=list)

    def next_commands(self) -> list[str]:
        """Commands a user typically runs next."""
        bundle = shlex.quote(str(self.bundle_dir))
        return [f"cdo-inspect {bundle} --source IMAGES_OR_FOLDER --once --out inspected", f"cdo-bench {bundle}"]


class _Recorder:
    """Logs and records each output file under its final path."""

    def __init__(self, tmp: Path, final: Path) -> None:
        self.tmp, self.final, self.files = tmp, final, []

    def add(self, fmt: str, path: Path, seconds: float) -> None:
        if not path.is_file() or path.stat().st_size == 0:
            raise RuntimeError(f"{fmt}: {path} was not written")
        shown = self.final / path.relative_to(self.tmp) if path.is_relative_to(self.tmp) else path
        mb = path.stat().st_size / 1e6
        log.info("%-10s %6.1f s  %s (%.1f MB)", fmt, seconds, shown, mb)
        self.files.append(ExportedFile(fmt, shown, round(seconds, 2), round(mb, 2)))


def _check_target(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise CdoError(f"bundle path {out} is a file")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise CdoError(f"{out} already exists and is not empty (pass --force to replace it)")
        if not (out / META_FILE).is_file():
            raise CdoError(f"{out} is not a cdo bundle (no {META_FILE}); refusing to replace it, choose another -o")


def _commit(tmp: Path, out: Path) -> None:
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def _meta(model: Any, info: RunInfo, variants: dict[str, str], parity: list[Parity], calibration_images: list[str],
          int8_check: Int8Check | None) -> BundleMeta:
    from ..model.backbones import BACKBONES

    cfg = model.cfg
    cal = info.calibration
    stats = dict(cal.get("normal_stats") or {})
    if cal.get("normal_pixel_p999") is not None:
        stats["pixel_p999"] = cal["normal_pixel_p999"]
    seg = model.seg_head is not None  # its map is not blurred and its score is always the top-k mean
    rule: dict[str, Any] = {"kind": "topk_mean" if seg else cfg.score_rule}
    if rule["kind"] == "topk_mean":
        rule["k"] = cfg.topk
    n_levels = len(BACKBONES.get(cfg.backbone).out_indices)
    if cfg.head == "cdo" and 0 < cfg.score_levels < n_levels:
        rule["levels"] = cfg.score_levels  # the score reads the map of the first N levels only
    h, w = model.head.image_size
    return BundleMeta(
        height=h, width=w, backbone=cfg.backbone, levels=list(BACKBONES.get(cfg.backbone).out_indices),
        blur_sigma=0.0 if seg else cfg.blur_sigma, score_rule=rule, image_threshold=cal.get("image_threshold"),
        pixel_threshold=cal.get("pixel_threshold"), threshold_source=str(cal.get("source", "none")),
        normal_stats=stats, train={**info.config, "model": cfg.to_dict(), "run_dir": str(info.run_dir),
                                   "run_status": info.status or "unknown"},
        metrics={"last": info.summary.get("last", {}), "best": info.summary.get("best", {}),
                 "export_parity": [p.to_dict() for p in parity]},
        variants=variants, calibration_images=calibration_images,
        int8_check=int8_check.to_dict() if int8_check is not None else {},
        variant_thresholds={"int8": int8_check.thresholds} if int8_check is not None and int8_check.thresholds else {},
    )


def export_stages(opts: ExportOptions) -> list[str]:
    """The stages :func:`export_run` goes through with ``opts``, in order (its progress steps)."""
    return ["load", "onnx", *(["fp16"] if opts.wants_fp16() else []), *(["int8", "int8 check"] if opts.int8 else []),
            "write", *(["openvino"] if opts.openvino else []), *(["engine"] if opts.engine else []),
            *(["aoti"] if opts.aoti else []), *(["triton"] if opts.triton_repo is not None else [])]


def _variants(model: Any, opts: ExportOptions, images: np.ndarray | None, tmp: Path, check: np.ndarray,
              stage: Callable[[str], None]) -> tuple[dict[str, Any], dict[str, float], list[Parity]]:
    """Build the ONNX protos (no metadata yet), timing each and checking parity."""
    import onnx

    from .graph import export_onnx
    from .precision import quantize_int8, to_fp16

    stage("onnx")
    protos: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    protos["onnx"] = export_onnx(model, opts.opset, opts.simplify)
    seconds["onnx"] = time.perf_counter() - t
    ref = torch_reference(model, check)
    fp32 = run_onnx(onnx_session(protos["onnx"].SerializeToString()), check, batch_size=N_CHECK - 1)
    parity = [compare(ref, fp32, "fp32", FP32_TOL)]
    if not parity[0].ok:
        raise CdoError(f"the exported graph differs from PyTorch by {parity[0].map_max_abs:.3g} "
                       f"(tolerance {parity[0].tolerance:.3g}); this is a cdo bug, please report it")
    if opts.wants_fp16():
        stage("fp16")
        if not opts.fp16:
            log.info("--engine-precision fp16: also writing the fp16 variant the engine is built from")
        t = time.perf_counter()
        protos["onnx-fp16"] = to_fp16(protos["onnx"])
        seconds["onnx-fp16"] = time.perf_counter() - t
    if opts.int8:
        if images is None:
            raise CdoError("--int8 needs good images to calibrate on, and the run's training images are not "
                           "reachable (config.yaml data_root); pass --calib-dir FOLDER")
        stage("int8")
        t = time.perf_counter()
        src = tmp / ".int8_source.onnx"
        onnx.save(protos["onnx"], str(src))
        protos["onnx-int8"] = quantize_int8(src, tmp / get_format("onnx-int8").file, images[: opts.n_calib],
                                            opts.method, opts.keep_ends, opts.activations)
        src.unlink()
        seconds["onnx-int8"] = time.perf_counter() - t
        log.info("int8 calibrated on %d good images (%s, %s activations%s)", min(len(images), opts.n_calib),
                 opts.method, opts.activations, ", end convolutions in fp32" if opts.keep_ends else "")
    for name in ("onnx-fp16", "onnx-int8"):
        if name in protos:
            out = run_onnx(onnx_session(protos[name].SerializeToString()), check, batch_size=N_CHECK - 1)
            parity.append(compare(fp32, out, get_format(name).variant or name))
    for p in parity:
        log.info("parity %s vs %s on %d images: map max |d| %.3g, score max |d| %.3g", p.variant,
                 "PyTorch" if p.variant == "fp32" else "fp32", p.n_images, p.map_max_abs, p.score_max_abs)
    return protos, seconds, parity


def _check_int8(protos: dict[str, Any], opts: ExportOptions, info: RunInfo, size: int, n_calib: int) -> Int8Check:
    """int8 against fp32 (:mod:`.int8_check`); raises unless it passes or ``accept_int8``."""
    from dataclasses import replace

    from .int8_check import check_int8
    from .run_inputs import load_split, run_splits

    splits = run_splits(info)
    holdout = test = None
    if splits is not None and splits.holdout:
        images, _, _, names = load_split(splits.holdout, size)
        holdout = (images, names)
    if splits is not None and splits.test:
        test = load_split(splits.test, size)

    def runner(proto: Any) -> Any:
        sess = onnx_session(proto.SerializeToString())
        return lambda x: tuple(run_onnx(sess, x, batch_size=len(x)))

    settings = {"method": opts.method, "keep_end_convs_fp32": opts.keep_ends, "calibration_images": n_calib,
                "per_channel": True, "thresholds": opts.int8_thresholds or "own",
                "activations": "uint8 asymmetric" if opts.activations == "uint8" else "int8 symmetric"}
    check = check_int8(runner(protos["onnx"]), runner(protos["onnx-int8"]), info.calibration.get("image_threshold"),
                       holdout, test, opts.tolerance, settings, own_thresholds=opts.int8_thresholds != "bundle")
    if check.thresholds:
        log.info("int8 thresholds (own, %s): image %.6g, pixel %.6g", check.thresholds["source"],
                 check.thresholds["image"], check.thresholds["pixel"] or float("nan"))
    if check.passed:
        log.info("%s", check.summary())
        return check
    if not opts.accept_int8:
        raise CdoError(f"{check.summary()}; nothing written. Try --calib-method, --int8-keep-ends or more "
                       "--calib-images, or pass --accept-int8 to ship it anyway (recorded in model.json)")
    for line in ("!" * 78, f"WARNING: {check.summary()}", "WARNING: writing model_int8.onnx anyway (--accept-int8); "
                 "model.json int8_check records the figures", "!" * 78):
        log.warning("%s", line)
    return replace(check, accepted=True)


def export_run(run_dir: str | Path, bundle_dir: str | Path, options: ExportOptions | None = None,
               on_stage: Callable[[str], None] | None = None) -> ExportResult:
    """Export a finished ``cdo-train`` run folder to a bundle folder.

    Args:
        run_dir: ``<output_dir>/<experiment>/<class>/seed_<n>``.
        bundle_dir: the bundle folder to write (must be absent or empty unless ``force``).
        options: what to write; defaults to ``ExportOptions()`` (fp32 ONNX only).
        on_stage: called with each stage's name (:func:`export_stages`) as it starts: progress display.

    Returns:
        The files written, the bundle description and the parity measurements.

    Raises:
        CdoError: bad options, missing modules, missing/corrupt run folder, unreachable
            calibration data, TensorRT parser constraints violated with ``--engine``, build failure.
    """
    import onnx

    from ..training.saved_model import load_model
    from .checks import tensorrt_problems
    from .graph import set_metadata

    opts = (options or ExportOptions()).validate()
    run, out = Path(run_dir), Path(bundle_dir)
    if not run.is_dir():
        raise CdoError(f"no such run folder: {run} (a cdo-train run: <output-dir>/<experiment>/<class>/seed_<n>)")
    _check_target(out, opts.force)
    if opts.triton_repo is not None and (Path(opts.triton_repo) / opts.model_name).exists() and not opts.force:
        raise CdoError(f"{Path(opts.triton_repo) / opts.model_name} already exists (pass --force to replace it)")
    check_run_folder(run)
    info = read_run_info(run)
    status = info.status
    if status == "interrupted" and not opts.allow_interrupted:
        stop = info.summary.get("interrupted", {})
        raise CdoError(f"{run} is an {status} run (step {stop.get('step', '?')} of {stop.get('of', '?')}): finish it "
                       f"with cdo-train --resume {run}, or pass --allow-interrupted to export its weights as they are")
    stage = on_stage or (lambda name: None)
    stage("load")
    weak = weak_run_warnings(info)
    for warning in weak:
        log.warning("WARNING: %s", warning)
    model = load_model(run)
    size = model.head.image_size[0]
    images, image_paths = good_images(info, size, max(opts.n_calib if opts.int8 else 0, N_CHECK), opts.calib_dir)
    check = images[:N_CHECK] if images is not None else np.random.default_rng(0).integers(
        0, 256, (N_CHECK, size, size, 3), dtype=np.uint8)

    target = out.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    rec = _Recorder(tmp, out)
    try:
        protos, seconds, parity = _variants(model, opts, images, tmp, check, stage)
        int8 = None
        if "onnx-int8" in protos:
            from .precision import HISTOGRAM_MAX_IMAGES

            stage("int8 check")
            n_calib = min(opts.n_calib, len(image_paths), HISTOGRAM_MAX_IMAGES if opts.method != "minmax" else 1 << 30)
            int8 = _check_int8(protos, opts, info, size, n_calib)
        variants = {get_format(name).variant or name: get_format(name).file for name in protos}
        meta = _meta(model, info, variants, parity, image_paths, int8)
        problems: dict[str, list[str]] = {}
        stage("write")
        for name, proto in protos.items():
            t = time.perf_counter()
            set_metadata(proto, meta.to_dict())
            path = tmp / get_format(name).file
            onnx.save(proto, str(path))
            rec.add(name, path, seconds[name] + time.perf_counter() - t)
            cpu_int8 = name == "onnx-int8" and opts.activations == "uint8"
            problems[name] = [] if cpu_int8 else tensorrt_problems(proto)
            if cpu_int8:
                log.info("%s: uint8 activations (CPU runtimes); a TensorRT int8 engine needs --int8-activations int8",
                         path.name)
            for p in problems[name]:
                log.warning("%s: TensorRT's ONNX parser would reject: %s", path.name, p)
        if opts.openvino:
            stage("openvino")
            _openvino(tmp, meta, rec)
        meta.save(tmp)  # records the sha256 of every listed model file (model.json 'sha256', 'onnx_sha256')
        log.info("thresholds: image %s, pixel %s (source %s)", fmt_threshold(meta.image_threshold),
                 fmt_threshold(meta.pixel_threshold), meta.threshold_source)
        if opts.engine:
            stage("engine")
            _engine(opts, tmp, rec, problems)
            meta = load_bundle_meta(tmp)
        if opts.aoti:  # last model step: it casts the model's backbones in place
            from .aoti import export_aoti

            stage("aoti")
            res = export_aoti(model, tmp, precision=opts.aoti_precision, max_batch=opts.max_batch)
            rec.add("aoti", res.path, res.seconds)
            meta = load_bundle_meta(tmp)
        if opts.triton_repo is not None:
            from .triton import write_triton_repo

            stage("triton")
            t = time.perf_counter()
            cfg = write_triton_repo(tmp, Path(opts.triton_repo), opts.model_name, meta.height, meta.width,
                                    opts.max_batch, opts.opt_batch, opts.force)
            rec.add("triton", cfg.parent / "1" / ONNX_FILE, time.perf_counter() - t)
        _commit(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ExportResult(out, meta, rec.files, parity, problems, int8, weak)


def _openvino(tmp: Path, meta: BundleMeta, rec: _Recorder) -> None:
    """OpenVINO IRs of the fp32 and int8 variants (weights as they are), listed under ``openvino``.

    No fp16 IR: the backend runs with ``INFERENCE_PRECISION_HINT=f32`` (the head cancels in 16-bit
    floats), so an fp16 IR would compute in fp32 from rounded weights.
    """
    from cdo_deploy.backends.openvino import import_openvino

    ov = import_openvino()
    for variant, file in meta.variants.items():
        if variant not in ("fp32", "int8") or not file.endswith(".onnx"):
            continue
        t = time.perf_counter()
        name = "model_openvino.xml" if variant == "fp32" else f"model_openvino_{variant}.xml"
        ov.save_model(ov.convert_model(str(tmp / file)), str(tmp / name), compress_to_fp16=False)
        meta.openvino[variant] = name
        rec.add("openvino", tmp / name, time.perf_counter() - t)
        rec.add("openvino", (tmp / name).with_suffix(".bin"), 0.0)


def _engine(opts: ExportOptions, tmp: Path, rec: _Recorder, problems: dict[str, list[str]]) -> None:
    from cdo_deploy.engine_build import build_engine

    source = {"fp32": "onnx", "fp16": "onnx-fp16", "int8": "onnx-int8"}[opts.precision]
    if problems.get(source):
        raise CdoError(f"{get_format(source).file} has {len(problems[source])} construct(s) TensorRT's parser "
                       f"rejects, e.g. {problems[source][0]}")
    t = time.perf_counter()
    path = build_engine(tmp, opts.precision, opts.min_batch, opts.opt_batch, opts.max_batch, opts.workspace_mb)
    rec.add("engine", path, time.perf_counter() - t)
