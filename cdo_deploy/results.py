"""Torch-free result dataclasses of the line-side runtime.

``Prediction`` is what :class:`cdo_deploy.inspector.Inspector` returns for one
image or frame and what every sink receives; ``BenchRow`` is one row of
``cdo-bench``. Field names match the ONNX output names (``anomaly_map``,
``score``) so the graph and the runtime share one vocabulary.

Example:
    >>> import numpy as np
    >>> p = Prediction(source="a.png", score=0.9, is_ng=True,
    ...                anomaly_map=np.zeros((4, 4), np.float32), image_shape=(8, 8))
    >>> p.decision, p.anomaly_map_full().shape
    ('NG', (8, 8))
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["BenchRow", "Prediction", "Region", "StageTimes", "json_float", "record_id"]


def json_float(x: float | None, ndigits: int = 6) -> float | None:
    """Round a float for JSON; NaN/inf and None become ``None``."""
    if x is None or not math.isfinite(x):
        return None
    return round(float(x), ndigits)


def record_id(model_sha256: str, image_threshold: float | None, pixel_threshold: float | None, key: str) -> str:
    """Stable id of a result: the same part (``key``), model file and thresholds give the same id.

    ``key`` is the source id (file path, ``video#frame``), plus the acquisition
    time for live streams whose frame numbers restart with each run. 24 hex digits.

    Example:
        >>> record_id("ab" * 32, 0.75, 0.7, "/in/part1.png") == record_id("ab" * 32, 0.75, 0.7, "/in/part1.png")
        True
    """
    text = f"{model_sha256}|{json_float(image_threshold)}|{json_float(pixel_threshold)}|{key}"
    return hashlib.sha256(text.encode("utf-8", errors="surrogateescape")).hexdigest()[:24]


@dataclass(frozen=True)
class Region:
    """One connected defect region of the thresholded anomaly map.

    Attributes:
        x0, y0, x1, y1: bounding box in original-image pixels, end exclusive.
        area: region area in original-image pixels (component pixel count at
            model resolution times the resize factor).
        peak: highest anomaly-map value inside the region.
        kind: ``"threshold"``: a connected component of ``anomaly_map >= pixel threshold``;
            ``"map_max"``: flagged fallback for an NG part with no such component, the
            component around the map's maximum (see :func:`cdo_deploy.postprocess.locate_defects`).
    """

    x0: int
    y0: int
    x1: int
    y1: int
    area: int
    peak: float
    kind: str = "threshold"

    def to_dict(self) -> dict[str, Any]:
        return {"box": [self.x0, self.y0, self.x1, self.y1], "area": self.area,
                "peak": json_float(self.peak), "kind": self.kind}


@dataclass
class StageTimes:
    """Time spent per pipeline stage for one image, in milliseconds.

    ``infer`` is the time of the whole (micro-)batch the image was part of;
    ``queue`` is time spent waiting between stages; ``total`` runs from
    acquisition (file ready / frame grabbed) to the end of post-processing.
    """

    read: float = 0.0
    pre: float = 0.0
    infer: float = 0.0
    post: float = 0.0
    queue: float = 0.0
    total: float = 0.0

    def to_dict(self) -> dict[str, float | None]:
        return {k: json_float(v, 3) for k, v in asdict(self).items()}


@dataclass
class Prediction:
    """The result for one image or frame.

    Attributes:
        source: source id (absolute file path, or ``"<stream>#<frame>"``).
        score: image anomaly score (model units).
        is_ng: ``score >= thresholds.image``.
        anomaly_map: (h, w) float32 map at model resolution.
        image_shape: (H, W) of the original image.
        regions: defect regions, boxes in original-image coordinates, highest peak first.
        times: per-stage latency in ms.
        image_threshold, pixel_threshold: thresholds the decision used.
        frame: frame index for streams, else ``None``.
        batch: size of the inference batch this image was part of.
        error: message when the image could not be processed (then ``score`` is NaN).
        source_meta: per-frame metadata from the source (``Item.source_meta``, e.g. camera id,
            frame number, camera timestamp); recorded as ``source_meta`` by every sink.
        id: stable id of the result (:func:`record_id`), e.g. for consumers of at-least-once MQTT.
        model_sha256: SHA-256 of the model file that produced the result.
        extra: free-form fields sinks add to the record (e.g. ``overlay`` path).
    """

    source: str
    score: float
    is_ng: bool
    anomaly_map: np.ndarray | None
    image_shape: tuple[int, int]
    regions: list[Region] = field(default_factory=list)
    times: StageTimes = field(default_factory=StageTimes)
    image_threshold: float | None = None
    pixel_threshold: float | None = None
    frame: int | None = None
    batch: int = 1
    time: float = 0.0
    error: str | None = None
    source_meta: dict[str, Any] = field(default_factory=dict)
    id: str = ""
    model_sha256: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    _map_full: np.ndarray | None = field(default=None, repr=False, compare=False)
    #: the results.jsonl line once serialised (:meth:`to_line`)
    _line: str | None = field(default=None, repr=False, compare=False)

    @property
    def decision(self) -> str | None:
        """``"NG"``, ``"OK"``, or ``None`` for an error record."""
        if self.error is not None:
            return None
        return "NG" if self.is_ng else "OK"

    @classmethod
    def failed(cls, source: str, error: str, *, frame: int | None = None,
               time: float = 0.0, times: StageTimes | None = None) -> "Prediction":
        """An error record: the image could not be read or decoded."""
        return cls(source=source, score=float("nan"), is_ng=False, anomaly_map=None,
                   image_shape=(0, 0), frame=frame, time=time, error=error,
                   times=times or StageTimes())

    def anomaly_map_full(self) -> np.ndarray:
        """(H, W) float32 anomaly map resized to the original image (computed once, lazily)."""
        if self.anomaly_map is None:
            raise ValueError(f"{self.source}: no anomaly map (error record)")
        if self._map_full is None:
            import cv2

            h, w = self.image_shape
            if self.anomaly_map.shape == (h, w):
                self._map_full = self.anomaly_map
            else:
                self._map_full = cv2.resize(self.anomaly_map, (w, h), interpolation=cv2.INTER_LINEAR)
        return self._map_full

    def to_record(self) -> dict[str, Any]:
        """One JSON-serialisable results.jsonl record (no maps)."""
        rec: dict[str, Any] = {
            "id": self.id or None,
            "source": self.source,
            "frame": self.frame,
            "time": _iso(self.time),
            "score": json_float(self.score),
            "decision": self.decision,
            "image_threshold": json_float(self.image_threshold),
            "pixel_threshold": json_float(self.pixel_threshold),
            "image_size": list(self.image_shape) if self.error is None else None,
            "regions": [r.to_dict() for r in self.regions],
            "batch": self.batch,
            "latency_ms": self.times.to_dict(),
            "error": self.error,
            "source_meta": self.source_meta,
            "model_sha256": self.model_sha256 or None,
        }
        rec.update(self.extra)
        return rec

    def to_line(self) -> str:
        """:meth:`to_record` as one JSON line (no newline), serialised once and then reused.

        The JSONL sink writes it and the MQTT sink publishes the same string. The output stage lets
        every sink ``prepare`` (add its fields to ``extra``) before the primary record is written, so
        the record is final when it is first serialised.
        """
        if self._line is None:
            self._line = json.dumps(self.to_record(), allow_nan=False, default=_json_default)
        return self._line


def _json_default(obj: object) -> object:
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _iso(t: float) -> str | None:
    if not t:
        return None
    import datetime as _dt

    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class BenchRow:
    """One ``cdo-bench`` row: a backend + model variant at one batch size.

    Latencies are per batch in ms (p50/p90/p99/mean/std over ``iters`` timed runs
    after ``warmup``); ``images_per_s`` = batch * 1000 / mean end-to-end ms.
    ``parts`` splits post-processing and end-to-end times by the parts timed
    (``good`` / ``defective``). ``accuracy`` holds the metrics of
    :func:`cdo_deploy.metrics.compute_metrics` on the labelled data (empty
    without), ``agreement_pct`` the share of parts whose OK/NG decision equals
    the reference row's and ``flipped`` the parts that differ. ``load_rss_mb``
    is the resident memory the loaded model added, ``peak_rss_mb`` the process
    peak at the end of the run (all rows loaded). ``status`` is ``"ok"``,
    ``"unavailable"`` (backend or file missing) or ``"failed"`` (it raised);
    ``note`` says why.
    """

    backend: str
    variant: str
    batch: int
    status: str = "ok"
    device: str = ""
    pre_ms: dict[str, float | None] = field(default_factory=dict)
    infer_ms: dict[str, float | None] = field(default_factory=dict)
    post_ms: dict[str, float | None] = field(default_factory=dict)
    e2e_ms: dict[str, float | None] = field(default_factory=dict)
    parts: dict[str, dict[str, dict[str, float | None]]] = field(default_factory=dict)
    images_per_s: float | None = None
    accuracy: dict[str, float | None] = field(default_factory=dict)
    agreement_pct: float | None = None
    flipped: list[str] = field(default_factory=list)
    load_rss_mb: float | None = None
    peak_rss_mb: float | None = None
    vs_torch: float | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
