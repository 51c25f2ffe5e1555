"""OpenVINO backend: runs a bundle's ONNX files directly, or an IR (``.xml`` + ``.bin``).

``pip install 'cdo[openvino]'``. The ONNX files are read by OpenVINO's ONNX
frontend, so the int8 Q/DQ variant runs as OpenVINO int8 (its FakeQuantize
ops); an IR written by ``cdo-export --openvino`` is the same graph, read
without the frontend (faster to load).

Devices (``device``):
    ``auto``, ``cpu``   the CPU
    ``gpu[:N]``         Intel GPU N (OpenVINO's ``GPU.N``)
    ``npu``             Intel NPU
Anything else, or a device OpenVINO does not report here, fails with the list
it reports (:func:`openvino_devices`).

Settings: ``PERFORMANCE_HINT`` from ``set_options(hint=...)`` (``LATENCY`` by
default: one part at a time), ``INFERENCE_NUM_THREADS`` from
``set_options(threads=N)`` on the CPU, and ``INFERENCE_PRECISION_HINT=f32``
always: OpenVINO otherwise runs fp32 models in bf16 on CPUs with AMX or
AVX512-BF16 (and in fp16 on GPUs), and the discrepancy head ``2 - 2 cos``
cancels in 16-bit floats. Reduced precision comes from the bundle's variants
(fp16, int8), never silently from the runtime.

Telemetry: ``import openvino`` sends a Google Analytics event (``openvino_telemetry``,
on unless the user opted out with ``opt_in_out --opt_out``); a line PC must not phone
home. cdo imports OpenVINO only through :func:`import_openvino`, which hides the
telemetry package so that OpenVINO falls back to its own no-op stub.

Example:
    >>> from cdo_deploy.backends import create_backend
    >>> be = create_backend("openvino", "bundle/model_int8.onnx", device="cpu", threads=2)  # doctest: +SKIP
    >>> be.infer(images).score                                                              # doctest: +SKIP
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import numpy as np

from ..bundle import INPUT_NAME, OUTPUT_NAMES
from ..errors import CdoError
from .base import BACKENDS, Backend

__all__ = ["OpenVinoBackend", "import_openvino", "openvino_devices", "openvino_device_name"]

log = logging.getLogger(__name__)

_INSTALL = "pip install 'cdo[openvino]' (the openvino package)"


def import_openvino() -> Any:
    """``import openvino`` without its telemetry (module docstring); the module, or ``ImportError``.

    Hides ``openvino_telemetry`` (``sys.modules`` entry ``None``: importing it raises
    ``ImportError``, on which OpenVINO uses ``openvino.tools.ovc.telemetry_stub``) unless
    OpenVINO or the telemetry package is already imported in this process.
    """
    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
    import openvino

    return openvino


def openvino_devices() -> dict[str, str]:
    """Devices OpenVINO reports here: ``{"CPU": "full device name", "GPU.0": ...}``.

    Raises:
        CdoError: OpenVINO is not installed.
    """
    try:
        ov = import_openvino()
    except ImportError:
        raise CdoError(f"openvino is not installed ({_INSTALL})") from None
    core = ov.Core()
    out = {}
    for name in core.available_devices:
        try:
            out[name] = str(core.get_property(name, "FULL_DEVICE_NAME"))
        except RuntimeError:  # a device whose plug-in cannot answer: still listed
            out[name] = name
    return out


def openvino_device_name(device: str, available: list[str] | tuple[str, ...]) -> str:
    """Map a cdo device string to an OpenVINO device name that is available.

    Example:
        >>> openvino_device_name("auto", ["CPU"]), openvino_device_name("gpu:1", ["CPU", "GPU.0", "GPU.1"])
        ('CPU', 'GPU.1')

    Raises:
        CdoError: unknown device string, or one OpenVINO does not report here.
    """
    kind, _, idx = device.lower().replace(".", ":").partition(":")
    names = {"auto": "CPU", "cpu": "CPU", "gpu": "GPU", "npu": "NPU"}
    if kind not in names or (idx and not idx.isdigit()) or (idx and kind != "gpu"):
        raise CdoError(f"bad device {device!r} for openvino (use auto, cpu, gpu[:N] or npu)")
    want = names[kind] + (f".{idx}" if idx else "")
    for name in available:
        if name == want or (not idx and name.split(".")[0] == want):
            return name
    raise CdoError(f"OpenVINO reports no {want} device here (it reports: {', '.join(available) or 'none'}); "
                   "use --device cpu, or install the Intel GPU/NPU driver")


@BACKENDS.register("openvino")
class OpenVinoBackend(Backend):
    """A bundle ONNX file or OpenVINO IR compiled by ``openvino.Core``."""

    name = "openvino"
    install_hint = _INSTALL

    @classmethod
    def availability(cls) -> str | None:
        try:
            import_openvino()
        except ImportError:
            return f"openvino is not installed ({cls.install_hint})"
        return None

    def _load(self) -> None:
        ov = import_openvino()

        core = ov.Core()
        target = openvino_device_name(self.device, list(core.available_devices))
        try:
            model = core.read_model(str(self.model_path))
        except RuntimeError as e:  # OpenVINO raises RuntimeError for unreadable or unsupported models
            raise CdoError(f"openvino cannot read {self.model_path}: {str(e).splitlines()[0]}") from None
        inputs = {p.get_any_name(): p for p in model.inputs}
        self._check_graph_io(list(inputs), [p.get_any_name() for p in model.outputs])
        shape = inputs[INPUT_NAME].get_partial_shape()
        if shape.rank.get_length() == 4 and shape[1].is_static and shape[2].is_static:
            self.input_hw = (shape[1].get_length(), shape[2].get_length())
        config: dict[str, Any] = {"PERFORMANCE_HINT": self.hint.upper(), "INFERENCE_PRECISION_HINT": "f32"}
        if self.threads and target == "CPU":
            config["INFERENCE_NUM_THREADS"] = self.threads
        try:
            self._compiled = core.compile_model(model, target, config)
        except RuntimeError as e:
            raise CdoError(f"openvino cannot compile {self.model_path.name} for {target}: "
                           f"{str(e).splitlines()[0]}") from None
        self._request = self._compiled.create_infer_request()
        self._outputs = [self._compiled.output(n) for n in OUTPUT_NAMES]
        full = str(core.get_property(target, "FULL_DEVICE_NAME"))
        self.device_label = f"{target} ({full}) OpenVINO {ov.__version__.split('-')[0]}"

    def _infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        res = self._request.infer({INPUT_NAME: images}, share_inputs=True, share_outputs=False)
        return res[self._outputs[0]], res[self._outputs[1]]

    def _close(self) -> None:
        self._request = None
        self._compiled = None
