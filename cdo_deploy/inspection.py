"""One inspection run: bundle + source -> results folder. What ``cdo-inspect`` calls.

The output folder holds::

    results.jsonl   one record per image/frame (source of truth; resumes from it)
    results.csv     with csv=True
    mqtt_spool.jsonl  with mqtt: messages not yet confirmed by the broker (sent at the next start)
    overlays/       heatmap pictures of NG parts (or all)
    quarantine/     unreadable files of a folder source (moved there while watching, copied with once)
    ok/ ng/         input files routed by decision, with route=True
    summary.json    totals, latency and drift state of the last run (summaries.jsonl: one line per run)
    previous/       earlier results moved aside by fresh=True (--fresh)

Example:
    >>> cfg = InspectConfig(bundle=Path("bundle"), source="incoming/", out=Path("out"), once=True)  # doctest: +SKIP
    >>> result = run_inspection(cfg)                                                               # doctest: +SKIP
    >>> print(result.summary.format())                                                             # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import Field

from .drift import DriftConfig, DriftMonitor
from .errors import CdoError
from .inspector import Inspector
from .pipeline import Pipeline, PipelineConfig
from .resume import check_resume, producer_key, start_fresh
from .schema import Bool, Float, Int, Schema, Text
from .sinks import CsvSink, JsonlSink, LiveSink, MqttSink, OverlaySink, RouteSink, Sink
from .sources import CameraSettings, FolderSource, classify_source, open_source
from .status import Summary
from .thresholds import normal_stats

__all__ = ["InspectConfig", "InspectResult", "run_inspection"]

log = logging.getLogger(__name__)

RESULTS_FILE = "results.jsonl"
SPOOL_FILE = "mqtt_spool.jsonl"


Overlays = Literal["ng", "all", "none"]


class InspectConfig(Schema):
    """Everything ``cdo-inspect`` can be told: one schema, which its options read their types, choices,
    defaults and help from (see ``cdo-inspect --help``).

    Built with an unknown key, a wrong type or a value out of range, it raises a one-line ``CdoError``
    naming the key. ``InspectConfig(bundle, source, ...)``: the fields may be given in order, too.
    """

    bundle: Path = Field(description="The bundle folder (cdo-export's output).")
    source: Text = Field(description="Folder to watch, image/video file, glob ('lot/*.png'), @list.txt, camera:N, "
                         "rtsp://... / http://... URL, GStreamer pipeline ('gst:...'), or an industrial camera: "
                         "pylon, pylon:SERIAL, pylon:NAME (pip install 'cdo[pylon]').")
    out: Path = Field(Path("inspect_out"), description="Output folder: results.jsonl, overlays/, quarantine/, "
                      "summary.json.")
    once: Bool = Field(False, description="Folder: process the files already there, then exit (the folder is left "
                       "as it is).")
    include_existing: Bool = Field(False, description="Folder: also process files already there, then keep "
                                   "watching (use after a restart).")
    backend: Text = Field("auto", description="Inference backend: auto or a registered one.")
    device: Text = Field("auto", description="auto, cpu, cuda[:N]; onnxruntime also tensorrt[:N] (its TensorRT "
                         "provider).")
    variant: Text | None = Field(None, description="Model variant from model.json (fp32, fp16, int8...).")
    threshold: Float | None = Field(None, description="Image threshold (score units), overrides model.json.")
    pixel_threshold: Float | None = Field(None, description="Pixel threshold for defect regions.")
    sensitivity: Float | None = Field(None, ge=0, le=1, description="0..1: 0.5 = model.json thresholds, higher = "
                                      "more NG (1 = p99 of normal scores).")
    # the pipeline's settings, declared once in PipelineConfig
    max_batch: Int = PipelineConfig.model_fields["max_batch"]
    max_wait_ms: Float = PipelineConfig.model_fields["max_wait_ms"]
    queue_size: Int = PipelineConfig.model_fields["queue_size"]
    workers: Int = PipelineConfig.model_fields["workers"]
    overlays: Overlays = Field("ng", description="Write heatmap overlays for NG parts, all images, or none.")
    route: Bool = Field(False, description="Move input files into OUT/ok/ and OUT/ng/ after inspection.")
    quarantine: Bool = Field(True, description="Move unreadable files of a watched folder to OUT/quarantine/ "
                             "(--once copies them there).")
    csv: Bool = Field(False, description="Also write OUT/results.csv.")
    mqtt: Text | None = Field(None, description="Publish every decision to an MQTT broker: HOST:PORT/TOPIC.")
    settle_s: Float = Field(0.5, ge=0, description="Folder: a file is complete when unchanged this long (or "
                            "closed after writing).")
    max_frames: Int | None = Field(None, ge=1, description="Streams, cameras: stop after N frames (pylon software "
                                   "trigger: fire N triggers).")
    min_region_area: Int = Field(0, ge=0, description="Ignore defect regions smaller than this many pixels.")
    fresh: Bool = Field(False, description="OUT holds results of another bundle or other thresholds: move them to "
                        "OUT/previous/ and start anew (without it such a run refuses).")
    camera: CameraSettings | None = Field(None, description="Industrial camera settings (--source pylon).")
    http: Text | None = Field(None, description="Serve a live operator page, Prometheus /metrics and /healthz "
                              "(read-only) at [HOST:]PORT; binds 127.0.0.1 unless HOST is given (then a token is "
                              "required). Port 0: any free port.")
    http_token_file: Path | None = Field(None, description="File with the bearer token for --http (default: "
                                         "$CDO_HTTP_TOKEN, else no token).")
    drift: DriftConfig = Field(DriftConfig(), description="Drift monitor settings.")

    def __init__(self, *args: Any, **data: Any) -> None:
        names = list(type(self).model_fields)
        if len(args) > len(names):
            raise TypeError(f"InspectConfig takes at most {len(names)} positional arguments, got {len(args)}")
        for name, value in zip(names, args):  # positional, in field order, as the dataclass it was took them
            if name in data:
                raise TypeError(f"InspectConfig got multiple values for {name!r}")
            data[name] = value
        super().__init__(**data)


@dataclass
class InspectResult:
    """Totals of a run and where its results are.

    ``overlays``/``quarantined``: how many pictures went to ``out/overlays/`` and files to
    ``out/quarantine/`` (``quarantine_copied``: copies, the source folder untouched).
    """

    summary: Summary
    results: Path
    out: Path
    overlays: int = 0
    quarantined: int = 0
    quarantine_copied: bool = False
    queued_at_start: bool = False

    def report_lines(self) -> list[str]:
        """Where things went, and what the latency figures mean: the lines ``cdo-inspect`` ends with."""
        s = self.summary
        lines = [f"results: {self.results} ({s.processed} record(s) this run, one JSON line per part)"]
        if self.overlays:
            lines.append(f"overlays: {self.out / 'overlays'} ({self.overlays} picture(s))")
        if self.quarantined:
            how = "copied, the source folder is untouched" if self.quarantine_copied else "moved out of the source"
            lines.append(f"quarantine: {self.out / 'quarantine'} ({self.quarantined} unreadable file(s), {how})")
        if self.queued_at_start and s.p50_ms is not None:
            infer = f"; inference alone p50 {s.infer_p50_ms:.1f} ms per batch" if s.infer_p50_ms is not None else ""
            lines.append("latency: p50/p99 run from reading a file to its result; the files already there were all "
                         f"queued at start, so they include the wait behind the others and the first batch's "
                         f"start-up{infer} (cdo-bench BUNDLE measures warm latency)")
        return lines


def run_inspection(cfg: InspectConfig, stop: threading.Event | None = None,
                   on_status: Callable[[Summary], None] | None = None, status_every_s: float = 1.0,
                   on_serving: Callable[[str], None] | None = None) -> InspectResult:
    """Inspect ``cfg.source`` with ``cfg.bundle`` until the source ends or ``stop`` is set.

    With ``cfg.http`` the live page, ``/metrics`` and ``/healthz`` are served
    while the pipeline runs (:mod:`cdo_deploy.web`); ``on_serving`` gets its URL.

    Resumes into ``cfg.out`` only when its results were produced by the same
    model file and thresholds (see :mod:`cdo_deploy.resume`); ``cfg.fresh``
    moves earlier results aside first.

    Raises:
        CdoError: bad bundle, source, sink or option, or ``cfg.out`` holds another
            bundle's results; nothing is processed then. ``results.jsonl`` that
            cannot be written while running.
    """
    stop = stop or threading.Event()
    token = None
    if cfg.http is not None:
        from .web import parse_http_address, resolve_token

        parse_http_address(cfg.http)  # a bad address fails before the bundle loads
        token = resolve_token(cfg.http_token_file)
    if cfg.camera is not None and not cfg.camera.is_default() and classify_source(cfg.source) != "pylon":
        raise CdoError(f"camera options (--trigger, --exposure-us, --pfs, ...) apply to --source pylon, "
                       f"not to {cfg.source!r}")
    inspector = Inspector(cfg.bundle, cfg.backend, cfg.device, variant=cfg.variant, threshold=cfg.threshold,
                          pixel_threshold=cfg.pixel_threshold, sensitivity=cfg.sensitivity,
                          max_batch=cfg.max_batch, min_region_area=cfg.min_region_area)
    created = not cfg.out.exists()
    try:
        try:
            cfg.out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CdoError(f"cannot create output folder {cfg.out}: {e}") from None
        results = cfg.out / RESULTS_FILE
        if cfg.fresh:
            start_fresh(cfg.out)
        thr = inspector.thresholds
        key = producer_key(inspector.model_sha256, thr.image, thr.pixel)
        done = check_resume(results, key).done
        if done:
            log.info("%s: %d sources already done; they are skipped", results, len(done))
        source = open_source(cfg.source, done, once=cfg.once, include_existing=cfg.include_existing,
                             settle_s=cfg.settle_s, exclude=[cfg.out], max_frames=cfg.max_frames,
                             camera=cfg.camera)
        try:
            if cfg.route and not source.files:
                raise CdoError(f"--route moves input files; {source.describe()} has none")
            sinks: list[Sink] = []
            overlay: OverlaySink | None = None
            route: RouteSink | None = None
            if cfg.overlays != "none":
                overlay = OverlaySink(cfg.out / "overlays", cfg.overlays)
                sinks.append(overlay)
            sinks.append(JsonlSink(results))
            if cfg.csv:
                sinks.append(CsvSink(cfg.out / "results.csv"))
            if cfg.mqtt:
                sinks.append(MqttSink(cfg.mqtt, spool=cfg.out / SPOOL_FILE, results=results))
            quarantine = cfg.quarantine and isinstance(source, FolderSource)
            if source.files and (cfg.route or quarantine):
                route = RouteSink(cfg.out, route=cfg.route, quarantine=quarantine, copy_errors=cfg.once)
                sinks.append(route)
            live = LiveSink() if cfg.http is not None else None
            if live is not None:
                sinks.append(live)  # last: its "output" latency covers results.jsonl and the other sinks
            config = PipelineConfig(**{k: getattr(cfg, k) for k in PipelineConfig.model_fields})
            drift = DriftMonitor(normal_stats(inspector.meta, inspector.model_file.variant), cfg.drift)
            if not drift.enabled:
                log.info("drift monitor off: the bundle has no normal_stats (mean, std) of good scores")
            pipeline = Pipeline(inspector, source, sinks, config, drift=drift)
            server = _serve(cfg, pipeline, live, token, inspector) if live is not None else None
        except BaseException:
            source.close()
            raise
        if server is not None and on_serving is not None:
            on_serving(server.url)
        try:
            summary = pipeline.run(stop, on_status=on_status, status_every_s=status_every_s)
        finally:
            if server is not None:
                server.view.finished = True
                server.close()
    except CdoError:
        if created:
            _remove_empty(cfg.out)  # a run that failed before its first record leaves no empty --out behind
        raise
    finally:
        inspector.close()
    doc = {**summary.to_dict(), "model_sha256": key[0], "image_threshold": key[1], "pixel_threshold": key[2],
           "records_total": len(done) + summary.processed, "finished": _now()}
    try:  # this run's summary, and one line per run in summaries.jsonl (the history)
        (cfg.out / "summary.json").write_text(json.dumps(doc, indent=2) + "\n")
        with open(cfg.out / "summaries.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(doc) + "\n")
    except OSError as e:
        log.warning("cannot write %s: %s", cfg.out / "summary.json", e)
    quarantined = 0 if route is None else route.counts.get("quarantine", 0)
    return InspectResult(summary=summary, results=results, out=cfg.out,
                         overlays=0 if overlay is None else overlay.count, quarantined=quarantined,
                         quarantine_copied=cfg.once,
                         queued_at_start=bool(source.files) and (cfg.once or cfg.include_existing))


def _remove_empty(folder: Path) -> None:
    """Remove ``folder`` and its sub-folders if they hold no file."""
    if not folder.is_dir() or any(p.is_file() and p.stat().st_size for p in folder.rglob("*")):
        return
    shutil.rmtree(folder, ignore_errors=True)


def _serve(cfg: InspectConfig, pipeline: Pipeline, live: LiveSink, token: str | None, inspector: Inspector) -> Any:
    from .web import LineView, WebServer

    mf = inspector.model_file
    info = {"bundle": str(cfg.bundle), "variant": mf.variant, "backend": mf.backend,
            "device": inspector.backend.device_label}
    return WebServer(LineView(pipeline, live, info), cfg.http or "", token).start()


def _now() -> str:
    import datetime as _dt

    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
