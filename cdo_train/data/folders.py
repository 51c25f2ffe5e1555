"""Folder datasets: plain folders of good images, and anomalib-style labelled folders.

Good images only (``--dataset folder --data-root DIR``)::

    DIR/*.png               one class, named after DIR (or ``--class-name``)
    DIR/<class>/*.png       one class per sub-folder (``--class-name all``)
    DIR/**/*.png            ``--recursive``: one class, every image anywhere below DIR

  There is no labelled test set: thresholds come from held-out good images.

Labelled, with anomalib's names and semantics (``Folder(root, normal_dir,
abnormal_dir, mask_dir, normal_test_dir)``; the folders are relative to
``root`` = ``--data-root``, searched recursively, one class named after the
root or ``--class-name``):

* ``normal_dir``: good images, for training;
* ``abnormal_dir``: defective images, test set (label 1); a sub-folder name
  becomes the defect type, else the folder's own name;
* ``mask_dir``: ground-truth masks of the abnormal images, matched by file
  name (``000_mask.png``, else ``000.png`` for image ``000.png``; the same
  sub-folder first; ``cdo_deploy.images.find_mask``); without it the metrics
  are image-level only;
* ``normal_test_dir``: good test images; without it ``test_split_ratio``
  (default 0.2, anomalib's) of the normal images move to the test set, chosen
  with a fixed seed so that every training seed is tested on the same images.

Errors say what was found, e.g. ``12 files, none an image (.csv .txt)`` or
``the images are in sub-folders (train/good: 20, test/crack: 5)``.

Example:
    >>> import tempfile, cv2, numpy as np
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("good/a.png", "good/b.png", "bad/c.png", "masks/c_mask.png"):
    ...     (root / name).parent.mkdir(exist_ok=True)
    ...     _ = cv2.imwrite(str(root / name), np.zeros((4, 4), np.uint8))
    >>> spec = FolderSpec(root, normal_dir=root / "good", abnormal_dir=root / "bad", mask_dir=root / "masks",
    ...                   test_split_ratio=0.5)
    >>> [(s.path.name, s.label, s.mask_path.name if s.mask_path else None) for s in folder_samples(spec, None, "test")]
    [('c.png', 1, 'c_mask.png'), ('a.png', 0, None)]
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from cdo_deploy.errors import CdoError
from cdo_deploy.images import find_mask

from .io import IMAGE_EXTENSIONS, is_image_file
from .sample import Sample

__all__ = ["FolderSpec", "describe_folder", "folder_classes", "folder_samples", "images_in", "no_images_error"]

GOOD = "good"
_SPLIT_SEED = 0  # the normal test split does not depend on the training seed


@dataclass(frozen=True)
class FolderSpec:
    """Where a folder dataset's images are (absolute paths, or None for an unused role).

    Attributes:
        root: ``--data-root``.
        normal_dir, abnormal_dir, mask_dir, normal_test_dir: anomalib's folders (labelled mode
            when ``abnormal_dir`` is set; ``normal_dir`` alone is a good-only folder, searched recursively).
        recursive: good-only root: search sub-folders too (one class).
        test_split_ratio: share of the normal images moved to the test set without ``normal_test_dir``.
    """

    root: Path
    normal_dir: Optional[Path] = None
    abnormal_dir: Optional[Path] = None
    mask_dir: Optional[Path] = None
    normal_test_dir: Optional[Path] = None
    recursive: bool = False
    test_split_ratio: float = 0.2

    @property
    def labelled(self) -> bool:
        return self.abnormal_dir is not None


def images_in(folder: Path, recursive: bool = False) -> list[Path]:
    """Sorted image files in ``folder`` (below it with ``recursive``); hidden folders are skipped."""
    if not folder.is_dir():
        return []
    if not recursive:
        return sorted(p for p in folder.iterdir() if is_image_file(p) and p.is_file())
    found = (p for p in folder.rglob("*") if is_image_file(p) and p.is_file())
    return sorted(p for p in found if not any(part.startswith(".") for part in p.relative_to(folder).parts))


def describe_folder(folder: Path) -> str:
    """What ``folder`` holds, for an error message: missing, empty, non-images, images in sub-folders."""
    if not folder.exists():
        return "does not exist"
    if not folder.is_dir():
        return "is not a folder"
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    nested = collections.Counter(p.parent.relative_to(folder).as_posix() for p in images_in(folder, True))
    if nested:
        top = sorted(nested.items(), key=lambda kv: (-kv[1], kv[0]))[:4]  # the biggest folders first
        where = ", ".join(f"{d}: {n}" for d, n in top) + (", ..." if len(nested) > 4 else "")
        return f"holds no image itself; the images are in sub-folders ({where})"
    if not files:
        return "is empty"
    suffixes = " ".join(sorted({p.suffix.lower() or "(no suffix)" for p in files}))
    return f"holds {len(files)} file{'s' * (len(files) != 1)}, none an image ({suffixes})"


def _role(name: str) -> Optional[str]:
    """``mask``, ``defect`` or ``good`` for a folder named like one (``defect_masks`` holds masks)."""
    words = name.lower().replace("-", "_").replace(" ", "_").split("_")
    if any(w.startswith(("mask", "ground", "label")) or w == "gt" for w in words):
        return "mask"
    if any(w.startswith(("defect", "abnormal", "anomal", "reject", "fault")) or w in ("bad", "ng", "nok", "nio")
           for w in words):
        return "defect"
    if words[0].startswith("calib"):
        return "calibration"
    return "good" if words[0] in ("good", "normal", "ok") else None


def labelled_hint(root: Path) -> Optional[str]:
    """``--normal-dir good --abnormal-dir defect --mask-dir defect_masks [--calibration-dir ROOT/calib_good]``
    when ``root``'s sub-folders are named that way (None otherwise).

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> for d in ("good", "calib_good", "defect", "defect_masks"):
        ...     (root / d).mkdir()
        >>> labelled_hint(root).replace(str(root), "ROOT")
        '--normal-dir good --abnormal-dir defect --mask-dir defect_masks --calibration-dir ROOT/calib_good'
    """
    subs = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    found: dict[str, str] = {}
    for name in subs:
        role = _role(name)
        if role is not None and (role not in found or name.lower() in ("good", "defect", "masks")):
            found[role] = name
    if "good" not in found or not ({"defect", "mask"} & found.keys()):
        return None
    flags = (("--normal-dir", "good"), ("--abnormal-dir", "defect"), ("--mask-dir", "mask"))
    hint = " ".join(f"{flag} {found[role]}" for flag, role in flags if role in found)
    return hint + (f" --calibration-dir {root / found['calibration']}" if "calibration" in found else "")


def _defect_folders(images: list[Path], folder: Path) -> list[str]:
    """The folders below ``folder`` named like defects or masks that hold some of ``images``."""
    out: dict[str, None] = {}
    for p in images:
        parts = p.relative_to(folder).parts[:-1]
        for i, part in enumerate(parts):
            if _role(part) in ("defect", "mask"):
                out["/".join(parts[: i + 1])] = None
                break
    return list(out)


def no_images_error(what: str, folder: Path, hint: Optional[str] = None) -> CdoError:
    """The error for a folder without ``what`` images: what it holds instead, and ``hint`` (default:
    the layouts that fit images found in sub-folders: labelled folders first)."""
    state = describe_folder(folder)
    if hint is None:
        labelled = labelled_hint(folder) if "sub-folders" in state else None
        if labelled:
            hint = (f"; the sub-folders look like good, defective and mask images: pass {labelled} "
                    "(--recursive would train on the defects too)")
        else:
            hint = ("; use --dataset mvtec2d for an MVTec-layout class folder, or --recursive"
                    if "sub-folders" in state else "")
    return CdoError(f"no {what} images in {folder}: it {state} "
                    f"(image suffixes: {', '.join(sorted(IMAGE_EXTENSIONS))}){hint}")


def _require(folder: Path, what: str, recursive: bool) -> list[Path]:
    images = images_in(folder, recursive)
    if not images:
        raise no_images_error(what, folder)
    return images


def folder_classes(spec: FolderSpec) -> list[str]:
    """Class names: the root's name (labelled, recursive or images in the root), else its image sub-folders."""
    if spec.labelled or spec.normal_dir is not None or spec.recursive or images_in(spec.root):
        return [spec.root.name]
    subs = sorted(p.name for p in spec.root.iterdir() if p.is_dir() and images_in(p))
    if not subs:
        raise no_images_error("good", spec.root, "; put good images in <root>/*.png or <root>/<class>/*.png, "
                         "or pass --recursive (or --dataset mvtec2d for an MVTec-layout folder)")
    return subs


def _split_normal(normal: list[Path], ratio: float) -> tuple[list[Path], list[Path]]:
    n_test = int(round(ratio * len(normal)))
    if n_test >= len(normal) and normal:
        raise CdoError(f"test_split_ratio {ratio} leaves no normal image to train on; lower it or add "
                       "--normal-test-dir")
    chosen = set(np.random.default_rng(_SPLIT_SEED).permutation(len(normal))[:n_test].tolist())
    return [p for i, p in enumerate(normal) if i not in chosen], [p for i, p in enumerate(normal) if i in chosen]


def _mask_for(image: Path, abnormal_dir: Path, masks: list[Path], mask_dir: Path) -> Optional[Path]:
    """``cdo_deploy.images.find_mask`` in the image's own sub-folder of ``mask_dir``, else in the one
    folder below ``mask_dir`` that holds a mask for it (none when several do)."""
    same = mask_dir / image.relative_to(abnormal_dir).parent
    found = find_mask(image.stem, [same])
    if found is not None:
        return found
    anywhere = [m for m in (find_mask(image.stem, [d]) for d in sorted({m.parent for m in masks})) if m is not None]
    return anywhere[0] if len(anywhere) == 1 else None


def _abnormal_samples(abnormal_dir: Path, mask_dir: Optional[Path]) -> list[Sample]:
    images = _require(abnormal_dir, "abnormal (--abnormal-dir)", True)
    masks = _require(mask_dir, "mask (--mask-dir)", True) if mask_dir is not None else []
    samples, missing = [], []
    for image in images:
        sub = image.relative_to(abnormal_dir).parts
        defect = sub[0] if len(sub) > 1 else abnormal_dir.name
        mask = _mask_for(image, abnormal_dir, masks, mask_dir) if mask_dir is not None else None
        if mask_dir is not None and mask is None:
            missing.append(image)
        samples.append(Sample(image, 1, mask, defect))
    if missing:
        raise CdoError(f"{len(missing)} of {len(images)} abnormal images have no mask in {mask_dir}, e.g. "
                       f"{missing[0].name} (expected {missing[0].stem}_mask.png or {missing[0].stem}.png; masks "
                       "are matched by file name, as in anomalib)")
    return samples


def folder_samples(spec: FolderSpec, class_name: Optional[str], split: str) -> list[Sample]:
    """The samples of a folder dataset for ``split`` (``train``: good images; ``test``: labelled test set).

    Raises:
        CdoError: a folder without images (saying what it holds), abnormal images without masks,
            or a normal split that leaves nothing to train on.
    """
    if spec.abnormal_dir is None:
        if split == "test":
            return []
        if spec.normal_dir is not None:
            folder, recursive = spec.normal_dir, True
        else:
            sub = spec.root / class_name if class_name else None
            folder, recursive = (sub if sub is not None and sub.is_dir() else spec.root), spec.recursive
        images = _require(folder, "training", recursive)
        bad = _defect_folders(images, folder) if recursive and spec.normal_dir is None else []
        if bad:
            labelled = labelled_hint(folder)
            raise CdoError(f"--recursive would train on the images in {', '.join(bad)} (folders named like defects or "
                           f"masks) as good parts; pass {labelled or '--normal-dir GOOD_FOLDER'} instead, or move "
                           f"them out of {folder}")
        return [Sample(p, 0, None, GOOD) for p in images]
    normal = _require(spec.normal_dir or spec.root, "normal (--normal-dir)", spec.normal_dir is not None)
    if spec.normal_test_dir is not None:
        train, normal_test = normal, _require(spec.normal_test_dir, "normal test (--normal-test-dir)", True)
    else:
        train, normal_test = _split_normal(normal, spec.test_split_ratio)
    if split == "train":
        return [Sample(p, 0, None, GOOD) for p in train]
    return _abnormal_samples(spec.abnormal_dir, spec.mask_dir) + [Sample(p, 0, None, GOOD) for p in normal_test]
