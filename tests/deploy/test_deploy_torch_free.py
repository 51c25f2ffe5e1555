"""cdo_deploy never imports torch (checked in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys

MODULES = [
    "cdo_deploy", "cdo_deploy.cli", "cdo_deploy.inspector", "cdo_deploy.inspection", "cdo_deploy.pipeline",
    "cdo_deploy.bench", "cdo_deploy.backends", "cdo_deploy.sources", "cdo_deploy.sinks", "cdo_deploy.status",
    "cdo_deploy.results", "cdo_deploy.formats", "cdo_deploy.thresholds", "cdo_deploy.engine_build",
]


def test_importing_cdo_deploy_never_loads_torch():
    code = (
        f"import importlib; [importlib.import_module(m) for m in {MODULES!r}]\n"
        "import cdo_deploy; cdo_deploy.Inspector; cdo_deploy.run_inspection\n"
        "from cdo_deploy.backends import available_backends; available_backends()\n"
        "import sys; bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'cdo_train')))\n"
        "assert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_bundle_module_stays_light():
    code = ("import cdo_deploy.bundle, sys\n"
            "heavy = [m for m in ('cv2', 'onnxruntime', 'click', 'watchdog', 'paho') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
