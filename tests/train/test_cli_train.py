"""`cdo-train` end to end through the real CLI in a subprocess."""

import json

import yaml

from tests.conftest import run_cli

FAST = ["--image-size", "64", "--batch-size", "4", "--epochs", "2", "--eval-every", "1", "--no-progress"]


def test_cdo_train_writes_a_complete_run(tiny_demo_root, tmp_path):
    out = tmp_path / "result"
    r = run_cli("cdo-train", "--data-root", tiny_demo_root, "--class-name", "weave", "--output-dir", out,
                "--MOM", "True", "--OOM", "--gamma", "1.5", *FAST)
    assert r.returncode == 0, r.stderr
    run = out / "tf_efficientnet_lite0-none" / "weave" / "seed_111"
    for name in ("config.yaml", "metrics.jsonl", "model.safetensors", "model_config.json", "summary.json",
                 "calibration.json", "qualitative.png", "discrepancy_hist.png"):
        assert (run / name).is_file(), name
    assert list((run / "tb").iterdir()), "TensorBoard events missing"
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["gamma"] == 1.5 and cfg["mom"] is True and cfg["oom"] is True and cfg["epochs"] == 2
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2]
    for key in ("loss", "image_auroc", "pixel_auroc", "pixel_ap", "aupro", "image_f1_max", "difficulty"):
        assert key in lines[-1]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["last"]["epoch"] == 2 and "pixel_auroc" in summary["best"]
    calib = json.loads((run / "calibration.json").read_text())
    assert calib["source"] == "f1_optimal_test" and calib["normal_stats"]["n"] >= 1
    assert "weave" in r.stdout and "pixel_auroc" in r.stdout

    from cdo_train.api import load_run
    import numpy as np

    trained = load_run(run)
    maps, scores = trained.predict(np.zeros((2, 64, 64, 3), np.uint8))
    assert maps.shape == (2, 1, 64, 64) and scores.shape == (2,)


def test_cdo_train_is_deterministic_on_cpu(tiny_demo_root, tmp_path):
    metrics = []
    for k in range(2):
        out = tmp_path / f"r{k}"
        r = run_cli("cdo-train", "--data-root", tiny_demo_root, "--class-name", "grain", "--output-dir", out,
                    "--device", "cpu", "--backbone", "resnet18", "--teacher-weights", "random", *FAST)
        assert r.returncode == 0, r.stderr
        metrics.append((out / "resnet18-none" / "grain" / "seed_111" / "metrics.jsonl").read_text())
    assert metrics[0] == metrics[1].replace("r1", "r0")


def test_cdo_train_user_errors_are_one_line(tmp_path):
    cases = [
        (["--data-root", tmp_path / "missing", "--class-name", "x"], "not"),
        (["--data-root", tmp_path, "--epochs", "0"], "config key 'epochs' must be an integer >= 1 or null, got 0"),
        (["--data-root", tmp_path, "--backbone", "resnet19"], "resnet18"),
        (["--config", tmp_path / "none.yaml"], "config file not found"),
    ]
    for args, needle in cases:
        r = run_cli("cdo-train", *args, "--no-progress")
        assert r.returncode == 1, (args, r.stderr)
        assert "Traceback" not in r.stderr and needle in r.stderr, r.stderr
        assert r.stderr.strip().startswith("Error:")


def test_config_file_and_unknown_key(tiny_demo_root, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epoch: 3\n")
    r = run_cli("cdo-train", "--config", bad, "--data-root", tiny_demo_root)
    assert r.returncode == 1 and "did you mean epochs" in r.stderr


def test_folder_dataset_calibrates_on_held_out_good_images(tiny_demo_root, tmp_path):
    good = tiny_demo_root / "weave" / "train" / "good"
    out = tmp_path / "res"
    r = run_cli("cdo-train", "--dataset", "folder", "--data-root", good, "--output-dir", out, "--backbone", "resnet18",
                "--teacher-weights", "random", "--name", "line3", *FAST)
    assert r.returncode == 0, r.stderr
    calib = json.loads((out / "line3" / "good" / "seed_111" / "calibration.json").read_text())  # named after its folder
    assert calib["source"] == "good_holdout"
    ns = calib["normal_stats"]
    assert calib["image_threshold"] == ns["mean"] + 3 * ns["std"] and calib["pixel_threshold"] > 0
    # 8 images, 10 % held out: one image calibrates, which is recorded and warned about in one line
    assert (calib["n"], calib["reliable"]) == (1, False) and "fewer than 10" in calib["warning"]
    assert "only 1 good image(s) (hold-out) calibrate the thresholds" in r.stderr
