"""Resume is keyed by what produced the results: model file hash + thresholds; --fresh; --once on nothing."""

from __future__ import annotations

import json
import shutil

import pytest


def _one_line_error(r) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in r.stderr, r.stderr
    return lines[0]


@pytest.fixture
def other_bundle(tiny_bundle, tmp_path, tiny):
    """The same kind of model, different weights (a 4x brighter map): another bundle."""
    import onnx

    from cdo_deploy.bundle import BundleMeta

    d = tmp_path / "other_bundle"
    shutil.copytree(tiny_bundle, d)
    proto = onnx.load(str(d / "model.onnx"))
    proto.graph.initializer[0].float_data[0] = 64.0
    onnx.save(proto, str(d / "model.onnx"))
    BundleMeta.from_dict(json.loads((d / "model.json").read_text())).save(d)  # a properly re-exported bundle
    return d


def test_same_bundle_resumes_and_counts_what_it_skipped(tiny_bundle, demo_images, tmp_path, cli, records):
    src, expected = demo_images
    out = tmp_path / "out"
    assert cli("cdo-inspect", tiny_bundle, "--source", src, "--once", "--out", out).returncode == 0
    rec = records(out / "results.jsonl")[0]
    assert len(rec["model_sha256"]) == 64 and rec["image_threshold"] == 0.75 and len(rec["id"]) == 24
    r = cli("cdo-inspect", tiny_bundle, "--source", src, "--once", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "processed 0" in r.stdout and "skipped 6 already processed" in r.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processed"] == 0 and summary["skipped_already_processed"] == 6
    assert summary["records_total"] == 6
    history = [json.loads(ln) for ln in (out / "summaries.jsonl").read_text().splitlines()]
    assert [h["processed"] for h in history] == [6, 0]  # the first run's summary is kept


def test_another_bundle_or_other_thresholds_are_refused_and_fresh_starts_anew(
        tiny_bundle, other_bundle, demo_images, tmp_path, cli, records):
    """The defect: another bundle into the same OUT processed 0 images and said nothing."""
    src, expected = demo_images
    out = tmp_path / "out"
    assert cli("cdo-inspect", tiny_bundle, "--source", src, "--once", "--out", out).returncode == 0
    first = (out / "results.jsonl").read_text()
    for extra in ([other_bundle], [tiny_bundle, "--threshold", "0.6"]):
        line = _one_line_error(cli("cdo-inspect", *extra, "--source", src, "--once", "--out", out))
        assert "another bundle or other thresholds" in line and "--out" in line and "--fresh" in line
        assert (out / "results.jsonl").read_text() == first
    r = cli("cdo-inspect", other_bundle, "--source", src, "--once", "--out", out, "--fresh")
    assert r.returncode == 0, r.stderr
    assert len(records(out / "results.jsonl")) == len(expected) and "processed 6" in r.stdout
    (previous,) = (out / "previous").iterdir()
    assert (previous / "results.jsonl").read_text() == first  # moved aside, never deleted
    assert {rec["decision"] for rec in records(out / "results.jsonl")} == {"NG"}  # the other model's verdicts


def test_results_of_an_older_cdo_without_model_hash_are_refused(tiny_bundle, demo_images, tmp_path, cli):
    src, _ = demo_images
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.jsonl").write_text(json.dumps({"source": "/x/a.png", "decision": "OK"}) + "\n")
    line = _one_line_error(cli("cdo-inspect", tiny_bundle, "--source", src, "--once", "--out", out))
    assert "no model recorded" in line and "--fresh" in line


@pytest.mark.parametrize("content", [[], ["notes.txt", "readme.md"]])
def test_once_on_a_folder_without_images_is_an_error(tiny_bundle, tmp_path, cli, content):
    """The defect: --once on an empty or non-image folder printed 'processed 0' and exited 0."""
    src = tmp_path / "in"
    src.mkdir()
    for name in content:
        (src / name).write_text("x")
    line = _one_line_error(cli("cdo-inspect", tiny_bundle, "--source", src, "--once", "--out", tmp_path / "o"))
    assert "no image files" in line
