"""Python API parity: cdo_train.train / export / load_run().predict and Inspector take what the CLIs take."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

import cdo_train
from cdo_deploy import Inspector
from cdo_deploy.errors import CdoError


@pytest.fixture(scope="module")
def api_run(tiny_demo_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("api")
    preset = out / "preset.yaml"
    preset.write_text(yaml.safe_dump({"backbone": "resnet18", "teacher_weights": "random", "image_size": 32,
                                      "batch_size": 4, "steps": 2, "eval_every": 2}))
    runs = cdo_train.train(preset, data_root=str(tiny_demo_root), class_names=["weave"], output_dir=str(out),
                           device="cpu", progress=False)
    assert runs == [out / "resnet18-none" / "weave" / "seed_111"] and all(isinstance(r, Path) for r in runs)
    return runs[0]


def test_predict_takes_any_size_dtype_channel_order_and_paths(api_run, tiny_demo_root):
    run = cdo_train.load_run(api_run)
    path = sorted((tiny_demo_root / "weave" / "test").rglob("*.png"))[-1]
    bgr = cv2.imread(str(path))  # 64 px, the model is 32 px
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    maps, scores = run.predict(rgb)
    assert maps.shape == (1, 1, 32, 32) and scores.shape == (1,)
    same = [run.predict(bgr, color_order="BGR"), run.predict(path), run.predict([str(path)]),
            run.predict(rgb.astype(np.float32) / 255.0), run.predict((rgb.astype(np.uint16) * 257)[None])]
    for m, s in same:
        np.testing.assert_allclose(m, maps, atol=1e-5)
        np.testing.assert_allclose(s, scores, atol=1e-5)
    grey = run.predict(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))[0]
    assert grey.shape == (1, 1, 32, 32)
    two, _ = run.predict([path, rgb])
    assert two.shape == (2, 1, 32, 32)
    with pytest.raises(CdoError, match="image file not found"):
        run.predict(str(path) + ".missing")


def test_export_function_and_inspector_on_paths(api_run, tiny_demo_root, tmp_path):
    res = cdo_train.export(api_run, tmp_path / "bundle")
    assert (res.bundle_dir / "model.onnx").is_file()
    with pytest.raises(CdoError, match="unknown export option 'fp61'.*did you mean fp16"):
        cdo_train.export(api_run, tmp_path / "b2", fp61=True)
    paths = sorted((tiny_demo_root / "weave" / "test").rglob("*.png"))[:3]
    with Inspector(tmp_path / "bundle", device="cpu") as insp:
        one = insp(paths[0])
        assert one.source == str(paths[0])
        many = insp([str(p) for p in paths])
        assert [p.source for p in many] == [str(p) for p in paths]
        arrays = insp.predict([cv2.imread(str(p)) for p in paths])  # BGR arrays, the inspector's default
        assert [p.score for p in many] == pytest.approx([p.score for p in arrays], rel=1e-5, abs=1e-6)  # float32
        assert one.score == pytest.approx(many[0].score, rel=1e-5, abs=1e-6)
        with pytest.raises(CdoError, match="image file not found"):
            insp(tmp_path / "nope.png")
