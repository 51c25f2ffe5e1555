"""Result figures: the qualitative grid of the CDO paper and the discrepancy histogram.

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot, no
global backend change, safe in threads and notebooks). No torch.

* ``save_qualitative_grid``: per sample, a column of image / ground truth /
  anomaly-map overlay (jet, normalised over the whole set so colours compare
  across samples).
* ``save_discrepancy_histogram``: density of discrepancy values on normal vs
  defective pixels, with the margin and histogram overlap printed on the figure.

Example:
    >>> import tempfile, numpy as np
    >>> from pathlib import Path
    >>> maps = np.random.default_rng(0).random((2, 32, 32))
    >>> masks = np.zeros((2, 32, 32), bool); masks[1, 8:16, 8:16] = True
    >>> maps[masks] += 1.0
    >>> out = Path(tempfile.mkdtemp())
    >>> stats = save_discrepancy_histogram(maps, masks, out / "hist.png")
    >>> round(stats["overlap"], 2), stats["margin"] > 0
    (0.0, True)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

__all__ = ["save_discrepancy_histogram", "save_qualitative_grid"]

log = logging.getLogger(__name__)

_ROW_TITLES = ("image", "ground truth", "anomaly map")


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path | str, note: str = "") -> Path:
    """Write ``fig``; ``note`` (e.g. ``16 of 18 test images shown``) goes into the log line and the PNG's
    ``Description``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=fig.dpi, metadata={"Description": note} if note else None)
    log.info("wrote figure %s%s", path, f" ({note})" if note else "")
    return path


def _pick(n: int, max_items: int) -> np.ndarray:
    """Indices of at most ``max_items`` items evenly spread over ``n`` (all when n is small)."""
    if n <= max_items:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, max_items)).astype(int))


def _overlay(image: np.ndarray, heat: np.ndarray, norm: Normalize, alpha: float) -> np.ndarray:
    """Blend a jet heat map (resized to the image) onto an RGB uint8 image; returns float RGB in [0, 1]."""
    h, w = image.shape[:2]
    if heat.shape != (h, w):
        heat = cv2.resize(heat.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    colours = colormaps["jet"](np.clip(norm(heat), 0, 1))[..., :3]
    return (1 - alpha) * image.astype(np.float32) / 255.0 + alpha * colours


def save_qualitative_grid(
    images: np.ndarray,
    masks: Optional[np.ndarray],
    maps: np.ndarray,
    path: Path | str,
    scores: Optional[Sequence[float]] = None,
    labels: Optional[Sequence[int]] = None,
    max_items: int = 16,
    per_row: int = 8,
    alpha: float = 0.5,
) -> Path:
    """Save the paper-style qualitative figure.

    Samples are columns; each block of ``per_row`` samples has the rows image,
    ground truth (skipped when ``masks`` is None) and anomaly-map overlay. The
    colour scale is shared by all maps (min to max over the whole set given)
    and shown by one colour bar.

    Args:
        images: ``(N, H, W, 3)`` uint8 RGB.
        masks: ``(N, H, W)`` bool ground truth, or ``None``.
        maps: ``(N, h, w)`` float anomaly maps (resized to the image size if needed).
        path: output PNG path (folders are created).
        scores: ``(N,)`` image scores, written above each sample.
        labels: ``(N,)`` 0 = good, 1 = defective, written above each sample.
        max_items: at most this many samples, evenly spread over the set.
        per_row: samples per block of rows.
        alpha: heat-map opacity in the overlay.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        ValueError: inconsistent shapes.
    """
    images = np.asarray(images)
    maps = np.asarray(maps, dtype=np.float32)
    if images.ndim != 4 or images.shape[3] != 3 or maps.ndim != 3 or len(maps) != len(images):
        raise ValueError(f"images must be (N, H, W, 3) and maps (N, h, w); got {images.shape} and {maps.shape}")
    if masks is not None and np.asarray(masks).shape != images.shape[:3]:
        raise ValueError(f"masks {np.asarray(masks).shape} must be (N, H, W) = {images.shape[:3]}")
    if len(images) == 0:
        raise ValueError("no images to draw")
    finite = maps[np.isfinite(maps)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    norm = Normalize(vmin=lo, vmax=hi if hi > lo else lo + 1e-6)
    picked = _pick(len(images), max_items)
    n_cols = min(per_row, len(picked))
    n_blocks = -(-len(picked) // n_cols)
    rows = _ROW_TITLES if masks is not None else (_ROW_TITLES[0], _ROW_TITLES[2])
    aspect = images.shape[1] / images.shape[2]
    cell, gap, left, right, top = 1.6, 0.25, 0.45, 1.05, 0.45  # inches
    n_rows = len(rows) * n_blocks
    width = left + n_cols * cell + right
    height = top + n_rows * (cell * aspect + gap)
    fig = _new_figure(width, height)
    grid = fig.add_gridspec(n_rows, n_cols, left=left / width, right=1 - right / width, top=1 - top / height,
                            bottom=0.05 / height, wspace=0.04, hspace=gap / (cell * aspect))
    for k, idx in enumerate(picked):
        block, col = divmod(k, n_cols)
        panels = [images[idx]]
        if masks is not None:
            panels.append(np.asarray(masks[idx], bool))
        panels.append(_overlay(images[idx], maps[idx], norm, alpha))
        for r, panel in enumerate(panels):
            ax = fig.add_subplot(grid[block * len(rows) + r, col])
            ax.imshow(panel, cmap="gray" if panel.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(rows[r], fontsize=9)
            if r == 0:
                title = [f"#{idx}"]
                if labels is not None:
                    title.append("defect" if int(labels[idx]) else "good")
                if scores is not None:
                    title.append(f"{float(scores[idx]):.3g}")
                defective = labels is not None and bool(labels[idx])
                ax.set_title(" ".join(title), fontsize=8, color="red" if defective else "black")
    cax = fig.add_axes((1 - (right - 0.15) / width, 0.15, 0.12 / width, 0.7))
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=colormaps["jet"]), cax=cax)
    bar.set_label("anomaly score (shared scale)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    note = f"{len(picked)} of {len(images)} test images shown" + (", evenly spread" if len(picked) < len(images) else "")
    fig.text(left / width, 1 - 0.05 / height, note, fontsize=8, va="top")
    return _save(fig, path, note)


def save_discrepancy_histogram(
    maps: np.ndarray,
    masks: np.ndarray,
    path: Path | str,
    bins: int = 100,
) -> dict[str, Optional[float]]:
    """Save density histograms of map values on normal vs defective pixels.

    Definitions (all in map units, except ``overlap``):

    * ``mean_gap`` = mean(defect) - mean(normal).
    * ``margin`` = median(defect) - 99th percentile(normal): positive when more
      than half of the defect pixels score above 99 % of the normal pixels.
    * ``overlap`` = area shared by the two normalised histograms,
      ``sum(min(p_normal, p_defect)) * bin_width``; 0 = fully separated, 1 = identical.

    Args:
        maps: ``(N, H, W)`` float anomaly (discrepancy) maps.
        masks: ``(N, H, W)`` bool ground truth at the same resolution.
        path: output PNG path.
        bins: number of histogram bins over the full value range.

    Returns:
        ``{"normal_mean", "defect_mean", "mean_gap", "normal_p99", "defect_median",
        "margin", "overlap", "n_normal", "n_defect"}``: floats (counts as floats);
        defect statistics, margins and overlap are ``None`` without defect pixels.

    Raises:
        ValueError: shapes differ or there is no normal pixel.
    """
    maps = np.asarray(maps, dtype=np.float64)
    masks = np.asarray(masks).astype(bool)
    if maps.shape != masks.shape:
        raise ValueError(f"maps {maps.shape} and masks {masks.shape} must have the same shape")
    normal, defect = maps[~masks], maps[masks]
    normal, defect = normal[np.isfinite(normal)], defect[np.isfinite(defect)]
    if normal.size == 0:
        raise ValueError("no normal pixel: the histogram needs normal pixels")
    lo = float(min(normal.min(), defect.min() if defect.size else np.inf))
    hi = float(max(normal.max(), defect.max() if defect.size else -np.inf))
    edges = np.linspace(lo, hi if hi > lo else lo + 1e-6, bins + 1)
    width = float(edges[1] - edges[0])
    p_normal, _ = np.histogram(normal, edges, density=True)
    stats: dict[str, Optional[float]] = {
        "normal_mean": float(normal.mean()),
        "defect_mean": None,
        "mean_gap": None,
        "normal_p99": float(np.percentile(normal, 99)),
        "defect_median": None,
        "margin": None,
        "overlap": None,
        "n_normal": float(normal.size),
        "n_defect": float(defect.size),
    }
    fig = _new_figure(7.0, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    ax.fill_between(centres, p_normal, step="mid", alpha=0.45, color="tab:blue",
                    label=f"normal pixels (n={normal.size:,})")
    ax.axvline(stats["normal_p99"], color="tab:blue", ls="--", lw=1, label="normal 99th percentile")
    if defect.size:
        p_defect, _ = np.histogram(defect, edges, density=True)
        stats.update(
            defect_mean=float(defect.mean()),
            mean_gap=float(defect.mean() - normal.mean()),
            defect_median=float(np.median(defect)),
            overlap=float(np.minimum(p_normal, p_defect).sum() * width),
        )
        stats["margin"] = stats["defect_median"] - stats["normal_p99"]
        ax.fill_between(centres, p_defect, step="mid", alpha=0.45, color="tab:red",
                        label=f"defect pixels (n={defect.size:,})")
        ax.axvline(stats["defect_median"], color="tab:red", ls="--", lw=1, label="defect median")
        text = (f"margin (defect median - normal p99) = {stats['margin']:.3g}\n"
                f"mean gap (defect - normal) = {stats['mean_gap']:.3g}\n"
                f"histogram overlap = {stats['overlap']:.3f}")
    else:
        text = "no defect pixels"
    ax.text(0.98, 0.97, text, transform=ax.transAxes, ha="right", va="top", fontsize=9,
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.85, "edgecolor": "0.7"})
    ax.set_xlabel("discrepancy (anomaly map value)")
    ax.set_ylabel("density")
    ax.set_title("Discrepancy on normal vs defective pixels")
    ax.set_ylim(bottom=0)
    ax.legend(loc="center right", fontsize=8, frameon=True)
    fig.tight_layout()
    _save(fig, path)
    return stats
