"""``Sample``: one image of a dataset, as the layouts (:mod:`.layouts`, :mod:`.folders`) list it.

Example:
    >>> Sample(Path("test/crack/000.png"), 1, Path("ground_truth/crack/000_mask.png"), "crack").label
    1
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

__all__ = ["Sample"]


@dataclass(frozen=True)
class Sample:
    """One image of a dataset.

    Attributes:
        path: the image file.
        label: 0 = good, 1 = defective.
        mask_path: ground-truth mask file for a defective image, ``None`` for a good one.
        defect_type: the test sub-folder name (``"good"`` for good images).
    """

    path: Path
    label: int
    mask_path: Optional[Path]
    defect_type: str
