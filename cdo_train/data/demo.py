"""Deterministic procedural demo dataset in the MVTec AD layout, with exact masks.

Default: 2 classes (``weave``: periodic, ``grain``: stochastic), each with 48
good training images, 8 good and 16 defective test images (4 per defect type:
scratch, spot, hole, contamination), 256x256 PNG. Small enough to train CDO on
2 CPU cores in minutes. The same arguments always give byte-identical files.

Classes and defect types are registries (``DEMO_CLASSES``, ``DEMO_DEFECTS`` in
``cdo_train.data.procedural``); classes flagged ``hard`` are only generated when
named or with ``hard=True``. ``defect_strength`` scales defect contrast.
``photo=True`` (``--photo``) passes every image through a simulated line camera
(lighting gradient, vignetting, defocus, sensor noise, JPEG; ``camera.py``),
good and defective alike, masks unchanged.

Layout written (``<root>/<class>/...``, see ``layouts.py``)::

    train/good/000.png  test/good/000.png  test/<type>/000.png
    ground_truth/<type>/000_mask.png       (0/255 grey)

CLI::

    python -m cdo_train.data.demo OUT_DIR [--classes weave grain] [--seed 0] [--list]

Example:
    >>> import tempfile
    >>> root = make_demo_dataset(tempfile.mkdtemp(), classes=["grain"], n_train=2,
    ...                          n_test_good=1, n_test_defect=2, size=32)
    >>> sorted(p.name for p in (root / "grain" / "test").iterdir())
    ['good', 'scratch', 'spot']
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
import zlib
from pathlib import Path
from typing import Callable, Optional, Sequence

import cv2
import numpy as np

from cdo_deploy.errors import CdoError

from .camera import photograph
from .procedural import DEMO_CLASSES, DEMO_DEFECTS

__all__ = ["DEFAULT_DEMO_CLASSES", "demo_classes", "main", "make_demo_dataset"]

log = logging.getLogger(__name__)

DEFAULT_DEMO_CLASSES = ("weave", "grain")
_FORMAT_VERSION = 1
_MARKER = ".cdo_demo.json"
_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1]  # fast; level 6 is 3x slower for 8% smaller files


def demo_classes(hard: bool = False) -> list[str]:
    """Registered demo class names: the easy ones, plus the ``hard`` ones when asked."""
    return [n for n in DEMO_CLASSES if hard or not DEMO_CLASSES.get(n).hard]


def _rng(seed: int, *keys: object) -> np.random.Generator:
    """A generator fixed by the seed and string/int keys (stable across processes)."""
    ints = [k if isinstance(k, int) else zlib.crc32(str(k).encode()) for k in keys]
    return np.random.default_rng([seed, *ints])


def _write_png(path: Path, array: np.ndarray) -> None:
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", array, _PNG)
    if not ok:  # pragma: no cover - OpenCV only fails here on invalid arrays
        raise RuntimeError(f"PNG encoding failed for {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.tobytes())


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


def _good(class_name: str, seed: int, split: str, index: int, size: int) -> np.ndarray:
    image, _ = DEMO_CLASSES.get(class_name).texture(_rng(seed, class_name, split, index), size)
    return _to_uint8(image)


def _defective(class_name: str, defect: str, seed: int, index: int, size: int, strength: float):
    rng = _rng(seed, class_name, "test", defect, index)
    image, region = DEMO_CLASSES.get(class_name).texture(rng, size)
    base = _to_uint8(image)
    for _ in range(20):
        out, mask = DEMO_DEFECTS.get(defect)(image, region, rng, strength)
        out8 = _to_uint8(out)
        changed = np.any(out8 != base, axis=2)
        if mask.sum() >= 4 and np.array_equal(changed, mask):
            return out8, mask
    raise RuntimeError(f"demo defect {defect!r} on {class_name!r} produced no exact mask (bug)")


def _make_class(folder: Path, name: str, params: dict) -> None:
    seed, size = params["seed"], params["size"]

    def camera(image: np.ndarray, *keys: object) -> np.ndarray:
        return photograph(image, _rng(seed, name, "camera", *keys)) if params.get("photo") else image

    for i in range(params["n_train"]):
        image = camera(_good(name, seed, "train", i, size), "train", i)
        _write_png(folder / "train" / "good" / f"{i:03d}.png", image)
    for i in range(params["n_test_good"]):
        image = camera(_good(name, seed, "test", i, size), "test", i)
        _write_png(folder / "test" / "good" / f"{i:03d}.png", image)
    defects = DEMO_CLASSES.get(name).defects
    counts = dict.fromkeys(defects, 0)
    for i in range(params["n_test_defect"]):
        defect = defects[i % len(defects)]
        j = counts[defect]
        counts[defect] += 1
        image, mask = _defective(name, defect, seed, j, size, params["defect_strength"])
        _write_defect(folder, defect, j, camera(image, defect, j), mask)


def _write_defect(folder: Path, defect: str, index: int, image: np.ndarray, mask: np.ndarray) -> None:
    """``test/<defect>/<index>.png`` and its ``ground_truth/<defect>/<index>_mask.png`` (0/255)."""
    _write_png(folder / "test" / defect / f"{index:03d}.png", image)
    _write_png(folder / "ground_truth" / defect / f"{index:03d}_mask.png", mask.astype(np.uint8) * 255)


def make_demo_dataset(
    root: Path | str,
    classes: Optional[Sequence[str]] = None,
    n_train: int = 48,
    n_test_good: int = 8,
    n_test_defect: int = 16,
    size: int = 256,
    seed: int = 0,
    hard: bool = False,
    defect_strength: float = 1.0,
    overwrite: bool = False,
    photo: bool = False,
) -> Path:
    """Write the demo dataset under ``root`` in the MVTec AD layout.

    A class folder already generated with the same arguments is kept as is
    (a ``.cdo_demo.json`` marker records them), so re-running is cheap.

    Args:
        root: output folder (created if needed).
        classes: class names from ``DEMO_CLASSES``; ``None`` = ``weave`` and ``grain``
            (all non-hard classes plus the hard ones if ``hard``, when ``hard`` is set).
        n_train: good training images per class.
        n_test_good: good test images per class.
        n_test_defect: defective test images per class, spread round-robin over the
            class's defect types.
        size: image side in pixels (square images).
        seed: random seed; same arguments -> byte-identical files.
        hard: with ``classes=None``, include the classes registered as hard.
        defect_strength: defect contrast factor (1.0 = default; lower is subtler).
        overwrite: replace class folders that hold other content.
        photo: pass every image through the simulated line camera (``camera.photograph``).

    Returns:
        ``root`` as a ``Path``.

    Raises:
        CdoError: unknown class, invalid counts/size, or a class folder that exists
            with other content and ``overwrite`` is False.
    """
    if classes is None:
        names = list(DEFAULT_DEMO_CLASSES) if not hard else demo_classes(hard=True)
    else:
        names = list(dict.fromkeys(classes))
    for name in names:
        DEMO_CLASSES.get(name)  # unknown names fail here, with suggestions
    check_counts("demo dataset", n_train=n_train, n_test_good=n_test_good, n_test_defect=n_test_defect, size=size)
    if not 0.0 < defect_strength <= 2.0:
        raise CdoError(f"demo dataset: defect_strength must be in (0, 2], got {defect_strength}")
    base = {"version": _FORMAT_VERSION, "seed": int(seed), "size": int(size), "n_train": int(n_train),
            "n_test_good": int(n_test_good), "n_test_defect": int(n_test_defect),
            "defect_strength": float(defect_strength)}
    if photo:
        base["photo"] = True
    return write_classes(root, names, base, _make_class, overwrite, _MARKER, "demo")


def check_counts(what: str, **values: int) -> None:
    """Raise ``CdoError`` unless each count is an integer >= its floor (``n_train``, ``size``: 1, 32; others 0)."""
    floors = {"n_train": 1, "size": 32}
    for label, value in values.items():
        low = floors.get(label, 0)
        if not isinstance(value, (int, np.integer)) or value < low:
            raise CdoError(f"{what}: {label} must be an integer >= {low}, got {value!r}")


def write_classes(root: Path | str, names: Sequence[str], base: dict, make_class: Callable[[Path, str, dict], None],
                  overwrite: bool, marker_name: str, what: str) -> Path:
    """Write each class folder ``root/<name>`` with ``make_class(folder, name, params)``, skipping up-to-date ones.

    ``params`` is ``base`` plus ``"class": name``; it is stored as JSON in the folder's
    ``marker_name`` file, and a folder whose marker holds the same parameters is kept as is.

    Raises:
        CdoError: ``root`` is a file, or a class folder holds other content and not ``overwrite``.
    """
    root = Path(root).expanduser()
    if root.exists() and not root.is_dir():
        raise CdoError(f"{what} dataset root {root} is a file: choose a folder path")
    start = time.perf_counter()
    for name in names:
        params = {**base, "class": name}
        folder = root / name
        marker = folder / marker_name
        if marker.is_file() and _read_marker(marker) == params:
            log.info("%s class %s is up to date in %s", what, name, folder)
            continue
        if folder.exists() and any(folder.iterdir()):
            if not overwrite:
                raise CdoError(
                    f"{folder} already exists with other content: choose an empty folder "
                    "or pass overwrite=True (--overwrite) to replace it"
                )
            shutil.rmtree(folder)
        make_class(folder, name, params)
        marker.write_text(json.dumps(params, sort_keys=True) + "\n")
        log.info("wrote %s class %s to %s", what, name, folder)
    log.info("%s dataset ready in %s (%.1f s)", what, root, time.perf_counter() - start)
    return root


def _read_marker(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def generator_parser(module: str, doc: Optional[str], classes_help: str, **counts: int) -> argparse.ArgumentParser:
    """The options a dataset generator CLI shares: OUT_DIR, --classes, --seed, --size, the counts, --overwrite."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=(doc or "").split("\n")[0])
    parser.add_argument("out_dir", nargs="?", type=Path, help="output folder")
    parser.add_argument("--classes", nargs="+", help=classes_help)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    for name, default in counts.items():
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=default)
    parser.add_argument("--overwrite", action="store_true", help="replace existing class folders")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI: ``python -m cdo_train.data.demo OUT_DIR [options]``; returns the exit status."""
    parser = generator_parser("cdo_train.data.demo", __doc__,
                              f"demo classes (default: {' '.join(DEFAULT_DEMO_CLASSES)})",
                              n_train=48, n_test_good=8, n_test_defect=16)
    parser.add_argument("--hard", action="store_true", help="include classes registered as hard")
    parser.add_argument("--defect-strength", type=float, default=1.0)
    parser.add_argument("--photo", action="store_true",
                        help="simulate a line camera: lighting gradient, vignetting, defocus, sensor noise, JPEG")
    parser.add_argument("--list", action="store_true", help="list demo classes and defect types, then exit")
    args = parser.parse_args(argv)
    if args.list:
        for name in demo_classes(hard=True):
            c = DEMO_CLASSES.get(name)
            print(f"{name:8s} {'hard ' if c.hard else ''}{c.description}; defects: {', '.join(c.defects)}")
        return 0
    if args.out_dir is None:
        parser.error("OUT_DIR is required")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        root = make_demo_dataset(
            args.out_dir, classes=args.classes, n_train=args.n_train, n_test_good=args.n_test_good,
            n_test_defect=args.n_test_defect, size=args.size, seed=args.seed, hard=args.hard,
            defect_strength=args.defect_strength, overwrite=args.overwrite, photo=args.photo,
        )
    except CdoError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    print(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
