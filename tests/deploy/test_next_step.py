"""The walkthrough's hand-over from cdo-export to cdo-inspect (issue #22): the ``next:`` line that
cdo-export prints, with the image folder filled in, ends in an inspected folder; export shows its
progress on a terminal, says when a run is too weak to deploy, and refuses a folder that is no run
in one line."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

from tests.conftest import cli as console_script
from tests.conftest import run_cli
from tests.ptys import run_in_pty


def test_the_printed_next_command_ends_in_an_inspected_folder(trained_run, tiny_demo_root, tmp_path):
    work = tmp_path / "line"
    new_parts = work / "new_parts"
    new_parts.mkdir(parents=True)
    for p in sorted((tiny_demo_root / "weave" / "test").glob("*/*.png")):
        shutil.copy(p, new_parts / f"{p.parent.name}_{p.name}")
    rc, out, err = run_in_pty([console_script("cdo-export"), str(trained_run), "-o", "bracket_bundle"], cwd=work)
    assert rc == 0, err
    assert "cdo-export:" in err and "stage" in err  # the progress bar, on the terminal
    # a 2-step random-teacher run: said at the end, where the user reads
    assert "WARNING: the run trained 2 steps, far below the default 1000" in err
    assert re.search(r"thresholds image [-\d.e+]{1,10} pixel [-\d.e+]{1,10} ", out), out  # not 16 digits
    nexts = [line for line in out.splitlines() if line.startswith("next: ")]
    assert nexts == ["next: cdo-inspect bracket_bundle --source IMAGES_OR_FOLDER --once --out inspected"]
    command = shlex.split(nexts[0][len("next: "):].replace("IMAGES_OR_FOLDER", "new_parts"))
    r = subprocess.run([console_script(command[0]), *command[1:]], cwd=work, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    records = [json.loads(x) for x in (work / "inspected" / "results.jsonl").read_text().splitlines()]
    assert len(records) == len(list(new_parts.iterdir()))
    assert all(rec["decision"] in ("OK", "NG") and rec["error"] is None for rec in records)
    assert sorted(p.name for p in new_parts.iterdir()) == sorted(Path(rec["source"]).name for rec in records)


def test_export_of_a_folder_that_is_no_run_says_so_in_one_line(tiny_demo_root, tmp_path):
    r = run_cli("cdo-export", tiny_demo_root / "weave", "-o", tmp_path / "bundle", timeout=120)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"Error: {tiny_demo_root / 'weave'} is not a cdo-train run folder (no config.yaml, no model.safetensors); "
        "give the folder cdo-train printed last (<output-dir>/<backbone>-<curriculum>/<class>/seed_<n>)"]
    assert not (tmp_path / "bundle").exists()
