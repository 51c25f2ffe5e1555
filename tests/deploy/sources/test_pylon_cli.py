"""cdo-inspect --source pylon through the real console script, against pylon's camera emulator."""

from __future__ import annotations

import re
import signal
import sys
import subprocess

import pytest

from tests.deploy.sources.conftest import EMU_ENV


def one_line_error(r) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in r.stderr, r.stderr
    return lines[0]


# RGB8 frames are the files' pixels: identical scores. Bayer: the emulator mosaics each file and the
# source demosaics it; on these per-pixel noise textures the tiny model's score (the brightest pixel,
# 0..1) moved by 0.033 (8 grey levels) when measured.
@pytest.mark.parametrize("fmt,tol", [("RGB8Packed", 1e-6), ("BayerRG8", 0.05)])
def test_camera_frames_score_like_the_files(pylon, tiny_bundle, part_folder, emu_pfs, tmp_path, cli, records,
                                            fmt, tol):
    r = cli("cdo-inspect", tiny_bundle, "--source", part_folder, "--once", "--out", tmp_path / "files", "-q")
    assert r.returncode == 0, r.stderr
    files = sorted(records(tmp_path / "files" / "results.jsonl"), key=lambda rec: rec["source"])
    out = tmp_path / "cam"
    r = cli("cdo-inspect", tiny_bundle, "--source", "pylon:0815-0001", "--pfs", emu_pfs(part_folder),
            "--pixel-format", fmt, "--trigger", "software", "--max-frames", len(files), "--out", out, "-q",
            env=EMU_ENV)
    assert r.returncode == 0, r.stderr
    cam = records(out / "results.jsonl")
    assert [rec["frame"] for rec in cam] == list(range(len(files)))
    assert [rec["decision"] for rec in cam] == [rec["decision"] for rec in files]
    diff = max(abs(c["score"] - f["score"]) for c, f in zip(cam, files))
    assert diff <= tol, diff
    assert all(rec["source_meta"]["camera"] == "0815-0001" for rec in cam)
    assert f"processed {len(files)} |" in r.stdout and "missed" not in r.stdout


def test_sigterm_finishes_the_frames_in_flight(pylon, tiny_bundle, part_folder, emu_pfs, tmp_path, cli_popen,
                                               records, wait):
    out = tmp_path / "out"
    p = cli_popen("cdo-inspect", tiny_bundle, "--source", "pylon", "--pfs", emu_pfs(part_folder), "--trigger",
                  "software", "--trigger-interval-ms", 15, "--out", out, "--overlays", "none", "-v", env=EMU_ENV)
    assert wait(lambda: len(records(out / "results.jsonl")) >= 10, 30)
    p.send_signal(signal.SIGTERM)
    stdout, stderr = p.communicate(timeout=30)
    assert p.returncode == 0, stderr
    recs = records(out / "results.jsonl")
    fired = re.search(r"(\d+) frames, (\d+) software triggers, 0 missed", stderr)
    assert fired, stderr
    assert int(fired.group(1)) == int(fired.group(2)) == len(recs)  # every trigger fired got its record
    assert [rec["frame"] for rec in recs] == list(range(len(recs))) and all(rec["error"] is None for rec in recs)
    assert f"processed {len(recs)} |" in stdout


@pytest.mark.parametrize("args,match", [
    (["--source", "pylon:nope"], r"no pylon camera with serial number or name 'nope'; found 2: 0815-0000 \(Emulation\), "
                                 r"0815-0001 \(Emulation\)"),
    (["--source", "pylon", "--exposure-us", "-5"], r"--exposure-us -5 µs out of range for ExposureTime on camera "
                                                    r"Emulation 0815-0000: 1\.\.1e\+07 µs"),
])
def test_camera_mistakes_are_one_line_errors(pylon, tiny_bundle, tmp_path, cli, args, match):
    r = cli("cdo-inspect", tiny_bundle, *args, "--out", tmp_path / "out", env=EMU_ENV)
    assert re.search(match, one_line_error(r)), r.stderr


@pytest.mark.parametrize("args,match", [
    (["--pixel-format", "YUV411"], r"--pixel-format YUV411: not offered by camera .*; choose one of Mono8, Mono10"),
    (["--trigger", "line9"], r"--trigger Line9: not offered by camera .*; choose one of Software, Line1"),
    (["--roi", "64x"], r"bad --roi '64x'"),
    (["--trigger", "software", "--trigger-edge", "falling"], r"--trigger-edge applies to hardware triggers"),
])
def test_camera_option_mistakes_in_process(pylon, tiny_bundle, tmp_path, args, match):
    from click.testing import CliRunner

    from cdo_deploy.cli import inspect_main

    r = CliRunner().invoke(inspect_main, [str(tiny_bundle), "--source", "pylon", *args, "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and re.search(match, r.output), r.output
    assert r.output.startswith("Error: ") and len(r.output.strip().splitlines()) == 1


def test_camera_options_on_another_source_are_an_error(tiny_bundle, part_folder, tmp_path, cli):
    r = cli("cdo-inspect", tiny_bundle, "--source", part_folder, "--exposure-us", "2000", "--out", tmp_path / "o")
    assert "camera options (--trigger, --exposure-us, --pfs, ...) apply to --source pylon" in one_line_error(r)


def test_without_pypylon_the_error_names_the_extra(tiny_bundle, tmp_path):
    # runs with or without pypylon installed: the import is made to fail as on a line PC without it
    code = ("import sys; sys.modules['pypylon'] = None; from cdo_deploy.cli import inspect_entry; "
            "sys.argv = ['cdo-inspect', *sys.argv[1:]]; inspect_entry()")
    r = subprocess.run([sys.executable, "-c", code, str(tiny_bundle), "--source", "pylon", "--out",
                        str(tmp_path / "o")], capture_output=True, text=True, timeout=60)
    line = one_line_error(r)
    assert "--source pylon needs pypylon" in line and "pip install 'cdo[pylon]'" in line
