"""Training cost of the default configuration: today's step and the new one, side by side in one run.

Each variant is a full training step as ``cdo-train`` runs it (batch of training images, synthetic
anomalies, teacher and student passes with the variant's precision and memory format, the CDO loss,
backward, AdamW) on a freshly initialised model (the same seed for every variant). Every variant runs
in a fresh process of its own (one process's oneDNN primitive cache and allocator state would
otherwise favour or penalise whichever variant ran before it), for ``--steps`` steps after
``--warmup``; the variants take turns over ``--rounds`` rounds (A B A B ...), so a machine whose load
changes during the run slows them alike. A step is timed in CPU core-seconds of its process
(``os.times``: user + system, every thread) and in wall seconds.

Printed per variant: median core-ms and wall-ms per step (median over rounds of each round's median),
core-seconds per 1000 steps, the variant's default length and core-seconds per default run (steps x
step cost + the evaluations of a run: one evaluation on the test set is timed once when
``--data-root`` has one), and the ratios to the first variant. ``--json`` writes the numbers.

Usage:
    tools/train_speed.py --data-root result/photo_data --class-name fur
    tools/train_speed.py --variant "today:--cpu-bf16 false --steps 1000" --variant "nhwc:--channels-last true" \\
        --variant "new:" --steps 10            # the defaults (random images without --data-root)
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

import torch

from cdo_train.synth.anomalies import SynthParams, synthesize
from cdo_train.training.config import TrainConfig
from cdo_train.training.meters import cpu_seconds
from cdo_train.model.cdo_model import CDOModel, ModelConfig
from cdo_train.training.step import batch_loss, native_bf16, step_precision, to_float_batch

DEFAULT_VARIANTS = ("today:--cpu-bf16 false --steps 1000", "new:")


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
    from cdo_train.training.evaluation import load_images

    cfg = TrainConfig(data_root=args.data_root, class_names=(args.class_name,))
    train = load_images(samples(cfg, args.class_name, "train"), args.image_size)
    test = samples(cfg, args.class_name, "test")
    return torch.from_numpy(train.images), load_images(test, args.image_size) if test else None


def _profile_table(prof, steps: int, wall_s: float) -> str:
    """The labelled phases of a step (ms per step, share of the step's wall time), then the heaviest ops."""
    avg = {e.key: e for e in prof.key_averages()}
    lines = [f"{'phase':<28}{'ms/step':>9}{'share':>8}"]
    for key in ("cdo.batch", "cdo.teacher", "cdo.student", "cdo.loss", "cdo.backward", "Optimizer.step#AdamW.step"):
        if key in avg:
            ms = avg[key].cpu_time_total / 1e3 / steps
            lines.append(f"{key:<28}{ms:>9.1f}{ms / (wall_s * 1e3 / steps):>8.1%}")
    lines.append(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=36))
    return "\n".join(lines)


def _worker(args, flags: str) -> dict:
    """Time ``args.steps`` steps of one variant in this process: per-step core and wall seconds."""
    torch.manual_seed(0)
    images, test = _images(args)
    cfg = _config(flags, TrainConfig(image_size=args.image_size, device="cpu"))
    model = CDOModel(ModelConfig(cfg.backbone, args.image_size)).train()
    precision = step_precision(cfg.amp, cfg.cpu_bf16, cfg.channels_last, torch.device("cpu"))
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(1)
    core, wall = [], []
    prof = None
    for i in range(args.warmup + args.steps):
        if i == args.warmup and args.profile:
            prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            prof.__enter__()
        c0, w0 = cpu_seconds(), time.perf_counter()
        with torch.profiler.record_function("cdo.batch"):
            idx = torch.randint(0, len(images), (cfg.batch_size,), generator=gen)
            x, mask = synthesize(to_float_batch(images[idx]), SynthParams(), gen)
        loss = batch_loss(model, x, mask, gamma=cfg.gamma, oom=cfg.oom, precision=precision)
        opt.zero_grad(set_to_none=True)
        with torch.profiler.record_function("cdo.backward"):
            loss.backward()
        opt.step()
        if i >= args.warmup:
            core.append(cpu_seconds() - c0)
            wall.append(time.perf_counter() - w0)
    if prof is not None:
        prof.__exit__(None, None, None)
        print(_profile_table(prof, args.steps, sum(wall)), file=sys.stderr)
    out = {"core": core, "wall": wall, "precision": precision.name, "channels_last": precision.channels_last,
           "steps": cfg.total_steps(len(images)), "evaluations": -(-cfg.total_steps(len(images)) // cfg.eval_every)}
    if args.eval and test is not None:  # one evaluation (fp32, as every run's)
        from cdo_train.training.evaluation import evaluate

        c0 = cpu_seconds()
        evaluate(model, test, torch.device("cpu"), cfg.batch_size)
        out["eval_core"] = cpu_seconds() - c0
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", help="MVTec-layout dataset (default: random images)")
    ap.add_argument("--class-name", default=None)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per variant and round (after --warmup)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3, help="turns each variant takes (A B A B ...)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (cdo's studies run 1 per run)")
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--variant", action="append", metavar="NAME:FLAGS",
                    help=f"cdo-train flags of a variant (repeatable; default {DEFAULT_VARIANTS})")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--profile", action="store_true",
                    help="also print where each variant's step spends its time (torch.profiler, first round)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)  # internal: time one variant's FLAGS in this process
    ap.add_argument("--eval", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.data_root and not args.class_name:
        ap.error("--data-root needs --class-name")
    torch.set_num_threads(args.threads)
    if args.worker is not None:
        print(json.dumps(_worker(args, args.worker)))
        return 0
    specs = [v.partition(":")[::2] for v in (args.variant or DEFAULT_VARIANTS)]
    common = [sys.executable, __file__, "--steps", str(args.steps), "--warmup", str(args.warmup),
              "--threads", str(args.threads), "--image-size", str(args.image_size)]
    if args.data_root:
        common += ["--data-root", args.data_root, "--class-name", args.class_name]
    runs: dict[str, list[dict]] = {name: [] for name, _ in specs}
    for r in range(args.rounds):
        for k, (name, flags) in enumerate(specs):
            cmd = common + ["--worker", flags] + (["--eval"] if r == 0 and k == 0 else [])
            cmd += ["--profile"] if args.profile and r == 0 else []
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return 1
            if args.profile and r == 0:
                print(f"--- {name} ({flags or 'defaults'})\n{proc.stderr}", file=sys.stderr)
            runs[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1}/{args.rounds} {name}: {statistics.median(runs[name][-1]['core']) * 1e3:.0f} core-ms/step",
                  file=sys.stderr)
    eval_core = runs[specs[0][0]][0].get("eval_core", 0.0)
    rows = []
    for name, _ in specs:
        rs = runs[name]
        step_core = statistics.median(statistics.median(x["core"]) for x in rs)
        step_wall = statistics.median(statistics.median(x["wall"]) for x in rs)
        steps, evals = rs[0]["steps"], rs[0]["evaluations"]
        rows.append({"variant": name, "precision": rs[0]["precision"], "channels_last": rs[0]["channels_last"],
                     "core_ms_per_step": round(step_core * 1e3, 1), "wall_ms_per_step": round(step_wall * 1e3, 1),
                     "core_ms_per_step_rounds": [round(statistics.median(x["core"]) * 1e3, 1) for x in rs],
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
    print(f"({args.rounds} rounds x {args.steps} steps per variant after {args.warmup} warm-up, each in a fresh "
          f"process, {args.threads} thread(s), {args.image_size} px; evaluation {eval_core:.1f} core-s each; medians)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "rounds": args.rounds, "steps": args.steps, "threads": args.threads,
                       "image_size": args.image_size, "eval_core_s": round(eval_core, 2), "data": args.data_root,
                       "class": args.class_name, "torch": torch.__version__,
                       "cpu_capability": torch.backends.cpu.get_cpu_capability(), "native_bf16": native_bf16(),
                       "date": time.strftime("%Y-%m-%d")}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
