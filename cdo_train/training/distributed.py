"""Fast and multi-process training: DistributedDataParallel, GPU-side anomalies, throughput.

The same run folders, metrics and checkpoints as :func:`cdo_train.training.trainer.train`,
from N processes (one per GPU; gloo on CPU for tests, nccl on CUDA)::

    cdo-train ... --nproc 2                                        # spawns the processes itself
    torchrun --standalone --nproc_per_node 2 -m cdo_train.cli ...  # or the launcher's world size

How the work is split (:func:`train_distributed`): the (class, seed) runs are
spread over the processes. With at least as many runs as processes each
process trains whole runs alone (the better split for ``--class-name all``: no
communication at all); with fewer, the processes are cut into one process
group per run and each group trains its run with DDP.

Within a DDP group every process sees the same global batches (the trainer's
seeded permutation) and the same synthetic anomalies, and trains on its
contiguous shard of each batch (padded by wrap-around like
``DistributedSampler``, so every process takes the same number of steps);
DDP averages the student gradients. Only the group's first process evaluates,
calibrates, writes the run folder and saves the one checkpoint; the others
wait at a barrier. Differences to one process: BatchNorm statistics and the
loss's normalisation are per shard, so metrics agree within noise.

Speed (CUDA): fp16 AMP with a GradScaler and channels-last, the uint8
training set resident on the GPU (decoded once: no loader workers needed),
synthetic anomalies blended on the GPU (:func:`cdo_train.synth.anomalies.synthesize`, whose
draws are the CPU generator's, so a seed trains on the same anomalies in every path) and the
loss kept on the GPU between checks. The run's state, checkpoints, resume
and throughput log are :class:`cdo_train.training.run.TrainingRun`'s, shared with
the single-process trainer; ``throughput.json`` adds ``processes``.

Example:
    >>> from cdo_train.training.config import TrainConfig
    >>> runs = launch(TrainConfig(data_root="demo_data", class_names=("weave",)), nproc=2)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import signal
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from cdo_deploy.errors import CdoError

from ..synth.anomalies import synthesize
from .config import TrainConfig
from .run import RunResult, TrainingRun
from .signals import StopSignal
from .step import batch_loss, to_float_batch
from .trainer import planned_runs, resolve_device

__all__ = ["DistContext", "in_torchrun", "launch", "shard", "train_distributed",
           "train_one_distributed"]

log = logging.getLogger(__name__)

#: keep the training set on the GPU up to this size (bytes); above it, pinned host memory.
GPU_RESIDENT_BYTES = 4 << 30


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: its global rank and the process group of its run.

    Attributes:
        rank, world_size, local_rank: global rank, number of processes, rank on this machine (its GPU).
        group, group_rank, group_size: the run's process group (``None``: trained alone), rank and size in it.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    group: Any = None
    group_rank: int = 0
    group_size: int = 1

    @property
    def is_main(self) -> bool:  # this process writes the run folder
        return self.group_rank == 0


def in_torchrun() -> bool:
    """Whether torchrun (or :func:`launch`) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def shard(idx: torch.Tensor, rank: int, size: int) -> torch.Tensor:
    """This process's contiguous share of a global batch of indices, padded by wrap-around.

    Example:
        >>> [shard(torch.arange(5), r, 2).tolist() for r in range(2)]
        [[0, 1, 2], [3, 4, 0]]
    """
    n = len(idx)
    per = math.ceil(n / size)
    padded = idx[torch.arange(per * size) % n]
    return padded[rank * per:(rank + 1) * per]


def _share_ordering(run: TrainingRun, ctx: DistContext, device: torch.device) -> None:
    """Give every process of a DDP group the group's first process's ordering scores (each process scored
    the images itself, and GPU arithmetic need not agree bit for bit), so all draw the same batches."""
    from .ordering import DataCurriculum

    scores = torch.from_numpy(run.ordering.scores.copy()).to(device)
    dist.broadcast(scores, src=dist.get_global_rank(ctx.group, 0), group=ctx.group)
    run.ordering = DataCurriculum(scores.cpu().numpy(), run.ordering.start)


def _group_mean(value: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """``value`` averaged over the run's process group (one all-reduce)."""
    if ctx.group_size == 1:
        return value
    t = value.detach().to(torch.float64).clone()
    dist.all_reduce(t, group=ctx.group)
    return t / ctx.group_size


def _stop_requested(stop: StopSignal, ctx: DistContext, device: torch.device) -> int | None:
    """The signal any process of the group received (one all-reduce, which is also the epoch's barrier)."""
    if ctx.group_size == 1:
        return stop.signum
    flag = torch.tensor([stop.signum or 0], dtype=torch.int64, device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=ctx.group)
    return int(flag) or None


def train_one_distributed(cfg: TrainConfig, class_name: str, seed: int, ctx: DistContext, *, exist_ok: bool = False,
                          resume: tuple[Path, dict[str, Any]] | None = None) -> RunResult | None:
    """Train one (class, seed) run on the processes of ``ctx.group`` (or continue it from ``resume``).

    The run's state, checkpoints and end are :class:`cdo_train.training.run.TrainingRun`'s, as in
    :func:`cdo_train.training.trainer.train_one`. Alone in its group, a process stops after the step a signal
    arrived in; in a DDP group all processes stop together at the end of that epoch.

    Returns:
        The run's result on the group's first process, ``None`` on the others.

    Raises:
        CdoError: as :func:`cdo_train.training.trainer.train_one`.
        TrainingInterrupted: SIGINT / SIGTERM, after the checkpoint was saved.
    """
    device = resolve_device(cfg.device)
    if device.type == "cuda" and ctx.world_size > 1:
        device = torch.device("cuda", ctx.local_rank)  # one GPU per process
    run = TrainingRun(cfg, class_name, seed, device, main=ctx.is_main, exist_ok=exist_ok, resume=resume,
                      processes=ctx.group_size)
    if run.ordering is not None and ctx.group_size > 1:
        _share_ordering(run, ctx, device)
    model, cuda = run.model, device.type == "cuda"
    train_imgs = run.train_imgs
    if cuda:
        on_gpu = train_imgs.numel() <= GPU_RESIDENT_BYTES
        train_imgs = train_imgs.to(device) if on_gpu else train_imgs.pin_memory()
    student: torch.nn.Module = model.student
    if ctx.group_size > 1:
        student = torch.nn.parallel.DistributedDataParallel(
            model.student, device_ids=[device.index] if cuda else None, process_group=ctx.group,
            gradient_as_bucket_view=True)

    def reduce(v: torch.Tensor) -> torch.Tensor:
        return _group_mean(v, ctx)

    with run.progress.console(), StopSignal() as stop:
        while not run.done:
            for idx in run.epoch_batches():
                t, params, gamma = run.knobs()
                x = to_float_batch(train_imgs[idx.to(train_imgs.device)].to(device, non_blocking=True))
                # the single-process trainer's generator: the same anomalies for a seed on every device
                x, mask = synthesize(x, params, run.gen, cfg.foreground_only) if cfg.mom else (x, None)
                mine = shard(torch.arange(len(idx)), ctx.group_rank, ctx.group_size).to(x.device)
                x = x[mine]
                mask = mask[mine] if mask is not None else None
                loss = batch_loss(model, x, mask, gamma=gamma, oom=cfg.oom, precision=run.precision, student=student,
                                  hard_quantile=cfg.hard_quantile, penalty=run.penalty_batch(),
                                  penalty_weight=cfg.penalty_weight)
                run.optimise(loss, t, params, gamma, len(idx), reduce if ctx.group_size > 1 else None)
                if ctx.group_size == 1 and stop.signum is not None:
                    run.interrupt(stop.signum)
            run.end_epoch(reduce if ctx.group_size > 1 else None)
            signum = _stop_requested(stop, ctx, device)  # the others wait while the first process evaluates
            if signum is not None:
                run.interrupt(signum)
    result = run.finish()
    if result is not None:
        log.info("%s s%d: %.1f training images/s on %d process(es) (%s)", class_name, seed,
                 run.throughput.summary()["images_per_s"], ctx.group_size, device)
    return result


def _split(n_runs: int, world: int) -> list[list[int]]:
    """Ranks per run group: whole runs per process when ``n_runs >= world``, else contiguous rank blocks."""
    if n_runs >= world:
        return [[r] for r in range(world)]
    return [list(range(g * world // n_runs, (g + 1) * world // n_runs)) for g in range(n_runs)]


def train_distributed(cfg: TrainConfig, *, exist_ok: bool = False,
                      resume: str | Path | tuple[Path, dict[str, Any]] | None = None) -> list[RunResult]:
    """Train every requested class and seed over the processes of this job.

    Call it in every process (torchrun or :func:`launch` set ``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``); without
    them it trains in this process alone (the fast single-GPU path).

    Args:
        cfg: the configuration (with ``resume``: only ``device``, ``progress`` and ``save_every`` count).
        exist_ok: replace runs already in their folders.
        resume: an interrupted run folder to continue instead (every process reads its checkpoint), or
            ``(run folder, checkpoint)`` already read with :func:`~cdo_train.training.trainer.resume_config`
            (then ``cfg`` is that config, overrides applied).

    Returns:
        Every run's result, in (class, seed) order, on every process.
    """
    from .trainer import resume_config

    state: tuple[Path, dict[str, Any]] | None = None
    if isinstance(resume, tuple):  # read once by the caller (cdo-train --resume --nproc 1)
        state, runs = (Path(os.path.abspath(resume[0])), resume[1]), [(resume[1]["class_name"], resume[1]["seed"])]
    elif resume is not None:
        cfg, ckpt = resume_config(resume, device=cfg.device, progress=cfg.progress, save_every=cfg.save_every)
        state, runs = (Path(os.path.abspath(resume)), ckpt), [(ckpt["class_name"], ckpt["seed"])]
    else:
        runs = planned_runs(cfg, exist_ok)
    if not in_torchrun():
        ctx = DistContext()
        return [r for c, s in runs
                if (r := train_one_distributed(cfg, c, s, ctx, exist_ok=exist_ok, resume=state)) is not None]
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    cuda = resolve_device(cfg.device).type == "cuda"
    if cuda:
        if local >= torch.cuda.device_count():
            raise CdoError(f"process {rank} wants GPU {local} but only {torch.cuda.device_count()} are present; "
                           f"use --nproc <= {torch.cuda.device_count()}")
        torch.cuda.set_device(local)
    owns_pg = not dist.is_initialized()
    if owns_pg:
        dist.init_process_group("nccl" if cuda else "gloo")
    try:
        blocks = _split(len(runs), world)
        groups = [dist.new_group(b) if len(b) > 1 else None for b in blocks]  # every rank creates every group
        mine: list[RunResult] = []
        for g, ranks in enumerate(blocks):
            if rank not in ranks:
                continue
            ctx = DistContext(rank, world, local, groups[g], ranks.index(rank), len(ranks))
            todo = runs[g::len(blocks)] if len(runs) >= world else [runs[g]]
            for c, s in todo:
                res = train_one_distributed(cfg, c, s, ctx, exist_ok=exist_ok, resume=state)
                if res is not None:
                    mine.append(res)
        gathered: list[list[RunResult]] = [[] for _ in range(world)]
        dist.all_gather_object(gathered, mine)
    finally:
        if owns_pg:
            dist.destroy_process_group()
    order = {run: i for i, run in enumerate(runs)}
    return sorted((r for part in gathered for r in part), key=lambda r: order[(r.class_name, r.seed)])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, cfg: TrainConfig, nproc: int, port: int, out: str, level: int, exist_ok: bool,
            resume: str | None) -> None:
    logging.basicConfig(level=level if rank == 0 else logging.WARNING, format=f"[rank {rank}] %(message)s")
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(nproc),
                       "LOCAL_WORLD_SIZE": str(nproc), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    try:
        results = train_distributed(cfg, exist_ok=exist_ok, resume=resume)
    except CdoError as e:
        results = e
    if rank == 0 or isinstance(results, CdoError):
        with open(f"{out}.{rank}", "wb") as f:
            pickle.dump(results, f)


def launch(cfg: TrainConfig, nproc: int, *, exist_ok: bool = False,
           resume: str | Path | tuple[Path, dict[str, Any]] | None = None) -> list[RunResult]:
    """Start ``nproc`` local processes (like ``torchrun --standalone``) and train in all of them.

    While they run, this process ignores SIGINT: Ctrl-C reaches the training processes, which save
    their checkpoint and stop (:class:`cdo_train.training.checkpoint.TrainingInterrupted` is raised here then).

    Raises:
        CdoError: bad ``nproc``, more processes than GPUs, or the first error a process hit.
    """
    if nproc < 1:
        raise CdoError(f"--nproc must be >= 1, got {nproc}")
    if nproc == 1 or in_torchrun():  # one process, or already one of torchrun's
        return train_distributed(cfg, exist_ok=exist_ok, resume=resume)
    if isinstance(resume, tuple):  # the processes read the checkpoint themselves
        resume = resume[0]
    if resolve_device(cfg.device).type == "cuda" and nproc > torch.cuda.device_count():
        raise CdoError(f"--nproc {nproc}: only {torch.cuda.device_count()} GPU(s) present (one process per GPU)")
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="cdo-ddp-") as tmp:
        out = str(Path(tmp) / "result")
        failure: Exception | None = None
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            mp.start_processes(_worker, args=(cfg, nproc, _free_port(), out, logging.getLogger().level or 20,
                                              exist_ok, None if resume is None else str(resume)),
                               nprocs=nproc, join=True, start_method="spawn")
        except mp.ProcessRaisedException as e:  # a bug: keep the worker's traceback text
            raise RuntimeError(f"a training process failed:\n{e}") from None
        except mp.ProcessExitedException as e:
            failure = e
        finally:
            signal.signal(signal.SIGINT, old)
        results = {}
        for path in sorted(Path(tmp).glob("result.*")):
            with open(path, "rb") as f:
                results[path.suffix] = pickle.load(f)
        for res in results.values():
            if isinstance(res, CdoError):
                raise res  # a user error (same message on every process)
        if failure is not None or ".0" not in results:
            raise RuntimeError(f"a training process died: {failure}")
        return results[".0"]
