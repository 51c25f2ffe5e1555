"""What a training config reads: its classes and the training, hold-out, test and calibration images.

One place for the rules, used by both trainers and by the exporter (which
calibrates int8 on the same training images, never on the hold-out):

* classes: ``class_names``, or every class of the layout for ``all``; a
  folder dataset's class is named after its folder (or ``--class-name``);
* training images: the layout's good training images, cut to
  ``max_train_images``, minus the hold-out;
* hold-out: ``holdout_fraction`` of the training images (seeded by the run's
  seed), whose scores calibrate the thresholds; none when ``calibration_dir``
  names a separate folder of good images for that;
* test set: the layout's labelled test images (none for a good-only folder).

Example:
    >>> import tempfile
    >>> from cdo_train.training.config import TrainConfig
    >>> from cdo_train.data import make_demo_dataset
    >>> root = make_demo_dataset(tempfile.mkdtemp(), classes=["weave"], n_train=10, n_test_good=1,
    ...                          n_test_defect=1, size=32)
    >>> cfg = TrainConfig(data_root=str(root), holdout_fraction=0.2)
    >>> train, holdout = train_split(cfg, "weave", seed=1)
    >>> run_classes(cfg), len(train), len(holdout), len(samples(cfg, "weave", "test"))
    (['weave'], 8, 2, 2)
"""

from __future__ import annotations

import collections
import logging
import struct
from pathlib import Path
from typing import Any, Optional

from cdo_deploy.errors import CdoError

from .folders import FolderSpec, images_in, no_images_error
from .io import read_image
from .layouts import GOOD, Sample, _check_root, list_classes, list_samples, split_holdout

__all__ = ["calibration_samples", "folder_spec", "run_classes", "samples", "size_warnings", "train_split"]

log = logging.getLogger(__name__)


def _root(cfg: Any) -> Path:
    if cfg.data_root is None:
        raise CdoError("no dataset root: pass --data-root DIR (or set data_root in a --config file)")
    return _check_root(cfg.data_root)


def folder_spec(cfg: Any) -> FolderSpec:
    """The :class:`FolderSpec` of a ``--dataset folder`` config (absolute paths)."""
    def opt(key: str) -> Optional[Path]:
        value = cfg.folder(key)
        return Path(value) if value is not None else None

    return FolderSpec(_root(cfg), opt("normal_dir"), opt("abnormal_dir"), opt("mask_dir"), opt("normal_test_dir"),
                      cfg.recursive, cfg.test_split_ratio)


def _source(cfg: Any) -> Path | FolderSpec:
    """What the config's layout reads (one route for every dataset): the root, or for ``folder`` its
    :class:`FolderSpec` with the sub-folder roles."""
    return folder_spec(cfg) if cfg.dataset == "folder" else _root(cfg)


def run_classes(cfg: Any) -> list[str]:
    """The classes a config trains, in order."""
    if "all" in cfg.class_names:
        return list_classes(cfg.dataset, _source(cfg))
    return list(cfg.class_names)


def samples(cfg: Any, class_name: str, split: str) -> list[Sample]:
    """The ``train`` or ``test`` samples of one class (see :mod:`.layouts` and :mod:`.folders`)."""
    return list_samples(cfg.dataset, _source(cfg), class_name, split)


def train_split(cfg: Any, class_name: str, seed: int) -> tuple[list[Sample], list[Sample]]:
    """(training samples, held-out good samples) of one class and seed.

    Raises:
        CdoError: no images, or nothing left to train on after the hold-out.
    """
    train = samples(cfg, class_name, "train")
    if cfg.max_train_images:
        train = train[: cfg.max_train_images]
    if cfg.calibration_dir is not None:
        return train, []
    train, holdout = split_holdout(train, cfg.holdout_fraction, seed)
    if not train:
        raise CdoError(f"no training images left for {class_name} after the hold-out split")
    return train, holdout


def calibration_samples(cfg: Any, holdout: list[Sample]) -> list[Sample]:
    """The good images whose scores set the thresholds: ``calibration_dir`` (recursive) or the hold-out."""
    if cfg.calibration_dir is None:
        return holdout
    return _folder_samples(cfg.calibration_dir, "calibration (--calibration-dir)")


def penalty_samples(cfg: Any) -> list[Sample]:
    """The off-distribution penalty's images: every image under ``penalty_dir`` (recursive); [] without one."""
    if cfg.penalty_dir is None:
        return []
    return _folder_samples(cfg.penalty_dir, "off-distribution penalty (--penalty-dir)")


def _folder_samples(folder: str | Path, what: str) -> list[Sample]:
    """Every image under ``folder`` (recursive) as a good sample; a clear error naming ``what`` when none."""
    images = images_in(Path(folder), recursive=True)
    if not images:
        raise no_images_error(what, Path(folder), "")
    return [Sample(p, 0, None, GOOD) for p in images]


def _image_wh(path: Path) -> tuple[int, int]:
    """(width, height) of an image, from the PNG/JPEG header when it has one (else the image is read)."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        head = b""
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
        return struct.unpack(">II", head[16:24])
    if head[:2] == b"\xff\xd8":
        i = 2
        while i + 9 <= len(head) and head[i] == 0xFF:
            marker, length = head[i + 1], struct.unpack(">H", head[i + 2:i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
                h, w = struct.unpack(">HH", head[i + 5:i + 9])
                return w, h
            i += 2 + length
    h, w = read_image(path).shape[:2]
    return w, h


def size_warnings(train: list[Sample], size: int) -> list[str]:
    """Warnings about the training images' sizes: several sizes mixed (each image is resized to
    ``size`` x ``size``, so parts appear at different scales), or a side smaller than ``size`` (upscaled).

    Sizes come from the PNG/JPEG headers (other formats are read).
    """
    if not train:
        return []
    sizes = collections.Counter(_image_wh(Path(s.path)) for s in train)
    out = []
    if len(sizes) > 1:
        common = ", ".join(f"{w}x{h}: {n}" for (w, h), n in sizes.most_common(4)) + (", ..." if len(sizes) > 4 else "")
        out.append(f"the training images come in {len(sizes)} sizes ({common}; width x height): each is resized to "
                   f"{size}x{size}, so the same part appears at different scales and proportions; crop or resize "
                   "them to one size (and inspect images of that size)")
    small = [(w, h) for (w, h) in sizes if min(w, h) < size]
    if small:
        w, h = min(small, key=lambda wh: min(wh))
        side = "smaller" if w == h else ("their height is smaller" if h < size <= w else
                                         "their width is smaller" if w < size <= h else "smaller")
        out.append(f"training images are {w}x{h} px, {side} than --image-size {size}: they are upscaled, which adds "
                   f"no detail and costs time; use --image-size {max(32, min(w, h) // 16 * 16)} (a multiple of 16)")
    return out
