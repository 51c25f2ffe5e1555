"""Labelled test images for ``cdo-bench --data``: good and defective parts, optional masks.

Two layouts are recognised (``DIR`` is the folder passed):

MVTec class folder (what ``cdo-train`` reads per class; ``DIR`` may also be its ``test`` folder)::

    DIR/test/good/*.png
    DIR/test/<defect>/*.png
    DIR/ground_truth/<defect>/<name>_mask.png

anomalib-style labelled folder (anomalib's ``Folder`` data module)::

    DIR/good/*.png            (or normal/, ok/)
    DIR/<defect>/*.png        (every other image folder is a defect type)
    DIR/mask/<defect>/<name>.png or <name>_mask.png   (optional; also masks/, ground_truth/, gt/)

Images are read as the line and training read them (:func:`cdo_deploy.preprocess.read_image_file`)
and brought to the model input with :func:`cdo_deploy.preprocess.to_model_input`, so the
accuracy measured is the accuracy of the runtime's own pre-processing. Image files and masks
are found as training finds them (:mod:`cdo_deploy.images`: one suffix list, one mask matcher);
masks (any non-zero pixel is a defect, :func:`cdo_deploy.preprocess.to_mask`) are resized to the
model resolution with nearest neighbour, as training evaluates. Without masks for every defective image the
pixel metrics are left out (``masks is None``).

Example:
    >>> data = load_labelled("data/weave", 256, 256)         # doctest: +SKIP
    >>> data.layout, len(data), int(data.labels.sum())       # doctest: +SKIP
    ('mvtec', 24, 16)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import CdoError
from .images import find_mask, is_image_file
from .preprocess import read_image_file, to_mask, to_model_input

__all__ = ["LabelledSet", "load_labelled"]

log = logging.getLogger(__name__)

GOOD_NAMES = ("good", "normal", "ok")
MASK_DIRS = ("mask", "masks", "ground_truth", "gt")


@dataclass(frozen=True, eq=False)
class LabelledSet:
    """Decoded labelled parts.

    Attributes:
        root: the folder read.
        layout: ``mvtec`` or ``folder``.
        names: image paths relative to ``root`` (N,).
        labels: (N,) int64, 0 = good, 1 = defective.
        defect_types: (N,) folder names (``good`` for good parts).
        images: the decoded images as stored (any size; BGR, grey, ...).
        inputs: (N, H, W, 3) uint8 RGB model inputs.
        masks: (N, H, W) bool at model resolution, or ``None`` when masks are missing.
    """

    root: Path
    layout: str
    names: tuple[str, ...]
    labels: np.ndarray
    defect_types: tuple[str, ...]
    images: tuple[np.ndarray, ...]
    inputs: np.ndarray
    masks: np.ndarray | None

    def __len__(self) -> int:
        return len(self.names)

    def summary(self) -> str:
        """``"24 parts (8 good, 16 defective; masks)"``."""
        n_bad = int(self.labels.sum())
        return (f"{len(self)} parts ({len(self) - n_bad} good, {n_bad} defective; "
                f"{'masks' if self.masks is not None else 'no masks: pixel metrics left out'})")


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if is_image_file(p) and p.is_file())


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _list(root: Path) -> tuple[str, Path, list[tuple[Path, str, list[Path]]]]:
    """(layout, the class folder, [(image, defect type, mask folders to search)]) in a stable order."""
    if root.name == "test" and (root.parent / "ground_truth").is_dir():
        root = root.parent
    if (root / "test").is_dir():
        items = []
        for type_dir in _subdirs(root / "test"):
            masks = [] if type_dir.name == "good" else [root / "ground_truth" / type_dir.name]
            items += [(p, type_dir.name, masks) for p in _images(type_dir)]
        return "mvtec", root, items
    subs = {p.name.lower(): p for p in _subdirs(root)}
    good = next((subs[n] for n in GOOD_NAMES if n in subs and _images(subs[n])), None)
    if good is None:
        raise CdoError(f"{root}: no labelled images found (expected an MVTec class folder with test/<type>/*.png, "
                       f"or a labelled folder with {'/, '.join(GOOD_NAMES)}/ and one folder per defect type)")
    mask_roots = [subs[n] for n in MASK_DIRS if n in subs]
    items = [(p, "good", []) for p in _images(good)]
    for d in subs.values():
        if d == good or d in mask_roots:
            continue
        items += [(p, d.name, [m / d.name for m in mask_roots] + mask_roots) for p in _images(d)]
    return "folder", root, items


def _mask(path: Path, hw: tuple[int, int], image_hw: tuple[int, int]) -> np.ndarray:
    m = read_image_file(path, "mask")
    if m.shape[:2] != image_hw:
        raise CdoError(f"mask {path} is {m.shape[1]}x{m.shape[0]} but its image is {image_hw[1]}x{image_hw[0]} "
                       "(width x height); masks must match their image pixel for pixel")
    return to_mask(m, hw)


def load_labelled(root: str | Path, height: int, width: int, color_order: str = "BGR") -> LabelledSet:
    """Read a labelled folder (see the module docstring) at model resolution.

    Args:
        root: the folder.
        height, width: model input size in pixels.
        color_order: channel order of the decoded 3/4-channel images (OpenCV decodes ``BGR``).

    Returns:
        The parts, good first then defect types in name order.

    Raises:
        CdoError: missing folder, unknown layout, unreadable image or mask, a mask whose
            size differs from its image, or masks for only some of the defective images.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise CdoError(f"--data {root} is not a folder (an MVTec class folder or a labelled folder)")
    layout, root, items = _list(root)
    if not items:
        raise CdoError(f"{root}: no test images found ({layout} layout)")
    names, labels, types, images, inputs, masks = [], [], [], [], [], []
    missing = []
    for path, kind, mask_dirs in items:
        img = read_image_file(path)
        names.append(str(path.relative_to(root)))
        labels.append(0 if kind == "good" else 1)
        types.append(kind)
        images.append(img)
        inputs.append(to_model_input(img, height, width, color_order))
        if kind == "good":
            masks.append(np.zeros((height, width), bool))
            continue
        mask_path = find_mask(path.stem, mask_dirs)
        if mask_path is None:
            missing.append(path)
            continue
        masks.append(_mask(mask_path, (height, width), img.shape[:2]))
    n_bad = sum(labels)
    if missing and len(missing) < n_bad:
        raise CdoError(f"defect image {missing[0]} has no mask ({len(missing)} of {n_bad} lack one); "
                       "add the masks, or remove all of them to evaluate image metrics only")
    log.info("labelled data %s (%s layout): %d good, %d defective%s", root, layout, len(names) - n_bad, n_bad,
             "" if not missing else ", no masks")
    return LabelledSet(root, layout, tuple(names), np.asarray(labels, np.int64), tuple(types), tuple(images),
                       np.stack(inputs), None if missing or not n_bad else np.stack(masks))
