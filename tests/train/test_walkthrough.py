"""The "your own parts" walkthrough, run as written on folders of generated images.

The commands live in one file, ``docs/snippets/walkthrough.sh``: the docs page includes it
(pymdownx.snippets), README.md shows it in the block after the ``<!-- walkthrough`` marker (a test
checks the two are equal) and this test reads it and runs its commands in bash, in order, in an
empty folder holding only ``my_parts/`` and ``new_parts/``. The one
change: ``cdo-train`` gets ``--image-size 32 --steps 4 --eval-every 4 --batch-size 4 --device cpu``
appended so that the test takes seconds, not the default 1000 steps at 256 px. Every
process runs with the network blocked (tests/netguard.py) and must not try it once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from cdo_train.data import make_demo_dataset
from tests.netguard import blocked_env

REPO = Path(__file__).resolve().parents[2]
SNIPPET = REPO / "docs" / "snippets" / "walkthrough.sh"
FAST = " --image-size 32 --steps 4 --eval-every 4 --batch-size 4 --device cpu"


def walkthrough_commands() -> list[str]:
    """The commands of the walkthrough snippet, continuation lines joined."""
    block = SNIPPET.read_text()
    commands, current = [], ""
    for line in block.splitlines():
        if not line.strip():
            continue
        current += line.strip().rstrip("\\").rstrip() + " " if line.rstrip().endswith("\\") else line.strip()
        if not line.rstrip().endswith("\\"):
            commands.append(current.strip())
            current = ""
    return commands


def test_readme_shows_the_walkthrough_snippet():
    """README.md cannot include files, so its walkthrough block must equal the snippet the docs include."""
    readme = (REPO / "README.md").read_text()
    assert "<!-- walkthrough" in readme, "README.md lost its walkthrough marker"
    block = readme.split("<!-- walkthrough", 1)[1].split("```", 2)[1]
    block = block.split("\n", 1)[1]  # drop the fence's language tag line
    assert block == SNIPPET.read_text(), "README.md's walkthrough block differs from docs/snippets/walkthrough.sh"
    page = (REPO / "docs" / "getting-started" / "walkthrough.md").read_text()
    assert '--8<-- "walkthrough.sh"' in page


def _user_folders(work: Path, gen: Path) -> None:
    """my_parts/{good,defect,defect_masks,calib_good} and new_parts/ from a generated MVTec-layout class."""
    weave = gen / "weave"
    good = sorted((weave / "train" / "good").glob("*.png"))
    for i, p in enumerate(good):
        dest = work / "my_parts" / ("good" if i < 12 else "calib_good")
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, dest / p.name)
    (work / "new_parts").mkdir()
    for i, p in enumerate(sorted((weave / "test").glob("*/*.png"))):
        kind = p.parent.name
        if kind != "good" and i % 3:  # two of every three defective images: labelled defects for training's test
            (work / "my_parts" / "defect" / kind).mkdir(parents=True, exist_ok=True)
            shutil.copy(p, work / "my_parts" / "defect" / kind / p.name)
            (work / "my_parts" / "defect_masks" / kind).mkdir(parents=True, exist_ok=True)
            mask = weave / "ground_truth" / kind / f"{p.stem}_mask.png"
            shutil.copy(mask, work / "my_parts" / "defect_masks" / kind / mask.name)
        else:  # the rest, and every good test image, arrive later from the line
            shutil.copy(p, work / "new_parts" / f"{kind}_{p.name}")


def test_readme_walkthrough_ends_in_an_inspected_folder(tmp_path):
    commands = walkthrough_commands()
    assert [c.split()[0] for c in commands] == ["cdo-train", "cdo-export", "cdo-inspect"]
    gen = make_demo_dataset(tmp_path / "gen", classes=["weave"], n_train=22, n_test_good=3, n_test_defect=6, size=64)
    work = tmp_path / "work"
    work.mkdir()
    _user_folders(work, gen)
    n_new = len(list((work / "new_parts").iterdir()))
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])  # the console scripts
    env, attempts = blocked_env(tmp_path, {**os.environ, "OMP_NUM_THREADS": "1", "PATH": path})
    outputs = []
    for command in commands:
        if command.startswith("cdo-train"):
            command += FAST
        r = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, f"{command}\n{r.stderr}"
        assert "Traceback" not in r.stderr
        outputs.append(r)
    run = work / "runs" / "tf_efficientnet_lite0-none" / "bracket" / "seed_111"
    assert outputs[0].stdout.strip().splitlines()[-1].strip() == str(run)  # the folder cdo-export takes
    records = [json.loads(x) for x in (work / "inspected" / "results.jsonl").read_text().splitlines()]
    assert len(records) == n_new and all(r["decision"] in ("OK", "NG") and not r.get("error") for r in records)
    calib = json.loads((run / "calibration.json").read_text())
    assert calib["source"] == "f1_optimal_test" and calib["n"] == 10 and calib["reliable"]
    assert calib["good_images"] == str(work / "my_parts" / "calib_good")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["data_root"] == str(work / "my_parts") and cfg["normal_dir"] == str(work / "my_parts" / "good")
    # paths are stored absolute: an int8 export from another folder still finds the training images, and the
    # int8 check its calibration and test images (--accept-int8: this 64 px few-step model may fail the check)
    other = tmp_path / "elsewhere"
    other.mkdir()
    r = subprocess.run(["cdo-export", str(run), "-o", "b8", "--int8", "--calib-images", "4", "--accept-int8"],
                       cwd=other, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    assert "int8 calibrated on 4 good images" in r.stderr
    check = json.loads((other / "b8" / "model.json").read_text())["int8_check"]
    assert check["holdout"]["n"] == 10 and check["test"]["n"] > 0, check  # calib_good and the labelled test set
    assert attempts.read_text() == ""  # training, export and inspection without one network call
