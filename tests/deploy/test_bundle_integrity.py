"""Bundle integrity: every model file listed in model.json is checked against its sha256 at load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cdo_deploy import Inspector
from cdo_deploy.bundle import load_bundle_meta, sha256_file
from cdo_deploy.errors import CdoError


@pytest.fixture
def bundle(tiny_bundle, tmp_path) -> Path:
    d = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, d)
    return d


def _edit_json(bundle: Path, **changes) -> None:
    raw = json.loads((bundle / "model.json").read_text())
    raw.update(changes)
    (bundle / "model.json").write_text(json.dumps(raw))


def test_save_records_one_hash_per_listed_file_and_load_checks_them(bundle, tiny):
    meta = load_bundle_meta(bundle)
    assert meta.sha256 == {"model.onnx": sha256_file(bundle / "model.onnx")} and meta.onnx_sha256
    tiny.build_onnx(bundle / "model_int8.onnx")
    (bundle / "model_fp16.engine").write_bytes(b"engine bytes")
    meta.variants["int8"] = "model_int8.onnx"
    meta.engines["fp16"] = "model_fp16.engine"
    meta.save(bundle)
    again = load_bundle_meta(bundle)
    assert set(again.sha256) == {"model.onnx", "model_int8.onnx", "model_fp16.engine"}
    assert again.sha256["model_fp16.engine"] == sha256_file(bundle / "model_fp16.engine")


def test_a_model_swapped_for_another_of_the_same_size_is_refused(bundle, part, tmp_path, tiny):
    """The defect: a swapped model.onnx ran silently with the first model's thresholds."""
    other = tmp_path / "other.onnx"
    tiny.build_onnx(other)
    import onnx

    proto = onnx.load(str(other))
    proto.graph.initializer[0].float_data[0] = 64.0  # same input size, 4x brighter map: every part NG
    onnx.save(proto, str(bundle / "model.onnx"))
    with pytest.raises(CdoError, match=r"model\.onnx does not match its sha256 in model\.json"):
        Inspector(bundle, device="cpu")


def test_a_corrupted_variant_is_refused_when_it_is_loaded_and_does_not_stop_another(bundle, tiny):
    """cdo-inspect hashes only the model file it runs; cdo-bench, which runs them all, checks every one."""
    tiny.build_onnx(bundle / "model_fp16.onnx")
    meta = load_bundle_meta(bundle)
    meta.variants["fp16"] = "model_fp16.onnx"
    meta.save(bundle)
    Inspector(bundle, device="cpu").close()
    with open(bundle / "model_fp16.onnx", "r+b") as f:  # one flipped byte
        f.seek(40)
        b = f.read(1)
        f.seek(40)
        f.write(bytes([b[0] ^ 0xFF]))
    with Inspector(bundle, device="cpu", variant="fp32") as insp:
        assert insp.model_sha256 == meta.sha256["model.onnx"]
    with pytest.raises(CdoError, match="model_fp16.onnx does not match"):
        Inspector(bundle, device="cpu", variant="fp16")
    with pytest.raises(CdoError, match="model_fp16.onnx does not match"):
        load_bundle_meta(bundle)


@pytest.mark.parametrize("value", ["0" * 64, ""])
def test_a_zeroed_or_removed_hash_is_refused(bundle, value):
    _edit_json(bundle, onnx_sha256=value, sha256={"model.onnx": value})
    with pytest.raises(CdoError, match="does not match|records no sha256"):
        load_bundle_meta(bundle)


def test_a_listed_file_without_a_hash_is_refused(bundle):
    (bundle / "model_fp16.engine").write_bytes(b"engine built by an older cdo")
    _edit_json(bundle, engines={"fp16": "model_fp16.engine"})
    with pytest.raises(CdoError, match=r"model_fp16\.engine: model\.json records no sha256"):
        load_bundle_meta(bundle)
    meta = load_bundle_meta(bundle, verify=False)
    assert meta.engines == {"fp16": "model_fp16.engine"}


def test_cli_refuses_a_tampered_bundle_with_one_line(bundle, demo_images, tmp_path, cli):
    data = bytearray((bundle / "model.onnx").read_bytes())
    data[-1] ^= 0x01
    (bundle / "model.onnx").write_bytes(bytes(data))
    src, _ = demo_images
    for r in (cli("cdo-inspect", bundle, "--source", src, "--once", "--out", tmp_path / "o"),
              cli("cdo-bench", bundle, "--json", tmp_path / "b.json")):
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 1 and len(lines) == 1, r.stderr
        assert lines[0].startswith("Error: ") and "model.onnx does not match its sha256" in lines[0]
    assert not (tmp_path / "o" / "results.jsonl").exists()
