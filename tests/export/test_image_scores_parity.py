"""An exported bundle scores image files as training's evaluation scores them.

The files of every kind and size of ``tests/deploy/test_image_parity.py`` (grey, RGB, BGRA, 16-bit,
float32 TIFFs in [0, 1] and [0, 255], JPEG; larger, smaller and mixed relative to the 64 px model) go
through ``cdo_deploy.Inspector`` (ONNX Runtime, fp32, file paths as ``cdo-inspect`` gets them) and
through training's reader and ``cdo_train.training.evaluation.predict`` (PyTorch): the scores and maps agree
within float32 tolerance, so a threshold calibrated in training means the same on the line.
"""

from __future__ import annotations

import numpy as np
import pytest

from cdo_deploy import Inspector
from cdo_train.export.verify import FP32_TOL
from tests.deploy.test_image_parity import write_image_kinds


@pytest.mark.parametrize("hw", [(200, 300), (300, 200), (60, 100)], ids=["300x200", "200x300", "100x60"])
def test_bundle_scores_equal_training_evaluation(exported, tmp_path, hw):
    import torch

    from cdo_train.data import read_image
    from cdo_train.training.evaluation import predict
    from cdo_train.training.saved_model import load_model

    paths = list(write_image_kinds(tmp_path, hw).values())
    model = load_model(exported.run)
    size = model.cfg.image_size
    maps, scores = predict(model, np.stack([read_image(p, size) for p in paths]), torch.device("cpu"))
    with Inspector(exported.bundle, backend="onnxruntime", device="cpu", variant="fp32") as insp:
        preds = insp.predict(paths)
    np.testing.assert_allclose([p.score for p in preds], scores, rtol=1e-4, atol=FP32_TOL)
    np.testing.assert_allclose(np.stack([p.anomaly_map for p in preds]), maps, rtol=1e-4, atol=FP32_TOL)
