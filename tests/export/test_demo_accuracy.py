"""Accuracy of every bundle variant on the real demo data (slow: set CDO_SLOW=1).

Generates the demo class ``weave``, trains it with ``configs/demo.yaml``
(lite0, 128 px, 12 epochs; several minutes on 2 CPU cores), exports fp32,
fp16 and int8, and evaluates all of them on the demo test set with
``cdo_train.export.report``: the fp32 graph must reproduce PyTorch's AUROC,
fp16 and int8 must stay within 0.5 points of fp32 (image and pixel AUROC).
"""

from __future__ import annotations

import pytest

from tests.conftest import REPO, run_cli


@pytest.mark.slow
def test_variants_keep_the_accuracy_on_the_demo_data(tmp_path):
    from cdo_train.data import make_demo_dataset
    from cdo_train.export.report import format_report, variant_report

    data = make_demo_dataset(tmp_path / "data", classes=["weave"])
    r = run_cli("cdo-train", "--config", REPO / "configs" / "demo.yaml", "--data-root", data, "--class-name",
                "weave", "--output-dir", tmp_path / "res", "--no-progress", timeout=3600)
    assert r.returncode == 0, r.stderr
    run = tmp_path / "res" / "tf_efficientnet_lite0-none" / "weave" / "seed_111"
    r = run_cli("cdo-export", run, "-o", tmp_path / "bundle", "--fp16", "--int8")
    assert r.returncode == 0, r.stderr
    rows = {row.variant: row for row in variant_report(tmp_path / "bundle", repeats=2)}
    print(format_report(list(rows.values())))
    ref, fp32 = rows["pytorch"], rows["fp32"]
    assert fp32.image_auroc == pytest.approx(ref.image_auroc, abs=1e-6)
    assert fp32.pixel_auroc == pytest.approx(ref.pixel_auroc, abs=1e-6)
    for variant in ("fp16", "int8"):
        assert abs(rows[variant].image_auroc - fp32.image_auroc) <= 0.005, variant
        assert abs(rows[variant].pixel_auroc - fp32.pixel_auroc) <= 0.005, variant
