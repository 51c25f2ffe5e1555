"""Development suite of real photographs in the MVTec AD layout: real surfaces and objects, subtle defects.

Every image is cut from a photograph that ships inside an installed package
(scikit-image's bundled ``skimage.data`` images, scikit-learn's sample images),
so the suite needs no download and is byte-identical for a seed. It has both
kinds of class a line meets (``PHOTO_CLASSES``):

* textures (``lunar``, ``fur``, ``fundus``, ``stars``): 256-px crops at random
  positions of one large photo, small rotation (flips only where the texture
  allows them), train and test from the same photo;
* aligned objects (``flower``, ``rocket``): one object photo with the jitter of
  parts on a conveyor (shift <= 3 %, rotation <= 2 degrees, scale +-1 %).

Every image gets the nuisance of a controlled line: gain within +-3 %, white
balance within +-1 % per channel. Defects (``PHOTO_DEFECTS``): thin low-contrast
scratches, translucent tinted stains, pits, foreign material cut from another
photo (never the class's own), and on objects missing and displaced pieces. A
mask is exactly the set of pixels whose 8-bit value the defect changed; a defect
that changes fewer than ``16 * (size / 256) ** 2`` pixels is drawn again.
Sources and held-out images: ``docs/results/photo_suite.md``.

CLI::

    python -m cdo_train.data.photo_suite OUT_DIR [--seed 0] [--classes lunar fur ...] [--size 256]

Example:
    >>> import tempfile
    >>> root = make_photo_suite(tempfile.mkdtemp(), classes=["flower"], n_train=1, n_test_good=0,
    ...                         n_test_defect=5, size=64)
    >>> sorted(p.name for p in (root / "flower" / "ground_truth").iterdir())
    ['displaced', 'foreign', 'missing', 'scratch', 'stain']
"""

from __future__ import annotations

import functools
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import cv2
import numpy as np

from cdo_deploy.errors import CdoError

from .demo import _rng, _to_uint8, _write_defect, _write_png, check_counts, generator_parser, write_classes
from .procedural import DEMO_DEFECTS, _blob, _scale

__all__ = ["PHOTO_CLASSES", "PHOTO_DEFECTS", "SOURCES", "PhotoClass", "main", "make_photo_suite"]

log = logging.getLogger(__name__)

_FORMAT_VERSION = 1
_MARKER = ".cdo_photo_suite.json"

Rect = tuple[float, float, float, float]


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        try:
            from skimage import data
        except ImportError as e:  # a dev extra, not a training dependency
            raise CdoError("the photo suite needs scikit-image: pip install 'scikit-image>=0.22'") from e
        return getattr(data, name)()
    return load


def _sklearn(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image  # type: ignore[import-untyped]
        return load_sample_image(name)
    return load


SOURCES: dict[str, Callable[[], np.ndarray]] = {
    "moon": _skimage("moon"), "chelsea": _skimage("chelsea"), "retina": _skimage("retina"),
    "hubble_deep_field": _skimage("hubble_deep_field"), "rocket": _skimage("rocket"),
    "flower": _sklearn("flower.jpg"),
    # donors of foreign material only
    "cell": _skimage("cell"), "astronaut": _skimage("astronaut"), "camera": _skimage("camera"),
    "china": _sklearn("china.jpg"),
}
"""Every photo the suite reads: name -> loader of an RGB uint8 array (grey sources are stacked to RGB)."""

TEXTURE_DEFECTS = ("scratch", "stain", "foreign", "pit")
OBJECT_DEFECTS = ("scratch", "stain", "foreign", "missing", "displaced")


@dataclass(frozen=True)
class PhotoClass:
    """One class: a source photo, the window of it that becomes one image, and its variation.

    Attributes:
        source: key in ``SOURCES``.
        donor: key in ``SOURCES`` that foreign material is cut from (not ``source``).
        window: side (source px) of the square window that is resized to one image.
        description: one line for ``--list``.
        centre: objects: the window's centre (source px); ``None``: a texture, cropped anywhere allowed.
        region: objects: ellipse ``(cx, cy, rx, ry)`` (source px) where defects may lie.
        keep_out: textures: rectangles ``(x0, y0, x1, y1)`` a crop must not touch.
        disc: textures: ``(cx, cy, r)``, a crop must lie inside this disc.
        rotate: largest rotation in degrees.
        flip: textures: mirror at random (only for surfaces that look the same mirrored).
    """

    source: str
    donor: str
    window: int
    description: str
    centre: Optional[tuple[float, float]] = None
    region: Optional[Rect] = None
    keep_out: tuple[Rect, ...] = ()
    disc: Optional[tuple[float, float, float]] = None
    rotate: float = 3.0
    flip: bool = False

    @property
    def defects(self) -> tuple[str, ...]:
        return TEXTURE_DEFECTS if self.centre is None else OBJECT_DEFECTS


PHOTO_CLASSES: dict[str, PhotoClass] = {
    "lunar": PhotoClass("moon", "china", 256, "lunar surface, craters (grey, stochastic)"),
    "fur": PhotoClass("chelsea", "china", 96, "cat fur with whiskers, eyes and nose left out (colour, directional)",
                      keep_out=((130, 80, 215, 150), (290, 95, 350, 170), (220, 200, 300, 275), (350, 0, 451, 300),
                                (0, 0, 18, 300))),
    "fundus": PhotoClass("retina", "astronaut", 384, "retinal fundus with vessels (colour, stochastic)",
                         disc=(705.0, 705.0, 620.0)),
    "stars": PhotoClass("hubble_deep_field", "cell", 256, "deep star field (dark, sparse)", flip=True),
    "flower": PhotoClass("flower", "china", 360, "a dahlia, aligned (object, colour)",
                         centre=(307.0, 222.0), region=(307.0, 222.0, 132.0, 130.0), rotate=2.0),
    "rocket": PhotoClass("rocket", "camera", 320, "a rocket on its pad at dusk, aligned (object, thin)",
                         centre=(320.0, 255.0), region=(321.0, 262.0, 20.0, 135.0), rotate=2.0),
}


# --------------------------------------------------------------------------- sources and views


@functools.lru_cache(maxsize=16)
def _resized(name: str, factor: float) -> np.ndarray:
    """Source ``name`` as float32 RGB in [0, 1], resized by ``factor`` (area when shrinking)."""
    image = SOURCES[name]()
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=2)
    image = np.ascontiguousarray(image[:, :, :3], dtype=np.float32) / 255.0
    h, w = image.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC)


@functools.lru_cache(maxsize=16)
def _crop_centres(name: str, size: int) -> np.ndarray:
    """Texture class ``name``: every allowed crop centre ``(x, y)`` (resized px) on a 2-px grid."""
    spec = PHOTO_CLASSES[name]
    f = size / spec.window
    h, w = _resized(spec.source, f).shape[:2]
    half = 0.5 * size * 1.1  # room for the rotation
    ys, xs = np.mgrid[0:h:2, 0:w:2].astype(np.float32)
    ok = (xs >= half) & (xs <= w - half) & (ys >= half) & (ys <= h - half)
    for x0, y0, x1, y1 in spec.keep_out:
        ok &= ~((xs + half > x0 * f) & (xs - half < x1 * f) & (ys + half > y0 * f) & (ys - half < y1 * f))
    if spec.disc is not None:
        cx, cy, r = spec.disc
        ok &= np.hypot(xs - cx * f, ys - cy * f) + half * np.sqrt(2) <= r * f
    if not ok.any():  # pragma: no cover - a mistake in PHOTO_CLASSES
        raise RuntimeError(f"photo class {name!r}: no crop position is allowed")
    return np.stack([xs[ok], ys[ok]], axis=1)


def _view(name: str, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One good image of class ``name`` (uint8 RGB) and the region where defects may lie."""
    spec = PHOTO_CLASSES[name]
    f = size / spec.window
    source = _resized(spec.source, f)
    angle = np.deg2rad(rng.uniform(-spec.rotate, spec.rotate))
    if spec.centre is None:
        centres = _crop_centres(name, size)
        cx, cy = centres[rng.integers(len(centres))]
        scale, mirror = 1.0, (rng.integers(2, size=2) if spec.flip else (0, 0))
    else:
        cx, cy = (np.array(spec.centre) + rng.uniform(-0.03, 0.03, 2) * spec.window) * f
        scale, mirror = rng.uniform(0.99, 1.01), (0, 0)
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    a = np.array([[c, -s], [s, c]]) @ np.diag([-1.0 if mirror[0] else 1.0, -1.0 if mirror[1] else 1.0])
    m = np.hstack([a, (np.array([cx, cy]) - a @ np.array([size / 2, size / 2]))[:, None]])
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    image = cv2.warpAffine(source, m, (size, size), flags=flags, borderMode=cv2.BORDER_REFLECT_101)
    image = image * rng.uniform(0.97, 1.03) * rng.uniform(0.99, 1.01, 3).astype(np.float32)  # gain, white balance
    region = np.ones((size, size), bool)
    if spec.region is not None:
        ex, ey, rx, ry = (v * f for v in spec.region)
        canvas = np.zeros(source.shape[:2], np.uint8)
        cv2.ellipse(canvas, (round(ex), round(ey)), (round(rx), round(ry)), 0, 0, 360, 1, -1)
        region = cv2.warpAffine(canvas, m, (size, size), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP) > 0
    return _to_uint8(image), region


# --------------------------------------------------------------------------- defects


def _donor_patch(donor: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """A random ``size`` x ``size`` window of the donor photo at about its native scale (float RGB)."""
    source = _resized(donor, size / 256.0)
    h, w = source.shape[:2]
    y, x = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
    return source[y:y + size, x:x + size]


def _foreign(image, region, rng, donor: str):
    """Foreign material: an irregular blob of another photo, its mean pulled to the surface's around it."""
    mask, _, _ = _blob(region, rng, _scale(image), 14, 3.0, 0.7)
    patch = _donor_patch(donor, rng, image.shape[0])
    if not mask.any():
        return image, mask
    local = image[mask].mean(axis=0) * rng.uniform(0.75, 1.25)
    stuff = patch[mask] - patch[mask].mean(axis=0) + local
    out = image.copy()
    out[mask] = np.clip(stuff, 0, 1)
    return out, mask


def _inpaint(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return cv2.inpaint(_to_uint8(image), mask.astype(np.uint8), 3, cv2.INPAINT_TELEA).astype(np.float32) / 255.0


def _missing(image, region, rng, donor: str):
    """A missing piece: an irregular blob of the object filled from its surroundings (inpainting)."""
    mask, _, _ = _blob(region, rng, _scale(image), 16, 3.0, 0.65)
    return _inpaint(image, mask), mask


def _displaced(image, region, rng, donor: str):
    """A displaced piece: a blob of the object moved 3-6 px (at 256 px); the place it left is inpainted."""
    piece, _, _ = _blob(region, rng, _scale(image), 14, 3.0, 0.6)
    r, t = rng.uniform(3, 6) * _scale(image), rng.uniform(0, 2 * np.pi)
    d = (round(r * np.sin(t)), round(r * np.cos(t)))
    moved = np.roll(piece, d, axis=(0, 1))
    out = _inpaint(image, piece)
    out[moved] = np.roll(image, d, axis=(0, 1))[moved]
    return out, piece | moved


def _demo(defect: str):
    """A DEMO_DEFECTS function (exact-mask, strength 1) with the photo defect signature."""
    return lambda image, region, rng, donor: DEMO_DEFECTS.get(defect)(image, region, rng, 1.0)


PHOTO_DEFECTS: dict[str, Callable] = {
    "scratch": _demo("faint_scratch"), "stain": _demo("soft_stain"), "pit": _demo("pit"),
    "foreign": _foreign, "missing": _missing, "displaced": _displaced,
}
"""defect name -> ``(image float RGB, region, rng, donor name) -> (new image, pixels it may have changed)``."""


def _defective(name: str, defect: str, seed: int, index: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A defective image (uint8) and its exact mask: the pixels whose 8-bit value the defect changed."""
    rng = _rng(seed, name, "test", defect, index)
    base, region = _view(name, rng, size)
    image = base.astype(np.float32) / 255.0
    least = max(4, round(16 * (size / 256.0) ** 2))
    for _ in range(20):
        out, touched = PHOTO_DEFECTS[defect](image, region, rng, PHOTO_CLASSES[name].donor)
        out8 = _to_uint8(out)
        mask = np.any(out8 != base, axis=2) & touched
        if mask.sum() >= least:
            return np.where(mask[:, :, None], out8, base), mask
    raise RuntimeError(f"photo defect {defect!r} on {name!r} changed too few pixels 20 times (bug)")


def _make_class(folder: Path, name: str, params: dict) -> None:
    seed, size = params["seed"], params["size"]
    for split, count in (("train", params["n_train"]), ("test", params["n_test_good"])):
        for i in range(count):
            _write_png(folder / split / "good" / f"{i:03d}.png", _view(name, _rng(seed, name, split, i), size)[0])
    defects = PHOTO_CLASSES[name].defects
    for i in range(params["n_test_defect"]):
        defect, j = defects[i % len(defects)], i // len(defects)
        _write_defect(folder, defect, j, *_defective(name, defect, seed, j, size))


def make_photo_suite(
    root: Path | str,
    classes: Optional[Sequence[str]] = None,
    n_train: int = 60,
    n_test_good: int = 30,
    n_test_defect: int = 40,
    size: int = 256,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write the photo suite under ``root`` (``root/<class>/...``, MVTec AD layout).

    A class folder already generated with the same arguments is kept as is (a
    ``.cdo_photo_suite.json`` marker records them), so re-running is cheap.

    Args:
        root: output folder (created if needed).
        classes: names from ``PHOTO_CLASSES``; ``None`` = all of them.
        n_train: good training images per class.
        n_test_good: good test images per class.
        n_test_defect: defective test images per class, round-robin over the class's defect types.
        size: image side in pixels.
        seed: random seed; same arguments -> byte-identical files.
        overwrite: replace class folders that hold other content.

    Returns:
        ``root`` as a ``Path``.

    Raises:
        CdoError: unknown class, invalid counts or size, scikit-image missing, or a class
            folder that exists with other content and ``overwrite`` is False.
    """
    names = list(PHOTO_CLASSES) if classes is None else list(dict.fromkeys(classes))
    unknown = [n for n in names if n not in PHOTO_CLASSES]
    if unknown:
        raise CdoError(f"unknown photo suite class {', '.join(unknown)}; known: {', '.join(PHOTO_CLASSES)}")
    check_counts("photo suite", n_train=n_train, n_test_good=n_test_good, n_test_defect=n_test_defect, size=size)
    base = {"version": _FORMAT_VERSION, "seed": int(seed), "size": int(size), "n_train": int(n_train),
            "n_test_good": int(n_test_good), "n_test_defect": int(n_test_defect)}
    return write_classes(root, names, base, _make_class, overwrite, _MARKER, "photo suite")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI: ``python -m cdo_train.data.photo_suite OUT_DIR [options]``; returns the exit status."""
    parser = generator_parser("cdo_train.data.photo_suite", __doc__,
                              f"classes (default: all: {' '.join(PHOTO_CLASSES)})",
                              n_train=60, n_test_good=30, n_test_defect=40)
    parser.add_argument("--list", action="store_true", help="list classes, sources and defect types, then exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, c in PHOTO_CLASSES.items():
            print(f"{name:7s} {c.description}; source {c.source}, donor {c.donor}; defects: {', '.join(c.defects)}")
        return 0
    if args.out_dir is None:
        parser.error("OUT_DIR is required")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        root = make_photo_suite(args.out_dir, classes=args.classes, n_train=args.n_train,
                                n_test_good=args.n_test_good, n_test_defect=args.n_test_defect,
                                size=args.size, seed=args.seed, overwrite=args.overwrite)
    except CdoError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    print(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
