"""Training cost of the default configuration: today's step and the new one, side by side in one run.

Each variant is a full training step as ``cdo-train`` runs it (batch of training images, synthetic
anomalies, teacher and student passes with the variant's precision and memory format, the CDO loss,
backward, AdamW) on its own copy of the same freshly initialised model. The variants' steps are
interleaved (A B A B ...), so a machine whose load changes during the run slows them alike. Each
step is timed in CPU core-seconds of this process (``os.times``: user + system, every thread), and
in wall seconds.

Printed per variant: median core-ms and wall-ms per step, core-seconds per 1000 steps, the
variant's default length and core-seconds per default run (steps x step cost + the evaluations of a
run: one evaluation on the test set is timed too when ``--data-root`` has one), and the ratio to
the first variant. ``--json`` writes the numbers.

Usage:
    tools/train_speed.py --data-root result/photo_data --class-name fur --steps 20 --threads 1
    tools/train_speed.py --variant "today:--cpu-bf16 false --channels-last false --steps 1000" \\
        --variant "new:" --steps 10            # the defaults (random images without --data-root)
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import statistics
import sys
import time
from dataclasses import dataclass

import torch

from cdo_train.anomalies import SynthParams, synthesize
from cdo_train.config import TrainConfig
from cdo_train.models import CDOModel, ModelConfig
from cdo_train.step import batch_loss, step_precision, to_float_batch

DEFAULT_VARIANTS = ("today:--cpu-bf16 false --channels-last false --steps 1000", "new:")


@dataclass
class Variant:
    name: str
    cfg: TrainConfig
    model: CDOModel
    opt: torch.optim.Optimizer
    precision: object
    core: list[float]
    wall: list[float]


def _config(flags: str, base: TrainConfig) -> TrainConfig:
    """``--key value`` pairs (cdo-train's spelling) on top of ``base``."""
    words = shlex.split(flags)
    if len(words) % 2:
        raise SystemExit(f"error: variant flags must be --key value pairs, got {flags!r}")
    over = {}
    for key, value in zip(words[::2], words[1::2]):
        over[key.lstrip("-").replace("-", "_")] = {"true": True, "false": False}.get(value.lower(), value)
    for k in ("steps", "batch_size", "image_size"):
        if k in over:
            over[k] = int(over[k])
    return base.merged(over)


def _images(args) -> tuple[torch.Tensor, object]:
    """Training images (N, H, W, 3) uint8 and the test set (or None)."""
    if args.data_root is None:
        g = torch.Generator().manual_seed(0)
        return torch.randint(0, 256, (32, args.image_size, args.image_size, 3), dtype=torch.uint8, generator=g), None
    from cdo_train.data.splits import samples
    from cdo_train.evaluation import load_images

    cfg = TrainConfig(data_root=args.data_root, class_names=(args.class_name,))
    train = load_images(samples(cfg, args.class_name, "train"), args.image_size)
    test = samples(cfg, args.class_name, "test")
    return torch.from_numpy(train.images), load_images(test, args.image_size) if test else None


def _step(v: Variant, images: torch.Tensor, gen: torch.Generator, batch: int) -> None:
    idx = torch.randint(0, len(images), (batch,), generator=gen)
    x, mask = synthesize(to_float_batch(images[idx]), SynthParams(), gen)
    loss = batch_loss(v.model, x, mask, gamma=v.cfg.gamma, oom=v.cfg.oom, precision=v.precision)
    v.opt.zero_grad(set_to_none=True)
    loss.backward()
    v.opt.step()


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", help="MVTec-layout dataset (default: random images)")
    ap.add_argument("--class-name", default=None)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per variant (after --warmup)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (cdo's studies run 1 per run)")
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--variant", action="append", metavar="NAME:FLAGS",
                    help=f"cdo-train flags of a variant (repeatable; default {DEFAULT_VARIANTS})")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    if args.data_root and not args.class_name:
        ap.error("--data-root needs --class-name")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images, test = _images(args)
    base_cfg = TrainConfig(image_size=args.image_size, device="cpu")
    base = CDOModel(ModelConfig(base_cfg.backbone, args.image_size))
    variants = []
    for spec in args.variant or DEFAULT_VARIANTS:
        name, _, flags = spec.partition(":")
        cfg = _config(flags, base_cfg)
        model = copy.deepcopy(base).train()
        precision = step_precision(cfg.amp, cfg.cpu_bf16, cfg.channels_last, torch.device("cpu"))
        if precision.channels_last:
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(model.student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        variants.append(Variant(name, cfg, model, opt, precision, [], []))
    gen = torch.Generator().manual_seed(1)
    for i in range(args.warmup + args.steps):
        for v in variants:
            c0, w0 = _cpu(), time.perf_counter()
            _step(v, images, gen, v.cfg.batch_size)
            if i >= args.warmup:
                v.core.append(_cpu() - c0)
                v.wall.append(time.perf_counter() - w0)
    eval_core = 0.0
    if test is not None:  # one evaluation (fp32, as every run's), timed once: the same for every variant
        from cdo_train.evaluation import evaluate

        c0 = _cpu()
        evaluate(variants[0].model, test, torch.device("cpu"), base_cfg.batch_size)
        eval_core = _cpu() - c0
    rows = []
    for v in variants:
        step_core = statistics.median(v.core)
        steps = v.cfg.total_steps(len(images))
        evals = -(-steps // v.cfg.eval_every)
        rows.append({"variant": v.name, "precision": v.precision.name, "channels_last": v.precision.channels_last,
                     "core_ms_per_step": round(step_core * 1e3, 1), "wall_ms_per_step": round(statistics.median(v.wall) * 1e3, 1),
                     "core_s_per_1000_steps": round(step_core * 1000, 1), "default_steps": steps, "evaluations": evals,
                     "core_s_per_default_run": round(step_core * steps + evals * eval_core, 1)})
    ref = rows[0]
    print(f"{'variant':<10}{'prec':>6}{'NHWC':>6}{'core ms/step':>14}{'wall ms/step':>14}{'core s/1000':>13}"
          f"{'steps':>7}{'core s/run':>12}{'step x':>8}{'run x':>7}")
    for r in rows:
        r["step_speedup"] = round(ref["core_ms_per_step"] / r["core_ms_per_step"], 2)
        r["run_speedup"] = round(ref["core_s_per_default_run"] / r["core_s_per_default_run"], 2)
        print(f"{r['variant']:<10}{r['precision']:>6}{str(r['channels_last']):>6}{r['core_ms_per_step']:>14}"
              f"{r['wall_ms_per_step']:>14}{r['core_s_per_1000_steps']:>13}{r['default_steps']:>7}"
              f"{r['core_s_per_default_run']:>12}{r['step_speedup']:>8}{r['run_speedup']:>7}")
    print(f"({args.steps} interleaved steps per variant after {args.warmup} warm-up, {args.threads} thread(s), "
          f"{args.image_size} px; evaluation {eval_core:.1f} core-s each; medians)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "steps": args.steps, "threads": args.threads, "image_size": args.image_size,
                       "eval_core_s": round(eval_core, 2), "data": args.data_root, "class": args.class_name,
                       "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                       "date": time.strftime("%Y-%m-%d")}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
