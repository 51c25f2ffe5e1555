"""Re-score trained runs with other discrepancy-head settings, without retraining.

The image-score rule, the blur and the feature levels summed are head-only
choices: the teacher and student are unchanged, so one forward pass per test
image gives the features and every head variant is evaluated from them. For
each finished run ``<logdir>/<experiment>/<class>/seed_<n>`` it evaluates

* score rules: ``max``, ``topk_mean`` with each ``--topk``, and the max minus the
  image's own map mean or median (``max-mean``, ``max-median``: a global offset of
  the whole map, e.g. from exposure, does not count);
* blur sigmas (``--sigmas``, input pixels at 256 px);
* level sets (``--levels``, e.g. ``012`` all, ``01`` strides 4 and 8);
* level normalisation (``--norms``): ``none`` sums the raw per-level
  discrepancies; ``mean`` divides each level by its mean over the run's
  held-out good training images (never test images) before summing;
  ``z`` standardises each level by its held-out good mean and std; ``quantile``
  is EfficientAD's rule: each level's held-out good quantiles q(0.9) and q(0.995)
  are mapped to 0 and 0.1 (an affine map; its offset shifts every pixel of every
  image alike, so only the scale 0.1 / (q(0.995) - q(0.9)) changes the metrics);
* memory banks (``--banks``, e.g. ``1024,4096,10%``): the memory-bank head of
  ``cdo_train.model.memory_bank`` built from the run's training images (the trainer's
  split; greedy coreset seeded by the run's seed, smaller banks are prefixes of
  the largest), statistics from the held-out good images: ``fuse`` is the
  fused map the head exports, ``fuse-z`` the same with the level-normalised CDO
  map (with ``--norms`` including ``z``: ``--level-norm z --head cdo+knn``),
  ``knn`` the patch distance alone (PatchCore-like).

and writes ``<out>.md`` / ``<out>.json``: per variant, per class and the class
mean, mean ± std over seeds of image AUROC, pixel AUROC and AUPRO.

This uses the test labels to *compare* head settings across a whole suite (a
design choice, like any default); it never selects anything per run.

Usage:
    python tools/head_study.py --logdir /tmp/hard/runs --experiment baseline -o /tmp/hard/head_baseline
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import yaml

from cdo_train.training.config import TrainConfig
from cdo_train.model.discrepancy import DiscrepancyHead, level_discrepancies
from cdo_train.model.level_norm import z_scales_of
from cdo_train.training.evaluation import load_images
from cdo_train.model.memory_bank import MemoryBank, greedy_coreset, patch_features
from cdo_train.training.metrics import compute_metrics
from cdo_train.training.saved_model import load_model
from cdo_train.data.splits import calibration_samples, samples, train_split

METRICS = ("image_auroc", "pixel_auroc", "aupro")


@torch.no_grad()
def _features(model, images: np.ndarray, batch: int = 8):
    fes, fas = [], []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(images[i : i + batch]).permute(0, 3, 1, 2).float().div_(255.0)
        fe, fa = model.features(x)
        fes.append(fe)
        fas.append(fa)
    return [torch.cat(z) for z in zip(*fes)], [torch.cat(z) for z in zip(*fas)]


def _held_out(model, cfg: dict, class_name: str):
    """The run's training samples and the teacher/student features of its calibration images (the
    held-out good ones, or ``calibration_dir``'s: what the trainer normalises and calibrates with)."""
    train_cfg = TrainConfig().merged(cfg)
    train, holdout = train_split(train_cfg, class_name, train_cfg.seed)
    held = calibration_samples(train_cfg, holdout)
    if not held:
        raise SystemExit(f"Error: {class_name}: no held-out good images to normalise with")
    return train, _features(model, load_images(held, model.cfg.image_size).images)


def _level_stats(held) -> list[tuple[float, float, float]]:
    """(mean, std, q(0.995) - q(0.9)) of each level's discrepancy over the held-out good images; the std is
    the one ``--level-norm z`` divides by (:func:`cdo_train.model.level_norm.z_scales_of`)."""
    levels = level_discrepancies(*held)
    out = []
    for d, z in zip(levels, z_scales_of([levels])):
        qa, qb = torch.quantile(d.flatten().double(), torch.tensor([0.9, 0.995], dtype=torch.float64)).tolist()
        out.append((float(d.mean()), 1.0 / z, qb - qa))
    return out


def _bank_variants(model, train, held, test_f, sizes: list[str], seed: int,
                   z_scales: list[float] | None = None) -> dict[str, torch.Tensor]:
    """``name -> level-0 map before the blur`` for each bank size: the fused map and the kNN map alone;
    with ``z_scales`` also ``fuse-z``, the fusion of the level-normalised CDO map (``--level-norm z``)."""
    fe_train, _ = _features(model, load_images(train, model.cfg.image_size).images)
    patches = patch_features(fe_train)
    flat = patches.permute(0, 2, 3, 1).reshape(-1, patches.shape[1])
    counts = [round(float(z[:-1]) / 100 * len(flat)) if z.endswith("%") else int(z) for z in sizes]
    order = greedy_coreset(flat, max(counts), seed)
    cdo_maps = {"fuse": [sum(level_discrepancies(*f)) for f in (held, test_f)]}
    if z_scales:
        cdo_maps["fuse-z"] = [sum(level_discrepancies(*f, z_scales)) for f in (held, test_f)]
    out = {}
    for name, m in zip(sizes, counts):
        bank = MemoryBank(flat[order[:m]].clone())
        up = [torch.nn.functional.interpolate(bank.distances(f[0]), size=held[0][0].shape[-2:], mode="bilinear",
                                              align_corners=False) for f in (held, test_f)]
        for fusion, (d_held, d_test) in cdo_maps.items():
            bank.calibrate(d_held, up[0])
            out[f"bank={name} {fusion}"] = bank.fuse(d_test, test_f[0])
        out[f"bank={name} knn"] = up[1]
    return out


def _amap(head: DiscrepancyHead, fe, fa, idx: list[int], weights: list[float] | None) -> torch.Tensor:
    """The head's anomaly map over levels ``idx``, each level multiplied by ``weights``."""
    if weights is None:
        amap, _ = head([fe[i] for i in idx], [fa[i] for i in idx])
        return amap
    d = level_discrepancies([fe[i] for i in idx], [fa[i] for i in idx])
    d = head.blur(sum(w * x for w, x in zip(weights, d)))
    return torch.nn.functional.interpolate(d, size=head.image_size, mode="bilinear", align_corners=False)


def _scored(amap: torch.Tensor, test, topks) -> dict[str, dict[str, float]]:
    """``score rule -> metrics`` of full-size maps (B, 1, H, W): pixel metrics once, image AUROC per rule."""
    maps = amap[:, 0].numpy()
    flat = amap.flatten(1)
    rules = {"max": flat.amax(1),
             "max-mean": flat.amax(1) - flat.mean(1),          # how far the worst spot stands out of its own
             "max-median": flat.amax(1) - flat.median(1).values}  # image (robust to a global shift, e.g. exposure)
    for k in topks:
        rules[f"top{k}"] = flat.topk(min(k, flat.shape[1]), dim=1).values.mean(1)
    out, pixel = {}, None
    for rule, scores in rules.items():
        m = compute_metrics(test.labels, scores.numpy(), test.masks if pixel is None else None,
                            maps if pixel is None else None)
        if pixel is None:
            pixel = {k: m[k] for k in ("pixel_auroc", "aupro")}
        out[rule] = {"image_auroc": m["image_auroc"], **pixel}
    return out


def study_run(run_dir: Path, sigmas, levels, topks, norms=("none",), banks=()) -> dict[str, dict[str, float]]:
    """``variant name -> metrics`` for one run folder."""
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    model = load_model(run_dir)
    size = model.cfg.image_size
    test = load_images(samples(TrainConfig().merged(cfg), run_dir.parent.name, "test"), size)
    fe, fa = _features(model, test.images)
    train, held = _held_out(model, cfg, run_dir.parent.name) if set(norms) - {"none"} or banks else (None, None)
    stats = _level_stats(held) if held is not None else []
    out: dict[str, dict[str, float]] = {}
    for lv, norm, sigma in [(lv, n, s) for lv in levels for n in norms for s in sigmas]:
        idx = [int(c) for c in lv]
        stride = 4 * 2 ** idx[0]
        head = DiscrepancyHead((size, size), sigma, "max", feature_stride=stride)
        weights = {"none": None, "mean": [1.0 / stats[i][0] for i in idx] if stats else None,
                   "z": [1.0 / stats[i][1] for i in idx] if stats else None,
                   "quantile": [0.1 / stats[i][2] for i in idx] if stats else None}[norm]
        for rule, m in _scored(_amap(head, fe, fa, idx, weights), test, topks).items():
            out[f"levels={lv} norm={norm} sigma={sigma:g} score={rule}"] = m
    if banks:
        head = DiscrepancyHead((size, size), model.cfg.blur_sigma, "max")
        z = [1.0 / st[1] for st in stats] if "z" in norms else None
        for name, d in _bank_variants(model, train, held, (fe, fa), list(banks), int(cfg["seed"]), z).items():
            amap = torch.nn.functional.interpolate(head.blur(d), size=head.image_size, mode="bilinear",
                                                   align_corners=False)
            for rule, m in _scored(amap, test, topks).items():
                out[f"{name} score={rule}"] = m
    return out


def _fmt(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f}±{sd:.3f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--logdir", required=True)
    ap.add_argument("--experiment", required=True)
    ap.add_argument("-o", "--output", required=True, help="output path without suffix")
    ap.add_argument("--sigmas", default="4", help="comma-separated blur sigmas (default 4)")
    ap.add_argument("--levels", default="012", help="comma-separated level sets (default 012)")
    ap.add_argument("--topk", default="10,50,200", help="comma-separated k for topk_mean")
    ap.add_argument("--norms", default="none", help="comma-separated level normalisations: none, mean, z, quantile")
    ap.add_argument("--banks", default="", help="comma-separated memory-bank sizes (patches, or N%% of them)")
    args = ap.parse_args(argv)
    torch.set_grad_enabled(False)
    sigmas = [float(s) for s in args.sigmas.split(",")]
    levels = args.levels.split(",")
    topks = [int(k) for k in args.topk.split(",")]
    runs = sorted(Path(args.logdir, args.experiment).glob("*/seed_*/summary.json"))
    if not runs:
        print(f"Error: no finished runs under {Path(args.logdir, args.experiment)}", file=sys.stderr)
        return 1
    # results[variant][class][seed] = metrics
    results: dict = defaultdict(lambda: defaultdict(dict))
    for s in runs:
        run = s.parent
        banks = [b for b in args.banks.split(",") if b]
        for variant, m in study_run(run, sigmas, levels, topks, args.norms.split(","), banks).items():
            results[variant][run.parent.name][run.name] = m
    classes = sorted({c for v in results.values() for c in v})
    lines = [f"# head study: {args.experiment} ({len(runs)} runs)", ""]
    for metric in METRICS:
        lines += [f"## {metric}", "", "| variant | " + " | ".join(classes) + " | mean |",
                  "|---" * (len(classes) + 2) + "|"]
        for variant, per_class in results.items():
            seeds = sorted(set.intersection(*(set(per_class[c]) for c in classes)))
            cells = [_fmt([per_class[c][sd][metric] for sd in per_class[c]]) for c in classes]
            mean = [statistics.mean(per_class[c][sd][metric] for c in classes) for sd in seeds]
            lines.append(f"| {variant} | " + " | ".join(cells) + f" | {_fmt(mean)} |")
        lines.append("")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output + ".md").write_text("\n".join(lines) + "\n")
    Path(args.output + ".json").write_text(json.dumps(results, indent=1) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
