"""cdo_deploy never imports torch (checked in a fresh interpreter)."""

from __future__ import annotations

from tests.conftest import modules_after

MODULES = [
    "cdo_deploy", "cdo_deploy.cli", "cdo_deploy.inspector", "cdo_deploy.inspection", "cdo_deploy.pipeline",
    "cdo_deploy.bench", "cdo_deploy.backends", "cdo_deploy.sources", "cdo_deploy.sinks", "cdo_deploy.status",
    "cdo_deploy.results", "cdo_deploy.formats", "cdo_deploy.thresholds", "cdo_deploy.engine_build",
    "cdo_deploy.metrics", "cdo_deploy.drift", "cdo_deploy.web",
]


def test_importing_cdo_deploy_never_loads_torch():
    code = (
        f"import importlib; [importlib.import_module(m) for m in {MODULES!r}]\n"
        "import cdo_deploy; cdo_deploy.Inspector; cdo_deploy.run_inspection\n"
        "from cdo_deploy.backends import available_backends; available_backends()\n"
    )
    bad = [m for m in modules_after(code) if m == "torch" or m.startswith(("torch.", "cdo_train"))]
    assert not bad, bad


def test_bundle_module_stays_light():
    loaded = modules_after("import cdo_deploy.bundle")
    heavy = [m for m in ("cv2", "onnxruntime", "click", "watchdog", "paho") if m in loaded]
    assert not heavy, heavy


def test_metrics_are_one_module_without_scipy():
    """Training and the runtime share one metric code; the runtime's extra has no scipy."""
    import cdo_deploy.metrics
    import cdo_train.training.metrics

    assert cdo_train.training.metrics.compute_metrics is cdo_deploy.metrics.compute_metrics
    loaded = modules_after("import cdo_deploy.metrics")
    assert not [m for m in loaded if m.split(".")[0] in ("scipy", "torch", "cdo_train")]
