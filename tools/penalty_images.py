"""Natural images that are not the part, for ``cdo-train --penalty-dir`` (the off-distribution penalty).

Random square crops of the photos that ship with scikit-image and that neither the photo suite
(:data:`cdo_train.data.photo_suite.SOURCES`: its parts and the donors of its foreign material) nor the
check of the work (scikit-image's held-out six) uses: a clock, a printed page, text, a fundus
micro-photograph and a motorcycle (both stereo views). Deterministic for a seed.

Usage:
    python tools/penalty_images.py result/penalty_images              # 64 crops, 256 px
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

#: scikit-image photos never used here: held out to check the work (the developers' guide)
HELD_OUT = ("brick", "grass", "gravel", "immunohistochemistry", "coffee", "coins")
#: the penalty's photos: ``skimage.data`` name -> index into a tuple it returns (None: not a tuple)
PHOTOS = {"clock": None, "page": None, "text": None, "microaneurysms": None,
          "stereo_motorcycle": (0, 1)}


def photos() -> dict[str, np.ndarray]:
    """The penalty's source photos as RGB uint8 arrays, by name."""
    from skimage import data

    from cdo_train.data.photo_suite import SOURCES

    used = set(SOURCES) | set(HELD_OUT) | {"cat"}  # skimage's cat is the suite's chelsea
    out = {}
    for name, parts in PHOTOS.items():
        assert name not in used, name
        image = getattr(data, name)()
        views = [image[i] for i in parts] if parts is not None else [image]
        for i, view in enumerate(views):
            view = np.asarray(view)
            if view.ndim == 2:
                view = np.repeat(view[..., None], 3, axis=2)
            out[f"{name}{'_' + str(i) if len(views) > 1 else ''}"] = view[..., :3].astype(np.uint8)
    return out


def crops(sources: dict[str, np.ndarray], count: int, size: int, seed: int) -> list[tuple[str, np.ndarray]]:
    """``count`` random square crops (a side of 1/4 to all of the shorter edge), mirrored at random,
    resized to ``size``; they go round the photos in turn."""
    rng = np.random.default_rng(seed)
    names = sorted(sources)
    out = []
    for k in range(count):
        name = names[k % len(names)]
        image = sources[name]
        h, w = image.shape[:2]
        side = int(rng.integers(max(16, min(h, w) // 4), min(h, w) + 1))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = image[y:y + side, x:x + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
        out.append((f"{k:03d}_{name}.png", cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=interp)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="the folder to write (created)")
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, image in crops(photos(), args.count, args.size, args.seed):
        cv2.imwrite(str(args.out / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    print(f"{args.count} images in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
