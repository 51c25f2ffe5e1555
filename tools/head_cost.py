"""Cost of the discrepancy head in ONNX Runtime (CPU): a naive head vs cdo's fused one.

Both heads are exported to ONNX alone, with the six teacher/student feature
maps as inputs (lite0 shapes at 256 px: 24x64x64, 40x32x32, 112x16x16), and
timed in ONNX Runtime on CPU (median of ``--runs`` after a warm-up) at batch 1
and 8.

* naive: per level normalise both maps, subtract, square, sum over channels,
  upsample each level to the full H x W, sum, blur at full resolution with the
  33-tap Gaussian (sigma 4 px) as one 33x33 convolution ("naive-2d") or as two
  1-D passes ("naive-sep"), reflect padding, max;
* cdo (``cdo_train.model.discrepancy.DiscrepancyHead``): ``2 - 2 <fe,fa>/(|fe||fa|)``
  per level, levels summed at stride 4, 9-tap separable blur there (sigma 1),
  one bilinear upsample, max.

The two are not identical (blur before vs after the last upsample); with
``--run RUN_DIR`` the maximum difference between their maps is measured on the
run's real test images, with the pixel AUROC of both.

Usage::

    python tools/head_cost.py [--runs 30] [--run result/exp/weave/seed_111]
"""

from __future__ import annotations

import argparse
import io
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cdo_train.model.discrepancy import DiscrepancyHead, gaussian_kernel1d

SHAPES = ((24, 64, 64), (40, 32, 32), (112, 16, 16))  # lite0 strides 4/8/16 at 256 px


class NaiveHead(nn.Module):
    """The textbook head: everything at full resolution (see the module docstring)."""

    def __init__(self, image_size: tuple[int, int], blur_sigma: float = 4.0, separable: bool = False) -> None:
        super().__init__()
        self.image_size = image_size
        sigma = blur_sigma * image_size[0] / 256.0
        k = gaussian_kernel1d(sigma)
        self.pad = (k.numel() - 1) // 2
        self.separable = separable
        self.register_buffer("kx", k.view(1, 1, 1, -1))
        self.register_buffer("ky", k.view(1, 1, -1, 1))
        self.register_buffer("k2", (k[:, None] * k[None, :]).view(1, 1, k.numel(), k.numel()))

    def forward(self, fe: list[torch.Tensor], fa: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        total = 0
        for e, a in zip(fe, fa):
            d = ((F.normalize(e, dim=1) - F.normalize(a, dim=1)) ** 2).sum(1, keepdim=True)
            total = total + F.interpolate(d, size=self.image_size, mode="bilinear", align_corners=False)
        p = self.pad
        x = F.pad(total, (p, p, p, p), mode="reflect")
        amap = F.conv2d(F.conv2d(x, self.kx), self.ky) if self.separable else F.conv2d(x, self.k2)
        return amap, amap.flatten(1).amax(1)


class _Flat(nn.Module):
    """Six tensor inputs -> head(fe list, fa list)."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, e0, e1, e2, a0, a1, a2):
        return self.head([e0, e1, e2], [a0, a1, a2])


def to_onnx(head: nn.Module, shapes, batch: int = 2) -> bytes:
    names = [f"{w}{i}" for w in ("fe", "fa") for i in range(3)]
    dummy = tuple(torch.randn(batch, *s) for s in shapes) * 2
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Flat(head).eval(), dummy, buf, dynamo=False, opset_version=17, input_names=names,
                          output_names=["anomaly_map", "score"],
                          dynamic_axes={n: {0: "b"} for n in names + ["anomaly_map", "score"]})
    try:
        import onnx
        import onnxslim

        return onnxslim.slim(onnx.load_from_string(buf.getvalue())).SerializeToString()
    except ImportError:
        return buf.getvalue()


def time_ort(model: bytes, shapes, batch: int, runs: int) -> tuple[float, int]:
    import onnx
    import onnxruntime as ort

    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {f"{w}{i}": rng.standard_normal((batch, *s)).astype(np.float32)
            for w in ("fe", "fa") for i, s in enumerate(shapes)}
    sess.run(None, feed)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t) * 1e3)
    return float(np.median(times)), len(onnx.load_from_string(model).graph.node)


def real_difference(run_dir: str) -> str:
    """Max |naive - cdo| on a run's test images, and both pixel AUROCs."""
    from cdo_train.data.splits import samples
    from cdo_train.training.config import TrainConfig
    from cdo_train.training.evaluation import load_images
    from cdo_train.export.run_inputs import read_run_info
    from cdo_train.training.metrics import pixel_auroc
    from cdo_train.training.saved_model import load_model

    model = load_model(run_dir)
    cfg = read_run_info(run_dir).config
    test = load_images(samples(TrainConfig().merged(cfg), Path(run_dir).parent.name, "test"), cfg["image_size"])
    naive = NaiveHead(model.head.image_size, model.cfg.blur_sigma, separable=True)
    ours, theirs = [], []
    with torch.no_grad():
        for i in range(0, len(test.images), 8):
            x = torch.from_numpy(test.images[i:i + 8]).permute(0, 3, 1, 2).float() / 255.0
            fe, fa = model.features(x)
            ours.append(model.head(fe, fa)[0][:, 0].numpy())
            theirs.append(naive(fe, fa)[0][:, 0].numpy())
    a, b = np.concatenate(ours), np.concatenate(theirs)
    diff = np.abs(a - b)
    return (f"real features ({run_dir}, {len(a)} test images, {a.shape[-1]} px): max |naive - cdo| = "
            f"{diff.max():.4f} (map range {a.min():.3f}..{a.max():.3f}, relative {diff.max() / a.max():.2%}); "
            f"pixel AUROC naive {pixel_auroc(test.masks, b):.4f}, cdo {pixel_auroc(test.masks, a):.4f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--run", default=None, help="a cdo-train run folder for the real-feature comparison")
    a = p.parse_args()
    scale = a.size / 256
    shapes = tuple((c, math.ceil(h * scale), math.ceil(w * scale)) for c, h, w in SHAPES)
    size = (a.size, a.size)
    heads = {"naive-2d": NaiveHead(size), "naive-sep": NaiveHead(size, separable=True),
             "cdo": DiscrepancyHead(size)}
    print(f"head cost, ONNX Runtime CPU, median of {a.runs} runs, {a.size} px, features {shapes}")
    print(f"{'head':<11}{'nodes':>7}{'ms @1':>10}{'ms @8':>10}")
    for name, head in heads.items():
        model = to_onnx(head, shapes)
        t1, n = time_ort(model, shapes, 1, a.runs)
        t8, _ = time_ort(model, shapes, 8, a.runs)
        print(f"{name:<11}{n:>7}{t1:>10.2f}{t8:>10.2f}")
    if a.run:
        print(real_difference(a.run))


if __name__ == "__main__":
    main()
