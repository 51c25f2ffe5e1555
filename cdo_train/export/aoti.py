"""AOTInductor package of a trained model: ``torch.export`` + ``aoti_compile_and_package``.

PyTorch's own ahead-of-time deployment route, for GPU machines without
TensorRT. The package ``model_aoti_<precision>.pt2`` goes into an existing
bundle folder and is listed in ``model.json`` ``variants`` as
``aoti-<precision>``; :mod:`cdo_deploy.backends.torch_aoti` runs it.

The exported graph is the bundle contract (:mod:`cdo_deploy.bundle`)::

    image uint8 (B, H, W, 3) RGB, B dynamic in [1, max_batch]
      -> permute to NCHW (a channels-last view, no copy) -> float / 255 -> (x - mean) / std
      -> teacher, student in ``precision`` (fp16: backbones in half, channels-last on CUDA)
      -> level sum in fp32 (the fused Triton kernel of :mod:`cdo_train.model.triton_head` on CUDA,
         embedded in the package; the reference on CPU), then ``DiscrepancyHead`` itself: blur,
         upsample, score; or, for a ``--head cdo+seg`` run, its ``SegHead`` in fp32 instead (no level
         sum, so no Triton kernel: the head's convolutions are compiled by Inductor like the backbones)
      -> anomaly_map float32 (B, 1, H, W), score float32 (B,)

A package is specific to the device kind (CPU packages need a C++ compiler to
build and contain x86 code; CUDA packages contain cubins for the GPU
architecture they were built on) and to the torch version: build it on the
machine (or an identical one) that runs it. Building takes minutes.

Example:
    >>> from cdo_train.training.saved_model import load_model
    >>> res = export_aoti(load_model("result/exp/weave/seed_111"), "bundle")   # doctest: +SKIP
    >>> res.variant, res.path.name                                            # doctest: +SKIP
    ('aoti-fp16', 'model_aoti_fp16.pt2')

    python -m cdo_train.export.aoti RUN_DIR BUNDLE [--precision fp16] [--max-batch 64]
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cdo_deploy.bundle import load_bundle_meta
from cdo_deploy.errors import CdoError

__all__ = ["AOTI_PRECISIONS", "AotiGraph", "AotiResult", "aoti_file", "aoti_variant", "export_aoti"]

log = logging.getLogger(__name__)

AOTI_PRECISIONS = ("fp32", "fp16")
#: parity of the loaded package against the eager wrapper (anomaly-map max |d|).
TOL = {"fp32": 1e-3, "fp16": 5e-2}


def aoti_variant(precision: str) -> str:
    """``model.json`` ``variants`` key of a package: ``aoti-fp16``."""
    return f"aoti-{precision}"


def aoti_file(precision: str) -> str:
    """File name of a package inside the bundle: ``model_aoti_fp16.pt2``."""
    return f"model_aoti_{precision}.pt2"


class AotiGraph(nn.Module):
    """uint8 NHWC images -> ``(anomaly_map (B,1,H,W), score (B,))``, backbones in ``dtype``.

    Args:
        model: a trained ``CDOModel`` (its teacher and student are converted to ``dtype`` in place).
        dtype: ``torch.float32`` or ``torch.float16`` for the backbones; the head is fp32.
        fused_head: use :func:`cdo_train.model.triton_head.fused_level_sum` (Triton on CUDA); a model with a
            segmentation head has no level sum to fuse and runs that head instead.
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype = torch.float32, fused_head: bool = True) -> None:
        super().__init__()
        self.model = model.eval()
        self.dtype = dtype
        self.fused_head = fused_head
        model.teacher.to(dtype)
        model.student.to(dtype)
        for p in self.parameters():
            p.requires_grad_(False)  # a graph without autograd (and the fused head needs no grad)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        x = image.permute(0, 3, 1, 2).float() / 255.0
        x = ((x - m.mean) / m.std).to(self.dtype)
        fe, fa = list(m.teacher(x)), list(m.student(x))
        from ..model.triton_head import fused_level_sum, reference_level_sum

        return m.head_outputs(fe, fa, level_sum=fused_level_sum if self.fused_head else reference_level_sum)


@dataclass(frozen=True)
class AotiResult:
    """What :func:`export_aoti` wrote and measured.

    Attributes:
        path: the ``.pt2`` package.
        variant: its key in ``model.json`` ``variants``.
        device: ``cpu`` or ``cuda``.
        precision: backbone precision.
        seconds: export + compile time.
        mb: package size.
        map_max_abs: max |anomaly map difference| package vs eager wrapper on random images.
    """

    path: Path
    variant: str
    device: str
    precision: str
    seconds: float
    mb: float
    map_max_abs: float


def _device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CdoError(f"AOTI device {spec}: no CUDA GPU here (use --device cpu)")
    if dev.type not in ("cpu", "cuda"):
        raise CdoError(f"AOTI device {spec!r}: use auto, cpu or cuda[:N]")
    return dev


def export_aoti(
    model: nn.Module,
    bundle_dir: str | Path,
    *,
    device: str = "auto",
    precision: str | None = None,
    max_batch: int = 64,
    fused_head: bool = True,
) -> AotiResult:
    """Export ``model`` with a dynamic batch, compile it with AOTInductor, add it to the bundle.

    Args:
        model: a trained ``CDOModel`` (modified: moved to ``device``, backbones cast to ``precision``).
        bundle_dir: an existing bundle folder (``model.json`` is updated).
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda[:N]``.
        precision: ``fp16`` or ``fp32``; default fp16 on CUDA, fp32 on CPU.
        max_batch: largest batch the package accepts.
        fused_head: embed the fused Triton discrepancy kernel (CUDA only; CPU uses the reference).

    Returns:
        The package path, its ``variants`` key, timing, size and parity.

    Raises:
        CdoError: no bundle, bad options, or the package disagrees with the eager model.
    """
    bundle = Path(bundle_dir)
    meta = load_bundle_meta(bundle)
    dev = _device(device)
    precision = precision or ("fp16" if dev.type == "cuda" else "fp32")
    if precision not in AOTI_PRECISIONS:
        raise CdoError(f"AOTI precision must be one of {', '.join(AOTI_PRECISIONS)}, got {precision!r}")
    if not 1 <= max_batch <= 4096:
        raise CdoError(f"--max-batch must be in 1..4096, got {max_batch}")
    h, w = model.head.image_size
    if (h, w) != (meta.height, meta.width):
        raise CdoError(f"model is {h}x{w} but {bundle}/model.json says {meta.height}x{meta.width}")
    dtype = torch.float16 if precision == "fp16" else torch.float32
    graph = AotiGraph(model, dtype, fused_head=fused_head).to(dev).eval()
    if dev.type == "cuda":
        graph = graph.to(memory_format=torch.channels_last)
    gen = torch.Generator().manual_seed(0)
    example = torch.randint(0, 256, (min(2, max_batch) if max_batch > 1 else 1, h, w, 3), generator=gen,
                            dtype=torch.uint8).to(dev)
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    file = aoti_file(precision)
    path = bundle / file
    t0 = time.perf_counter()
    with torch.no_grad():
        shapes = ({0: batch},) if max_batch > 1 else None
        ep = torch.export.export(graph, (example,), dynamic_shapes=shapes)
        configs = {"aot_inductor.metadata": {"cdo_device": dev.type, "cdo_precision": precision,
                                             "cdo_max_batch": str(max_batch), "cdo_height": str(h),
                                             "cdo_width": str(w)}}
        torch._inductor.aoti_compile_and_package(ep, package_path=str(path), inductor_configs=configs)
    seconds = time.perf_counter() - t0
    err = _parity(graph, path, example, dev)
    if not err <= TOL[precision]:
        path.unlink(missing_ok=True)
        raise CdoError(f"the AOTI package differs from the eager model by {err:.3g} (tolerance {TOL[precision]} "
                       f"for {precision}); this is a cdo bug, please report it")
    meta = load_bundle_meta(bundle)  # re-read: keep whatever else was written meanwhile
    meta.variants[aoti_variant(precision)] = file
    meta.save(bundle)
    mb = path.stat().st_size / 1e6
    # the file line (format, seconds, path, MB) is the caller's: cdo-export's recorder or main() below
    log.info("parity %s vs PyTorch on %d images: map max |d| %.3g", aoti_variant(precision), len(example), err)
    return AotiResult(path, aoti_variant(precision), dev.type, precision, round(seconds, 2), round(mb, 2), err)


def _parity(graph: nn.Module, path: Path, example: torch.Tensor, dev: torch.device) -> float:
    """Max |map difference| between the loaded package and the eager wrapper, batch 1 and full."""
    runner = torch._inductor.aoti_load_package(str(path))
    worst = 0.0
    with torch.no_grad():
        for b in sorted({1, len(example)}):
            ref_map, ref_score = graph(example[:b])
            out_map, out_score = runner(example[:b])
            worst = max(worst, float((out_map.float() - ref_map.float()).abs().max()),
                        float((out_score.float() - ref_score.float()).abs().max()))
    return worst if np.isfinite(worst) else float("inf")


def main(argv: list[str] | None = None) -> None:
    """``python -m cdo_train.export.aoti RUN_DIR BUNDLE``: add an AOTI package to a bundle."""
    p = argparse.ArgumentParser(prog="python -m cdo_train.export.aoti", description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("bundle")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=AOTI_PRECISIONS, default=None)
    p.add_argument("--max-batch", type=int, default=64)
    p.add_argument("--no-fused-head", action="store_true")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from ..training.saved_model import load_model

    try:
        res = export_aoti(load_model(a.run_dir), a.bundle, device=a.device, precision=a.precision,
                          max_batch=a.max_batch, fused_head=not a.no_fused_head)
    except CdoError as e:
        raise SystemExit(f"Error: {e}") from None
    log.info("%-10s %6.1f s  %s (%.1f MB)", res.variant, res.seconds, res.path, res.mb)
    print(f"next: cdo-bench {a.bundle} --backend torch --batch 1,8,64")


if __name__ == "__main__":
    main()
