"""Dataset folder layouts: list classes and samples, load them with their masks.

Three layouts are registered in ``LAYOUTS`` (``root`` is the folder you pass):

``mvtec2d`` (MVTec AD)::

    <root>/<class>/train/good/000.png
    <root>/<class>/test/<type>/000.png          (<type> "good" has no masks)
    <root>/<class>/ground_truth/<type>/000_mask.png

``mvtec3d`` (MVTec 3D-AD, RGB only)::

    <root>/<class>/train/good/rgb/000.png
    <root>/<class>/test/<type>/rgb/000.png
    <root>/<class>/test/<type>/gt/000.png       (same file name as the image)

``folder`` (only good images, e.g. from a production line)::

    <root>/*.png   or   <root>/<class>/*.png

  ``split="test"`` returns ``[]``: there is no labelled test set, so the trainer
  calibrates the threshold on good images held out with ``split_holdout``.
  Recursive search and anomalib-style labelled folders: :mod:`.folders`.

Image suffixes: ``cdo_deploy.images.IMAGE_SUFFIXES`` (png, jpg, bmp, tif, webp, ...; any
case, the list the line inspects); other and hidden files are ignored. Masks are found by
``cdo_deploy.images.find_mask`` (``<stem>_mask`` before ``<stem>``, ``.png`` first). Listing
is cheap (no decoding); ``load_sample`` reads the pixels (``cdo_deploy.preprocess``, as the
line does) and checks that a mask has the same size as its image.

Example:
    >>> import tempfile
    >>> from cdo_train.data import make_demo_dataset
    >>> root = make_demo_dataset(tempfile.mkdtemp(), classes=["weave"], n_train=4,
    ...                          n_test_good=1, n_test_defect=4, size=64)
    >>> list_classes("mvtec2d", root)
    ['weave']
    >>> test = list_samples("mvtec2d", root, "weave", "test")
    >>> image, mask = load_sample(test[-1], size=32)
    >>> image.shape, mask.shape, test[-1].label
    ((32, 32, 3), (32, 32), 1)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from cdo_deploy.errors import CdoError
from cdo_deploy.images import find_mask
from cdo_deploy.preprocess import read_image_file, to_mask, to_model_input
from cdo_deploy.registry import Registry

from .folders import FolderSpec, folder_classes, folder_samples, images_in, no_images_error
from .io import Size, target_hw
from .sample import Sample

__all__ = [
    "LAYOUTS",
    "SPLITS",
    "Sample",
    "list_classes",
    "list_samples",
    "load_sample",
    "split_holdout",
    "validate_sample",
]

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
GOOD = "good"


@dataclass(frozen=True)
class _Layout:
    """How one layout lists classes and samples of its source: the root folder (``mvtec*``), or for
    ``folder`` the :class:`FolderSpec` (the root and anomalib's sub-folder roles)."""

    classes: Callable[[Any], list[str]]
    samples: Callable[[Any, Optional[str], str], list[Sample]]


LAYOUTS: Registry[_Layout] = Registry("dataset layout")


def _check_root(root: Path | str) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise CdoError(f"dataset root not found: {root} (check the dataset root path)")
    if not root.is_dir():
        raise CdoError(f"dataset root is not a folder: {root}")
    return root


def _check_source(dataset: str, root: Path | str | FolderSpec) -> Path | FolderSpec:
    """The checked source a layout reads: the root folder, or a folder dataset's :class:`FolderSpec`
    (a bare root becomes ``FolderSpec(root)``: good images only)."""
    if isinstance(root, FolderSpec):
        _check_root(root.root)
        return root
    checked = _check_root(root)
    return FolderSpec(checked) if dataset == "folder" else checked


def _class_dir(root: Path, class_name: str, dataset: str) -> Path:
    folder = root / class_name
    if not folder.is_dir():
        known = _mvtec_classes(root)
        hint = f"; classes found: {', '.join(known)}" if known else "; no class folders found there"
        raise CdoError(f"class folder not found: {folder} ({dataset} layout{hint})")
    return folder


def _require_images(folder: Path, what: str) -> list[Path]:
    images = images_in(folder)
    if not images:
        raise no_images_error(what, folder, "")
    return images


def _find_mask(folder: Path, stem: str, image: Path) -> Path:
    mask = find_mask(image.stem, [folder])
    if mask is None:
        raise CdoError(
            f"defect image {image} has no mask: expected {folder / (stem + '.png')} "
            "(add the ground-truth mask or move the image out of the test set)"
        )
    return mask


def _mvtec_classes(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "train").is_dir())


def _test_types(class_dir: Path) -> list[Path]:
    test = class_dir / "test"
    if not test.is_dir():
        raise CdoError(f"test folder not found: {test} (expected {test}/<defect type>/...)")
    return sorted(p for p in test.iterdir() if p.is_dir() and not p.name.startswith("."))


def _mvtec2d_samples(root: Path, class_name: str, split: str) -> list[Sample]:
    class_dir = _class_dir(root, class_name, "mvtec2d")
    if split == "train":
        images = _require_images(class_dir / "train" / GOOD, "training")
        return [Sample(p, 0, None, GOOD) for p in images]
    samples = []
    for type_dir in _test_types(class_dir):
        for image in images_in(type_dir):
            if type_dir.name == GOOD:
                samples.append(Sample(image, 0, None, GOOD))
            else:
                mask_dir = class_dir / "ground_truth" / type_dir.name
                mask = _find_mask(mask_dir, image.stem + "_mask", image)
                samples.append(Sample(image, 1, mask, type_dir.name))
    if not samples:
        raise CdoError(f"no test images under {class_dir / 'test'} (expected test/<type>/*.png)")
    return samples


def _mvtec3d_samples(root: Path, class_name: str, split: str) -> list[Sample]:
    class_dir = _class_dir(root, class_name, "mvtec3d")
    if split == "train":
        images = _require_images(class_dir / "train" / GOOD / "rgb", "training")
        return [Sample(p, 0, None, GOOD) for p in images]
    samples = []
    for type_dir in _test_types(class_dir):
        for image in images_in(type_dir / "rgb"):
            if type_dir.name == GOOD:
                samples.append(Sample(image, 0, None, GOOD))
            else:
                mask = _find_mask(type_dir / "gt", image.stem, image)
                samples.append(Sample(image, 1, mask, type_dir.name))
    if not samples:
        raise CdoError(f"no test images under {class_dir / 'test'} (expected test/<type>/rgb/*.png)")
    return samples


LAYOUTS.register("mvtec2d")(_Layout(_mvtec_classes, _mvtec2d_samples))
LAYOUTS.register("mvtec3d")(_Layout(_mvtec_classes, _mvtec3d_samples))
LAYOUTS.register("folder")(_Layout(folder_classes, folder_samples))


def list_classes(dataset: str, root: Path | str | FolderSpec) -> list[str]:
    """Class names available under ``root``.

    Args:
        dataset: ``"mvtec2d"``, ``"mvtec3d"`` or ``"folder"``.
        root: dataset root folder; for ``folder`` also a :class:`FolderSpec` (its sub-folder roles).

    Returns:
        Sorted class names. For ``mvtec*``: sub-folders holding a ``train`` folder.
        For ``folder``: ``[root.name]`` when ``root`` holds images directly,
        else the sub-folders that hold images.

    Raises:
        CdoError: unknown dataset, missing root, or no class found.
    """
    layout = LAYOUTS.get(dataset)
    source = _check_source(dataset, root)
    classes = layout.classes(source)
    if not classes:
        raise CdoError(f"no classes found in {getattr(source, 'root', source)} ({dataset} layout expects "
                       "<root>/<class>/train/...)")
    return classes


def list_samples(dataset: str, root: Path | str | FolderSpec, class_name: Optional[str],
                 split: str) -> list[Sample]:
    """List the samples of one class and split, in a stable (sorted) order.

    Args:
        dataset: ``"mvtec2d"``, ``"mvtec3d"`` or ``"folder"``.
        root: dataset root folder; for ``folder`` also a :class:`FolderSpec` (its sub-folder roles).
        class_name: class sub-folder. For ``folder`` it may be ``None`` or a name
            that is not a sub-folder; ``root`` itself is then used.
        split: ``"train"`` (good images only) or ``"test"`` (good and defective).

    Returns:
        Samples sorted by defect type, then file name. ``folder`` + ``"test"`` gives ``[]``.

    Raises:
        CdoError: unknown dataset or split, missing root or class folder, empty
            training folder, or a defect image without a mask file.
    """
    layout = LAYOUTS.get(dataset)
    if split not in SPLITS:
        raise CdoError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    source = _check_source(dataset, root)
    root = getattr(source, "root", source)
    if dataset != "folder" and not class_name:
        raise CdoError(f"{dataset} layout needs a class name (classes in {root}: {_mvtec_classes(root)})")
    samples = layout.samples(source, class_name, split)
    n_bad = sum(s.label for s in samples)
    log.debug("%s %s/%s %s: %d samples (%d defective)", dataset, root, class_name, split, len(samples), n_bad)
    return samples


def validate_sample(sample: Sample, image_shape: tuple[int, ...], mask_shape: tuple[int, ...]) -> None:
    """Check that a mask read from disk has the size of its image.

    Args:
        sample: the sample both arrays came from.
        image_shape: shape of the image as read, ``(H, W, 3)``, before resizing.
        mask_shape: shape of the mask as read, ``(H, W)``, before resizing.

    Raises:
        CdoError: the sizes differ.
    """
    if tuple(image_shape[:2]) != tuple(mask_shape[:2]):
        ih, iw = image_shape[:2]
        mh, mw = mask_shape[:2]
        raise CdoError(
            f"mask {sample.mask_path} is {mw}x{mh} but its image {sample.path} is {iw}x{ih} "
            "(width x height); masks must match their image pixel for pixel"
        )


def load_sample(sample: Sample, size: Size = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a sample's image and mask, checking the mask size, then resize both.

    Args:
        sample: from ``list_samples``.
        size: ``None``, ``s`` for ``(s, s)`` or ``(height, width)``.

    Returns:
        ``image`` ``(H, W, 3)`` ``uint8`` RGB and ``mask`` ``(H, W)`` ``bool``
        (all ``False`` for a sample without mask).

    Raises:
        CdoError: unreadable files or a mask whose size differs from its image.
    """
    raw = read_image_file(sample.path)
    hw = target_hw(size, raw.shape)
    if sample.mask_path is None:
        mask = np.zeros(hw, dtype=bool)
    else:
        raw_mask = read_image_file(sample.mask_path, "mask")
        validate_sample(sample, raw.shape, raw_mask.shape)
        mask = to_mask(raw_mask, hw)
    return to_model_input(raw, *hw), mask


def split_holdout(samples: Sequence[Sample], fraction: float, seed: int = 0) -> tuple[list[Sample], list[Sample]]:
    """Deterministically hold out a fraction of samples (e.g. good images for calibration).

    Args:
        samples: the samples to split.
        fraction: share held out, ``0 <= fraction < 1``; the count is
            ``round(fraction * n)``, at least 1 when ``fraction > 0``.
        seed: random seed; the same inputs and seed always give the same split.

    Returns:
        ``(train, holdout)``, each in the original order.

    Raises:
        CdoError: ``fraction`` out of range, or nothing left to train on.

    Example:
        >>> s = [Sample(Path(f"{i}.png"), 0, None, "good") for i in range(10)]
        >>> train, hold = split_holdout(s, 0.2, seed=1)
        >>> len(train), len(hold), split_holdout(s, 0.2, seed=1)[1] == hold
        (8, 2, True)
    """
    if not 0.0 <= fraction < 1.0:
        raise CdoError(f"holdout fraction {fraction} is out of range: use 0 <= fraction < 1 (e.g. 0.1)")
    samples = list(samples)
    n = len(samples)
    n_hold = 0 if fraction == 0 or n == 0 else max(1, int(round(fraction * n)))
    if n_hold >= n and n > 0:
        raise CdoError(
            f"cannot hold out {n_hold} of {n} images and still train: "
            "add training images or lower the holdout fraction"
        )
    order = np.random.default_rng(seed).permutation(n)
    held = set(order[:n_hold].tolist())
    train = [s for i, s in enumerate(samples) if i not in held]
    holdout = [s for i, s in enumerate(samples) if i in held]
    return train, holdout
