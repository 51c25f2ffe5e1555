"""tools/peers.py: run discovery, tables, one metric function for peers and cdo runs; the anomalib path.

The anomalib tests skip where anomalib is not installed (the project's .venv); they run in
.venv-peers (``make peers-venv``; ``.venv-peers/bin/python -m pytest tests/tools/test_peers.py``).
"""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from cdo_deploy.errors import CdoError

from tools import peers

needs_anomalib = pytest.mark.skipif(
    importlib.util.find_spec("anomalib") is None,
    reason="anomalib is not installed here (make peers-venv; .venv-peers/bin/python -m pytest tests/tools/test_peers.py)",
)


def _fake_run(root: Path, exp: str, cls: str, seed: int, finished: bool = True) -> Path:
    run = root / exp / cls / f"seed_{seed}"
    run.mkdir(parents=True)
    for name in ("model_config.json", "model.safetensors") + (("summary.json",) if finished else ()):
        (run / name).write_text("{}")
    return run


def test_find_cdo_runs_takes_run_experiment_or_output_folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _fake_run(a, "default", "turf", 111)
    _fake_run(a, "default", "turf", 112)
    _fake_run(a, "default", "weave", 111)  # class not asked for
    _fake_run(a, "default", "cells", 111, finished=False)
    (_fake_run(a, "default", "cells", 112) / "summary.json").write_text('{"status": "interrupted"}')  # Ctrl-C
    single = _fake_run(b, "hard", "cells", 111)
    runs = peers.find_cdo_runs([a, single], ["turf", "cells"])
    assert [(r.method, r.class_name, r.seed) for r in runs] == [
        ("cdo-default", "turf", 111), ("cdo-default", "turf", 112), ("cdo-hard", "cells", 111)]
    assert peers.find_cdo_runs([a / "default"], ["turf"]) == runs[:2]


@pytest.mark.parametrize("case, message", [("missing", "no such folder"), ("empty", "no finished cdo-train run"),
                                           ("twice", "two runs of experiment default")])
def test_find_cdo_runs_user_errors(tmp_path, case, message):
    run = _fake_run(tmp_path / "out", "default", "turf", 111)
    paths = {"missing": [tmp_path / "nope"], "empty": [tmp_path / "out"], "twice": [tmp_path / "out", run]}[case]
    with pytest.raises(CdoError, match=message):
        peers.find_cdo_runs(paths, ["cells"] if case == "empty" else ["turf"])


def _result(method, cls, seed, value, fit=10.0):
    return {"method": method, "class_name": cls, "seed": seed, "threads": 1, "fit_seconds": fit,
            "fit_cpu_seconds": fit / 2, "infer_ms_per_image": 5.0, "infer_cpu_ms_per_image": 4.0,
            "metrics": {"image_auroc": value, "pixel_auroc": value, "aupro": value / 2}}


def test_tables_pair_cdo_with_patchcore_per_seed_and_show_missing_runs(tmp_path):
    results = [_result("patchcore", "turf", 111, 0.8), _result("patchcore", "turf", 112, 0.6),
               _result("patchcore", "cells", 111, 0.7), _result("patchcore", "cells", 112, 0.7),
               _result("cdo-default", "turf", 111, 0.9), _result("cdo-default", "turf", 112, 0.9),
               _result("cdo-default", "cells", 111, 0.6)]  # cells seed 112 missing
    table = peers.build_tables(results)[0]
    assert table.metric == "image_auroc" and table.baseline == "patchcore"
    assert table.rows == ["patchcore", "cdo-default"]
    assert table.cells[("patchcore", "turf")].mean == pytest.approx(0.7)
    assert table.cells[("cdo-default", "cells")].n == 1
    # mean column: per-seed class average over complete seeds; Δ paired on seed 111 only
    assert table.cells[("cdo-default", "mean")].values == {111: pytest.approx(0.75)}
    assert table.deltas["cdo-default"].mean == pytest.approx(0.75 - 0.75)
    md = peers.write_report(results, tmp_path, "t")
    assert (tmp_path / "peers.md").read_text() == md and (tmp_path / "peers.png").stat().st_size > 0
    assert "Δ mean vs patchcore" in md and "| **0.900 ± 0.000 (2)** |" in md  # cdo best on turf
    assert "| patchcore | 4 | 10.0 | 5.0 | 5.0 | 4.0 | - | 1 |" in md


def test_cdo_run_is_scored_by_the_projects_metric_function(trained_run, tiny_demo_root, tmp_path, capsys):
    """No peer, one cdo run: the JSON's metrics are compute_metrics of load_run().predict, as cdo-train's own."""
    from cdo_train.api import load_run
    from cdo_train.data import list_samples
    from cdo_train.training.evaluation import load_images
    from cdo_train.training.metrics import compute_metrics
    from cdo_train.training.run_folder import read_metrics

    args = ["--data-root", str(tiny_demo_root), "--class-name", "weave", "--image-size", "64", "--no-peers",
            "--cdo-runs", str(trained_run.parent.parent), "--out", str(tmp_path)]
    assert peers.main(args) == 0
    path = tmp_path / "cdo-resnet18-none" / "weave" / "seed_111.json"
    result = json.loads(path.read_text())
    test = load_images(list_samples("mvtec2d", tiny_demo_root, "weave", "test"), 64)
    maps, scores = load_run(trained_run).predict(test.images)
    assert result["metrics"] == compute_metrics(test.labels, scores, test.masks, maps[:, 0])
    own = read_metrics(trained_run)[-1]
    assert all(result["metrics"][k] == pytest.approx(own[k], abs=1e-9) for k in ("image_auroc", "pixel_auroc", "aupro"))
    assert "cdo-resnet18-none" in capsys.readouterr().out
    stamp = path.stat().st_mtime_ns
    assert peers.main(args) == 0 and path.stat().st_mtime_ns == stamp  # same configuration: reused
    assert peers.main(args + ["--image-size", "32"]) == 0  # maps resized to the 32 px masks
    assert json.loads(path.read_text())["config"]["image_size"] == 32


def test_a_stored_peer_result_is_reused_though_json_turned_its_tuples_into_lists(tmp_path):
    cfg = peers.peer_models.PeerConfig()
    assert any(isinstance(v, tuple) for v in cfg.to_dict().values())  # what made every run refit
    job = peers.Job(tmp_path, "mvtec2d", cfg, tmp_path)
    config = {"peer": "patchcore", "anomalib": "2.7.0", **cfg.to_dict()}
    path = tmp_path / "seed_111.json"
    path.write_text(json.dumps({"config": config, "metrics": {"image_auroc": 0.5}}))
    assert job.reused(path, config)["metrics"] == {"image_auroc": 0.5}
    assert job.reused(path, {**config, "coreset_ratio": 0.2}) is None
    assert peers.Job(tmp_path, "mvtec2d", cfg, tmp_path, force=True).reused(path, config) is None


def test_missing_anomalib_is_a_one_line_error(tiny_demo_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "anomalib", None)  # import anomalib -> ImportError
    assert peers.main(["--data-root", str(tiny_demo_root), "--class-name", "weave", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("Error: anomalib is not installed") and "make peers-venv" in err and "\n" not in err


@needs_anomalib
def test_teacher_inside_patchcore_has_the_projects_weights():
    """anomalib's timm extractor gives exactly cdo's teacher features at strides 8 and 16 on a real photo."""
    import torch
    from skimage import data

    from cdo_train.data import resize
    from cdo_train.model.cdo_model import CDOModel, ModelConfig

    cfg = peers.peer_models.PeerConfig()
    model = peers.peer_models.build_peer("patchcore", cfg).eval()
    image = resize(data.chelsea(), 256)[None]
    x = next(peers.peer_models._batches(image, cfg))
    with torch.no_grad():
        theirs = model.feature_extractor(x)
        ours, _ = CDOModel(ModelConfig()).eval().features(torch.from_numpy(image).permute(0, 3, 1, 2).float() / 255)
    assert torch.equal(theirs[2], ours[1]) and torch.equal(theirs[3], ours[2])
    assert ours[1].abs().mean() > 0.1  # not an all-zero network


@needs_anomalib
def test_patchcore_and_padim_run_offline_and_agree_with_anomalibs_metrics(tiny_demo_root, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = ["--data-root", str(tiny_demo_root), "--class-name", "grain", "--image-size", "64", "--peer", "patchcore",
            "--peer", "padim", "--anomalib-metrics", "--save-maps", "--out", str(tmp_path)]
    assert peers.main(args) == 0
    for peer in ("patchcore", "padim"):
        r = json.loads((tmp_path / peer / "grain" / "seed_111.json").read_text())
        assert r["fit_seconds"] > 0 and r["infer_ms_per_image"] > 0 and r["config"]["anomalib"].startswith("2.")
        for key in ("image_auroc", "pixel_auroc", "aupro"):
            assert r["metrics"][key] == pytest.approx(r["anomalib_metrics"][key], abs=1e-5), (peer, key)
        saved = np.load(tmp_path / peer / "grain" / "seed_111.npz")
        assert saved["maps"].shape == (8, 64, 64)
    first = np.load(tmp_path / "patchcore" / "grain" / "seed_111.npz")["maps"]
    assert peers.main(args + ["--force"]) == 0  # the seed fixes the coreset: same maps again
    assert np.array_equal(np.load(tmp_path / "patchcore" / "grain" / "seed_111.npz")["maps"], first)
