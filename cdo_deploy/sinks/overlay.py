"""Overlay pictures: heatmap blended on the part, defect contours and the score.

Written as JPEG into ``<out>/overlays/`` for NG parts (``mode="ng"``) or for
every image (``mode="all"``); see :func:`render_overlay` for what is drawn
(legible at every size: the banner and its text scale with the image and the
text always fits; the heatmap only tints where the map is high). The record gets an
``overlay`` field with the picture's path (set before the record is written;
the picture is written after it, so a failed picture is counted as a sink
error and the path then names a missing file).

Example:
    >>> import numpy as np
    >>> from cdo_deploy.results import Prediction
    >>> m = np.zeros((8, 8), np.float32); m[2:4, 2:4] = 1
    >>> p = Prediction("a.png", 1.0, True, m, (300, 400), image_threshold=0.5, pixel_threshold=0.5)
    >>> render_overlay(np.zeros((300, 400, 3), np.uint8), p).shape
    (300, 400, 3)
    >>> p = Prediction("b.png", 1.0, True, m, (16, 16), image_threshold=0.5, pixel_threshold=0.5)
    >>> render_overlay(np.zeros((16, 16, 3), np.uint8), p).shape  # small images: upscaled canvas
    (256, 256, 3)
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import CdoError
from ..preprocess import to_bgr_uint8
from ..results import Prediction
from ..sources.base import Item
from .base import SINKS, Sink

__all__ = ["MIN_SIDE", "Banner", "OverlaySink", "banner_layout", "blend_heatmap", "render_overlay"]

log = logging.getLogger(__name__)

MODES = ("ng", "all")


#: overlays of smaller images are drawn on a canvas upscaled to this short side, so they stay legible
MIN_SIDE = 256
_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class Banner:
    """Layout of the score banner: the text chosen, its font scale and thickness, the banner's size in px."""

    text: str
    scale: float
    thickness: int
    width: int
    height: int


def banner_layout(texts: list[str], w: int, h: int) -> Banner:
    """Fit the first of ``texts`` (longest first) that fits the width, at ~4.5 % of the short side.

    Text height scales with the image (never under 9 px); a text too wide is
    drawn smaller down to that size, then the next, shorter text is tried. The
    last text (the decision) is always drawn, at the size that fits.
    """
    pad = max(2, round(min(h, w) * 0.012))
    unit_h = cv2.getTextSize("Ag", _FONT, 1.0, 1)[0][1]
    scale = max(9.0, 0.045 * min(h, w)) / unit_h
    floor = 9.0 / unit_h
    for i, text in enumerate(texts):
        tw = cv2.getTextSize(text, _FONT, scale, 1)[0][0]
        fit = min(scale, scale * (w - 2 * pad) / max(tw, 1))
        if fit >= floor or i == len(texts) - 1:
            thick = max(1, round(fit * 1.6))
            (tw, th), base = cv2.getTextSize(text, _FONT, fit, thick)
            return Banner(text, fit, thick, min(w, tw + 2 * pad), th + base + 2 * pad)
    raise ValueError("banner_layout needs at least one text")


def render_overlay(image_bgr: np.ndarray, pred: Prediction, alpha: float = 0.6) -> np.ndarray:
    """Draw one result: heatmap where the map is high, a contour for every region, the score banner.

    The heatmap maps ``pixel_threshold +- 50 %`` onto JET and is blended with a
    per-pixel weight rising from 0 (at 75 % of the pixel threshold) to ``alpha``
    (at 125 %), so normal areas show the part unchanged. Threshold regions get
    red contours on NG parts (yellow on OK parts); a flagged ``map_max`` region
    gets an orange contour and box. Images whose short side is under
    ``MIN_SIDE`` are drawn on a canvas upscaled to it.

    Args:
        image_bgr: (H, W, 3) uint8 original image.
        pred: its prediction (not an error record).
        alpha: heatmap weight at and above 1.25x the pixel threshold.

    Returns:
        (H', W', 3) uint8 BGR picture; H' = H, W' = W unless upscaled.
    """
    amap = pred.anomaly_map_full()
    h0, w0 = image_bgr.shape[:2]
    f = max(1.0, MIN_SIDE / min(h0, w0))
    if f > 1.0 or amap.shape != (h0, w0):
        size = (round(w0 * f), round(h0 * f))
        if f > 1.0:
            image_bgr = cv2.resize(image_bgr, size, interpolation=cv2.INTER_NEAREST)
        amap = cv2.resize(amap, size, interpolation=cv2.INTER_LINEAR)
    h, w = image_bgr.shape[:2]
    thr = float(pred.pixel_threshold if pred.pixel_threshold is not None else amap.max())
    out = blend_heatmap(image_bgr, amap, thr, alpha)
    thick = max(1, round(min(h, w) / 250))
    colour = (0, 0, 255) if pred.is_ng else (0, 220, 255)
    if any(r.kind == "threshold" for r in pred.regions):
        contours, _ = cv2.findContours((amap >= thr).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, colour, thick)
    level = min(thr, float(pred.image_threshold if pred.image_threshold is not None else thr))
    for r in pred.regions:
        if r.kind != "threshold":  # flagged: the component around the maximum
            x0, y0 = math.floor(r.x0 * f), math.floor(r.y0 * f)
            x1, y1 = math.ceil(r.x1 * f), math.ceil(r.y1 * f)
            box = np.zeros((h, w), np.uint8)
            box[y0:y1, x0:x1] = amap[y0:y1, x0:x1] >= min(level, float(amap[y0:y1, x0:x1].max()))
            contours, _ = cv2.findContours(box, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out, contours, -1, (0, 140, 255), thick)
            cv2.rectangle(out, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), (0, 140, 255), thick)
    dec = pred.decision or "?"
    score, limit = pred.score, pred.image_threshold if pred.image_threshold is not None else float("nan")
    texts = [f"{dec} {score:.4g} (thr {limit:.4g})", f"{dec} {score:.3g}/{limit:.3g}", dec]
    b = banner_layout(texts, w, h)
    pad = max(2, round(min(h, w) * 0.012))
    cv2.rectangle(out, (0, 0), (b.width - 1, b.height - 1), (0, 0, 0), -1)
    text_h = cv2.getTextSize(b.text, _FONT, b.scale, b.thickness)[0][1]
    cv2.putText(out, b.text, (pad, pad + text_h), _FONT, b.scale, (0, 0, 255) if pred.is_ng else (0, 200, 0),
                b.thickness, cv2.LINE_AA)
    return out


def blend_heatmap(image_bgr: np.ndarray, amap: np.ndarray, thr: float, alpha: float = 0.6) -> np.ndarray:
    """The heat-map tint of :func:`render_overlay`: JET over ``thr +- 50 %``, weight 0 at 75 % of ``thr``.

    Args:
        image_bgr: (H, W, 3) uint8.
        amap: (H, W) float32 anomaly map at the image's size.
        thr: pixel threshold (map units).
        alpha: weight at and above 1.25x ``thr``.

    Returns:
        (H, W, 3) uint8 BGR.
    """
    span = 0.5 * abs(thr) or 1e-6
    norm = np.clip((amap - (thr - span)) / (2 * span), 0.0, 1.0)
    heat = cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_JET)
    weight = (alpha * np.clip((amap - (thr - 0.5 * span)) / span, 0.0, 1.0))[..., None]
    return (image_bgr * (1.0 - weight) + heat * weight + 0.5).astype(np.uint8)


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
