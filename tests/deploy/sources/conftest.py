"""Fixtures for the pylon source tests: Basler's camera emulator (``PYLON_CAMEMU``) and its image files.

The emulator is part of pypylon's bundled pylon runtime: ``PYLON_CAMEMU=N`` (read
when pylon initialises, i.e. at the first ``import pypylon``) creates N emulated
cameras, serials ``0815-0000``, ``0815-0001``... With ``ImageFileMode On`` and
``TestImageSelector Off`` it serves the PNG/JPEG files of ``ImageFilename`` (one
file, or a folder in name order) as frames in the chosen pixel format; its grey
value is ``0.25 R + 0.625 G + 0.125 B`` (measured: an exact least-squares fit).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

os.environ.setdefault("PYLON_CAMEMU", "2")
EMU_ENV = {**os.environ, "PYLON_CAMEMU": "2"}
EMU_SERIALS = ("0815-0000", "0815-0001")
PFS_MAGIC = "# {05D8C294-F295-4dfb-9D01-096BD04049F4}"


@pytest.fixture(scope="session")
def pylon():
    """``pypylon.pylon`` with two emulated cameras; the test skips when pypylon is not installed."""
    pytest.importorskip("pypylon", reason="pypylon not installed (pip install 'cdo[pylon]'; make test does it)")
    from pypylon import pylon as _pylon

    found = [d.GetSerialNumber() for d in _pylon.TlFactory.GetInstance().EnumerateDevices()]
    if not set(EMU_SERIALS) <= set(found):
        pytest.skip(f"pylon camera emulator not available (PYLON_CAMEMU=2 gave {found})")
    return _pylon


def write_pfs(path: Path, images: Path | str, **features: object) -> Path:
    """A minimal pylon features file: serve ``images`` (file or folder) plus ``features``."""
    lines = [PFS_MAGIC, f"ImageFilename\t{images}", "ImageFileMode\tOn", "TestImageSelector\tOff"]
    lines += [f"{k}\t{v}" for k, v in features.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def emu_pfs(tmp_path):
    """``emu_pfs(images, **features)`` -> path of a features file for the emulator."""
    counter = iter(range(1000))
    return lambda images, **f: write_pfs(tmp_path / f"emu{next(counter)}.pfs", images, **f)


@pytest.fixture(scope="session")
def smooth_image(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A smooth colour test card (120x160 BGR PNG; demosaicing can reproduce it closely)."""
    yy, xx = np.mgrid[0:120, 0:160]
    img = np.stack([(xx * 1.5) % 256, (yy * 2.0) % 256, 128 + 60 * np.sin(xx / 15.0)], -1).astype(np.uint8)
    path = tmp_path_factory.mktemp("card") / "card.png"
    cv2.imwrite(str(path), img)
    return path, img


@pytest.fixture
def part_folder(tmp_path, part) -> Path:
    """Six small parts (PNG, 96x128; 1, 3 and 4 NG) in one flat folder, in name order."""
    d = tmp_path / "parts"
    d.mkdir()
    for i in range(6):
        cv2.imwrite(str(d / f"{i:02d}.png"), part(i in (1, 3, 4), seed=i))
    return d
