"""Overlay pictures: heatmap blended on the part, defect contours and the score.

Written as JPEG into ``<out>/overlays/`` for NG parts (``mode="ng"``) or for
every image (``mode="all"``). The heatmap maps ``pixel_threshold +- 50 %`` onto
the JET colour map (the threshold sits at mid-scale); contours outline
``anomaly_map >= pixel_threshold`` at full resolution. The record gets an
``overlay`` field with the picture's path (set before the record is written;
the picture is written after it, so a failed picture is counted as a sink
error and the path then names a missing file).

Example:
    >>> import numpy as np
    >>> from cdo_deploy.results import Prediction
    >>> m = np.zeros((8, 8), np.float32); m[2:4, 2:4] = 1
    >>> p = Prediction("a.png", 1.0, True, m, (16, 16), image_threshold=0.5, pixel_threshold=0.5)
    >>> render_overlay(np.zeros((16, 16, 3), np.uint8), p).shape
    (16, 16, 3)
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import cv2
import numpy as np

from ..errors import CdoError
from ..preprocess import to_bgr_uint8
from ..results import Prediction
from ..sources.base import Item
from .base import SINKS, Sink

__all__ = ["OverlaySink", "render_overlay"]

log = logging.getLogger(__name__)

MODES = ("ng", "all")


def render_overlay(image_bgr: np.ndarray, pred: Prediction, alpha: float = 0.45) -> np.ndarray:
    """Draw one result.

    Args:
        image_bgr: (H, W, 3) uint8 original image.
        pred: its prediction (not an error record).
        alpha: heatmap weight in the blend.

    Returns:
        (H, W, 3) uint8 BGR picture.
    """
    amap = pred.anomaly_map_full()
    thr = float(pred.pixel_threshold if pred.pixel_threshold is not None else amap.max())
    span = 0.5 * abs(thr) or 1e-6
    norm = np.clip((amap - (thr - span)) / (2 * span), 0.0, 1.0)
    heat = cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_JET)
    out = cv2.addWeighted(image_bgr, 1.0 - alpha, heat, alpha, 0.0)
    h, w = out.shape[:2]
    thick = max(1, round(min(h, w) / 250))
    contours, _ = cv2.findContours((amap >= thr).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, (0, 0, 255), thick)
    text = f"{pred.decision} {pred.score:.4g} (thr {pred.image_threshold:.4g})"
    scale = max(0.35, min(h, w) / 700)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    cv2.rectangle(out, (0, 0), (min(w, tw + 8), th + base + 8), (0, 0, 0), -1)
    colour = (0, 0, 255) if pred.is_ng else (0, 200, 0)
    cv2.putText(out, text, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thick, cv2.LINE_AA)
    return out


def overlay_name(pred: Prediction) -> str:
    """File name for a result: ``<parent>_<stem>[_f<frame>]_<hash6>.jpg``."""
    base = pred.source.split("#", 1)[0]
    p = Path(base)
    stem = f"{p.parent.name}_{p.stem}" if p.parent.name else p.stem or "frame"
    if pred.frame is not None:
        stem += f"_f{pred.frame:06d}"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[-80:]
    digest = hashlib.sha1(pred.source.encode()).hexdigest()[:6]
    return f"{safe}_{digest}.jpg"


@SINKS.register("overlay")
class OverlaySink(Sink):
    """Write overlay pictures.

    Args:
        folder: where to write them.
        mode: ``ng`` (NG parts only) or ``all``.
        color_order: channel order of the decoded images (``BGR`` for files and OpenCV cameras).
    """

    needs_image = True

    def __init__(self, folder: str | Path, mode: str = "ng", color_order: str = "BGR", quality: int = 90) -> None:
        if mode not in MODES:
            raise CdoError(f"overlay mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.folder, self.mode, self.color_order, self.quality = Path(folder), mode, color_order, quality
        self.count = 0

    def open(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CdoError(f"cannot create overlay folder {self.folder}: {e}") from None
        # first-use costs of colormap, drawing and the JPEG encoder (~40 ms) are paid here, not by a part
        blank = Prediction("warmup", 1.0, True, np.zeros((8, 8), np.float32), (16, 16), image_threshold=0.5,
                           pixel_threshold=0.5)
        cv2.imencode(".jpg", render_overlay(np.zeros((16, 16, 3), np.uint8), blank))

    def prepare(self, pred: Prediction, item: Item, has_image: bool) -> None:
        # named in the record before it is written; the picture follows once the record is safe
        if pred.error is None and has_image and (self.mode == "all" or pred.is_ng):
            pred.extra["overlay"] = str(self.folder / overlay_name(pred))

    def write(self, pred: Prediction, item: Item, image: np.ndarray | None) -> None:
        path = pred.extra.get("overlay")
        if path is None or image is None:
            return
        pic = render_overlay(to_bgr_uint8(image, self.color_order), pred)
        if not cv2.imwrite(path, pic, [cv2.IMWRITE_JPEG_QUALITY, self.quality]):
            raise OSError(f"cannot write overlay {path} (disk full or folder gone?)")
        self.count += 1
