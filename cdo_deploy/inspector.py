"""``Inspector``: the Python API of the line-side runtime.

Loads a bundle on a backend and turns images (any size, BGR/RGB/grey/BGRA,
uint8/uint16, arrays or image file paths) into :class:`~cdo_deploy.results.Prediction` objects. The
pipeline behind ``cdo-inspect`` calls the three stages (``preprocess``,
``infer``, ``postprocess``) from different threads; a script just calls the
inspector.

Example:
    >>> import cv2
    >>> from cdo_deploy import Inspector
    >>> insp = Inspector("bundle/", backend="auto", device="cpu")      # doctest: +SKIP
    >>> pred = insp(cv2.imread("part.png"))                              # doctest: +SKIP
    >>> pred.decision, pred.score, [r.to_dict() for r in pred.regions]   # doctest: +SKIP
    >>> [p.decision for p in insp(["part1.png", "part2.png"])]          # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from .backends import BACKENDS, Backend, available_backends, create_backend
from .bundle import BundleMeta, load_bundle_meta, sha256_file, verify_model_files
from .errors import CdoError
from .formats import ModelFile, resolve_model_file
from .postprocess import locate_defects
from .preprocess import ImageItem, image_items, to_model_input
from .results import Prediction, StageTimes
from .thresholds import Thresholds, resolve_thresholds

__all__ = ["Inspector"]

log = logging.getLogger(__name__)


class Inspector:
    """A bundle loaded on a backend, with its thresholds.

    Args:
        bundle: bundle folder (``model.json`` + model files).
        backend: ``auto`` (a TensorRT engine if one runs here, else ONNX Runtime)
            or a registered backend name.
        device: ``auto``, ``cpu``, ``cuda[:N]`` (ONNX Runtime also ``tensorrt[:N]``).
        variant: model variant (``fp32``, ``fp16``, ``int8``...); default per format.
        threshold: image threshold override (score units).
        pixel_threshold: pixel threshold override (map units).
        sensitivity: 0..1, 0.5 = bundle thresholds, higher = more NG
            (see :mod:`cdo_deploy.thresholds`).
        color_order: channel order of 3/4-channel inputs, ``BGR`` or ``RGB``.
        max_batch: largest batch sent to the backend.
        min_region_area: drop defect regions smaller than this (original pixels).
        warmup: run one blank image at load so the first real part is not slow.

    Raises:
        CdoError: missing/malformed bundle, unavailable backend, no threshold.
    """

    def __init__(
        self,
        bundle: str | Path,
        backend: str = "auto",
        device: str = "auto",
        *,
        variant: str | None = None,
        threshold: float | None = None,
        pixel_threshold: float | None = None,
        sensitivity: float | None = None,
        color_order: str = "BGR",
        max_batch: int = 32,
        min_region_area: int = 0,
        warmup: bool = True,
    ) -> None:
        self.bundle_dir = Path(bundle)
        # only the model file this inspector runs is hashed (below), not every variant of the bundle
        self.meta: BundleMeta = load_bundle_meta(self.bundle_dir, verify=False)
        if self.meta.channel_order != "RGB":
            raise CdoError(f"{self.bundle_dir}: bundle input channel order {self.meta.channel_order!r} "
                           "is not supported (expected RGB)")
        if backend != "auto":
            BACKENDS.get(backend)  # unknown names fail with suggestions
        self.model_file: ModelFile = resolve_model_file(
            self.bundle_dir, self.meta, backend, variant, available=available_backends() if backend == "auto" else ()
        )
        rel = self.model_file.path.relative_to(self.bundle_dir).as_posix()
        ir_weights = [Path(rel).with_suffix(".bin").as_posix()] if rel.endswith(".xml") else []
        verified = verify_model_files(self.bundle_dir, self.meta, [rel, *ir_weights])
        #: SHA-256 of the model file run (verified at load); recorded with every result
        self.model_sha256: str = verified.get(rel) or self.meta.sha256.get(rel) or sha256_file(self.model_file.path)
        self.thresholds: Thresholds = resolve_thresholds(self.meta, threshold, pixel_threshold, sensitivity,
                                                         variant=self.model_file.variant)
        self.backend: Backend = create_backend(self.model_file.backend, self.model_file.path, device, max_batch)
        if self.backend.input_hw not in (None, (self.meta.height, self.meta.width)):
            raise CdoError(f"{self.model_file.path}: input {self.backend.input_hw} does not match model.json "
                           f"{self.meta.height}x{self.meta.width}")
        self.color_order = color_order
        self.min_region_area = int(min_region_area)
        if warmup:
            self.backend.infer(np.zeros((1, self.meta.height, self.meta.width, 3), np.uint8))
        if self.thresholds.pixel > self.thresholds.image:
            log.info("pixel threshold %.6g is above the image threshold %.6g: an NG part with no pixel above it "
                     "gets the region around the map's maximum, flagged kind=map_max",
                     self.thresholds.pixel, self.thresholds.image)
        log.info("inspector: %s %s (%s) on %s, thresholds image %.6g pixel %.6g (%s)",
                 self.model_file.backend, self.model_file.variant, self.model_file.path.name,
                 self.backend.device_label, self.thresholds.image, self.thresholds.pixel, self.thresholds.source)

    @property
    def max_batch(self) -> int:
        """Largest batch the backend accepts."""
        return self.backend.max_batch

    @property
    def input_size(self) -> tuple[int, int]:
        """(H, W) model resolution."""
        return self.meta.height, self.meta.width

    def preprocess(self, image: np.ndarray, color_order: str | None = None) -> tuple[np.ndarray, float]:
        """One image (in ``color_order``, default the inspector's) -> ((H, W, 3) uint8 RGB at model size, ms)."""
        t0 = time.perf_counter()
        x = to_model_input(image, self.meta.height, self.meta.width, color_order or self.color_order)
        return x, (time.perf_counter() - t0) * 1e3

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(B, H, W, 3) uint8 -> ((B, H, W) float32 maps, (B,) scores, ms for the batch)."""
        out = self.backend.infer(batch)
        return out.anomaly_map[:, 0], out.score, out.ms

    def postprocess(
        self,
        anomaly_map: np.ndarray,
        score: float,
        image_shape: tuple[int, int],
        *,
        source: str = "",
        times: StageTimes | None = None,
    ) -> Prediction:
        """Decision and regions for one image.

        Args:
            anomaly_map: (h, w) map at model resolution.
            score: image score.
            image_shape: (H, W) of the original image.
            source: source id for the record.
            times: stage times so far; ``post`` is filled in here.
        """
        t0 = time.perf_counter()
        thr = self.thresholds
        is_ng = bool(score >= thr.image)
        regions = locate_defects(anomaly_map, is_ng, thr.image, thr.pixel, image_shape, min_area=self.min_region_area)
        times = times or StageTimes()
        pred = Prediction(
            source=source, score=float(score), is_ng=is_ng, anomaly_map=anomaly_map,
            image_shape=(int(image_shape[0]), int(image_shape[1])), regions=regions, times=times,
            image_threshold=thr.image, pixel_threshold=thr.pixel, model_sha256=self.model_sha256,
        )
        times.post = (time.perf_counter() - t0) * 1e3
        return pred

    def predict(self, images: Sequence[np.ndarray | str | Path] | np.ndarray,
                sources: Sequence[str] | None = None) -> list[Prediction]:
        """Inspect a batch of images (split into chunks of ``max_batch``).

        Args:
            images: a list of images (any size each) and/or image file paths, or a (B, H, W[, C]) array.
            sources: optional source ids, one per image (default: the path, or ``image#i``).

        Returns:
            One ``Prediction`` per image, in order.
        """
        items, _single = image_items([images] if isinstance(images, (str, Path)) else list(images))
        return self._inspect(items, sources)

    def _inspect(self, items: list[ImageItem], sources: Sequence[str] | None) -> list[Prediction]:
        if sources is not None and len(sources) != len(items):
            raise CdoError(f"{len(sources)} source ids for {len(items)} images")
        preds: list[Prediction] = []
        for start in range(0, len(items), self.max_batch):
            chunk = items[start:start + self.max_batch]
            xs, times = [], []
            for item in chunk:
                x, ms = self.preprocess(item.image, item.color_order)
                xs.append(x)
                times.append(StageTimes(pre=ms))
            maps, scores, infer_ms = self.infer(np.stack(xs))
            for i, item in enumerate(chunk):
                times[i].infer = infer_ms
                src = sources[start + i] if sources is not None else item.source or f"image#{start + i}"
                pred = self.postprocess(maps[i], float(scores[i]), item.image.shape[:2], source=src, times=times[i])
                pred.batch = len(chunk)
                pred.times.total = pred.times.pre + infer_ms + pred.times.post
                preds.append(pred)
        return preds

    def __call__(self, images: np.ndarray | str | Path | Sequence[np.ndarray | str | Path]
                 ) -> Prediction | list[Prediction]:
        """One image or image file path -> one ``Prediction``; a list or a 4-D array -> a list."""
        items, single = image_items(images)
        preds = self._inspect(items, None)
        return preds[0] if single else preds

    def close(self) -> None:
        """Release the backend."""
        self.backend.close()

    def __enter__(self) -> "Inspector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
