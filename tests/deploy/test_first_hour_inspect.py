"""A new user's first runs of cdo-inspect and cdo-bench (issue #22), through the real console scripts:
watch mode says what it skips, --once leaves the user's folder as it was, errors name the real
problem, the summary says where things went and what its latency means."""

from __future__ import annotations

import queue
import re
import shutil
import signal
import threading
from pathlib import Path

import cv2

from tests.conftest import cli as console_script
from tests.ptys import run_in_pty


def _folder(tmp_path: Path, part, n: int = 4) -> Path:
    src = tmp_path / "new_parts"
    src.mkdir()
    for i in range(n):
        cv2.imwrite(str(src / f"{i:03d}.png"), part(i % 2 == 1, seed=i))
    return src


def test_watch_mode_says_the_existing_images_are_skipped_and_how_to_include_them(tiny_bundle, tmp_path, part,
                                                                                  cli_popen):
    src = _folder(tmp_path, part)
    p = cli_popen("cdo-inspect", tiny_bundle, "--source", src, "--out", tmp_path / "out", "--no-status")
    lines: queue.SimpleQueue[str] = queue.SimpleQueue()
    threading.Thread(target=lambda: [lines.put(ln) for ln in p.stderr], daemon=True).start()
    seen = ""
    while "skipped" not in seen:
        seen = lines.get(timeout=60)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=60)
    assert "4 image(s) already there are skipped" in seen
    assert "--once" in seen and "--include-existing" in seen
    assert p.returncode == 0 and "processed 0" in out


def test_once_leaves_the_source_untouched_and_names_non_images(tiny_bundle, tmp_path, part, cli, records):
    src = _folder(tmp_path, part)
    (src / "notes.png").write_text("operator notes, saved under an image name")
    jpg = cv2.imencode(".jpg", part(False, seed=9))[1].tobytes()
    (src / "cut.jpg").write_bytes(jpg[: len(jpg) // 2])
    before = sorted(p.name for p in src.iterdir())
    out = tmp_path / "out"
    r = cli("cdo-inspect", tiny_bundle, "--source", src, "--once", "--out", out)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in src.iterdir()) == before  # nothing moved out of the user's folder
    assert sorted(p.name for p in (out / "quarantine").iterdir()) == ["cut.jpg", "notes.png"]  # copies
    recs = {Path(rec["source"]).name: rec for rec in records(out / "results.jsonl")}
    assert recs["notes.png"]["error"].startswith("not an image")
    assert "truncated" in recs["cut.jpg"]["error"]
    assert f"quarantine: {out / 'quarantine'} (2 unreadable file(s), copied" in r.stdout
    # --fail-on-errors: the same folder (new output) ends with status 1 and says why
    r = cli("cdo-inspect", tiny_bundle, "--source", src, "--once", "--out", tmp_path / "out2", "--fail-on-errors")
    assert r.returncode == 1 and "processed 6" in r.stdout
    assert r.stderr.splitlines()[-1].startswith("Error: 2 image(s) could not be inspected")


def test_summary_says_where_results_and_overlays_went_and_what_p50_means(tiny_bundle, tmp_path, part, cli):
    src = _folder(tmp_path, part)
    out = tmp_path / "inspected"
    r = cli("cdo-inspect", tiny_bundle, "--source", src, "--once", "--out", out)
    assert r.returncode == 0, r.stderr
    assert f"results: {out / 'results.jsonl'} (4 record(s)" in r.stdout
    assert f"overlays: {out / 'overlays'} (2 picture(s))" in r.stdout
    assert "queued at start" in r.stdout and "inference alone p50" in r.stdout and "cdo-bench" in r.stdout


def test_a_failed_inspect_leaves_no_empty_output_folder(tiny_bundle, tmp_path, cli):
    out = tmp_path / "out"
    r = cli("cdo-inspect", tiny_bundle, "--source", tmp_path / "nowhere", "--out", out)
    assert r.returncode == 1 and "source not found" in r.stderr
    assert not out.exists()


def test_a_bundle_without_model_onnx_says_so(tiny_bundle, tmp_path, part, cli):
    bundle = tmp_path / "copied_bundle"
    shutil.copytree(tiny_bundle, bundle)
    (bundle / "model.onnx").unlink()
    r = cli("cdo-inspect", bundle, "--source", _folder(tmp_path, part), "--once", "--out", tmp_path / "out")
    assert r.returncode == 1
    assert r.stderr.strip() == (f"Error: {bundle / 'model.onnx'} is missing (model.json lists it): copy the whole "
                                "bundle folder, or re-run cdo-export")


def test_help_lists_every_backend(cli):
    from cdo_deploy.backends import BACKENDS

    r = cli("cdo-inspect", "--help")
    assert r.returncode == 0
    flat = " ".join(r.stdout.split())
    assert all(name in flat.split("--backend TEXT", 1)[1].split("--device", 1)[0] for name in BACKENDS.list())


def test_bench_shows_progress_on_a_terminal_only(tiny_bundle, tmp_path, cli):
    args = [tiny_bundle, "--backend", "onnxruntime", "--batch", "1", "--warmup", "1", "--iters", "3"]
    rc, out, err = run_in_pty([console_script("cdo-bench")] + [str(a) for a in args] + ["--json", str(tmp_path / "a.json")],
                              timeout=120)
    assert rc == 0, err
    assert "cdo-bench: timing" in err and "4/4" in err
    r = cli("cdo-bench", *args, "--json", tmp_path / "b.json")
    assert r.returncode == 0 and "cdo-bench: timing" not in r.stderr + r.stdout


def _documented(doc: str) -> set[str]:
    return set(re.findall(r"^\| `([a-z_0-9]+)` \|", doc, re.M))


def test_every_results_jsonl_field_is_documented(tiny_bundle, tmp_path, part, cli, records):
    src = _folder(tmp_path, part)
    (src / "notes.png").write_text("not an image")  # an error record too
    out = tmp_path / "out"
    r = cli("cdo-inspect", tiny_bundle, "--source", src, "--once", "--out", out, "--overlays", "all")
    assert r.returncode == 0, r.stderr
    recs = records(out / "results.jsonl")
    keys = {k for rec in recs for k in rec}
    keys |= {k for rec in recs for region in rec["regions"] for k in region}
    keys |= {k for rec in recs for k in rec["latency_ms"]}
    assert {"overlay", "box", "kind", "total"} <= keys
    doc = (Path(__file__).resolve().parents[2] / "docs" / "reference" / "results_jsonl.md").read_text()
    assert keys <= _documented(doc), keys - _documented(doc)
    assert "`[x0, y0, x1, y1]`" in doc and "**exclusive**" in doc  # what the box numbers are
