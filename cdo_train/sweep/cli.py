"""``cdo-sweep``: run a grid of cdo-train runs from one YAML on Ray Tune; the same command resumes it.

Example:
    cdo-sweep configs/sweeps/curriculum.yaml --set data_root=photos --dry-run
    cdo-sweep configs/sweeps/curriculum.yaml --set data_root=photos --concurrent 2 --threads-per-trial 1
    cdo-sweep configs/sweeps/curriculum.yaml --set data_root=photos --gpus-per-trial 0.25 --concurrent 4
    cdo-sweep configs/sweeps/curriculum.yaml --set data_root=photos --address auto    # a running Ray cluster
    cdo-sweep configs/sweeps/curriculum.yaml --set data_root=photos --collect docs/results/curriculum
"""

from __future__ import annotations

import logging
import sys

import click

from cdo_deploy.errors import CdoError

from .. import __version__

__all__ = ["main"]

_COLS = ("image_auroc", "pixel_auroc", "aupro")


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="cdo-sweep")
@click.argument("sweep_file", metavar="SWEEP.yaml", type=click.Path(dir_okay=False))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override the file (repeatable): a cdo-train field for every trial (data_root=photos, "
                   "steps=500) or a sweep key (classes=[lunar,fur], seeds=3, output_dir=..., name=...).")
@click.option("--concurrent", type=click.IntRange(1), default=None,
              help="Trials at a time (default: CPUs // --threads-per-trial).")
@click.option("--threads-per-trial", "threads", type=click.IntRange(1), default=1, show_default=True,
              help="Torch threads and Ray CPUs per trial.")
@click.option("--gpus-per-trial", "gpus", type=click.FloatRange(0), default=0.0, show_default=True,
              help="GPU fraction per trial (0.25: four trials share a GPU); 0 trains on the CPU.")
@click.option("--address", default=None,
              help="Join a running Ray cluster (auto, HOST:PORT or ray://HOST:PORT) instead of starting one here.")
@click.option("--dry-run", is_flag=True, help="List every trial and what it would do (skip, resume, start); run nothing.")
@click.option("--collect", "collect_dir", type=click.Path(file_okay=False), default=None,
              help="Then copy the finished trials' metrics, summary and config (no weights) to this folder, as "
                   "<experiment>/<class>/seed_<n>.")
@click.option("-v", "--verbose", count=True)
def _cli(sweep_file, sets, concurrent, threads, gpus, address, dry_run, collect_dir, verbose):
    """Run every (grid point, class, seed) trial of SWEEP.yaml that is not finished, N at a time.

    Each trial is one cdo-train run in <output_dir>/<name>/<class>/seed_<n>. Run the same command again
    after a stop: finished runs are skipped, interrupted ones continue from their checkpoint, dead ones
    start again. Needs Ray (pip install 'cdo[sweep]') unless nothing is left to run.
    """
    logging.basicConfig(level=logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING,
                        format="%(message)s")
    from . import collect, load_sweep, plan, run_sweep
    from ..cli import _key_values

    try:
        sweep = load_sweep(sweep_file, _key_values(sets))
        todo = plan(sweep)
        counts = {a: sum(1 for _, b in todo if b == a) for a in ("skip", "resume", "start")}
        click.echo(f"{sweep.name}: {len(todo)} trials in {sweep.output_dir}: {counts['skip']} finished, "
                   f"{counts['resume']} to resume, {counts['start']} to start")
        if dry_run:
            for trial, act in todo:
                click.echo(f"  {act:<7}{trial.key}")
            return
        try:
            report = run_sweep(sweep, concurrent=concurrent, threads=threads, gpus=gpus, address=address)
        except KeyboardInterrupt as e:  # SweepInterrupted: SIGINT or SIGTERM while Ray ran
            click.echo("Interrupted: run the same command to continue (finished trials are kept)", err=True)
            sys.exit(128 + getattr(e, "signum", 2))
        click.echo(f"{'trial':<40}{'did':>8}" + "".join(f"{c:>13}" for c in _COLS) + f"{'time s':>9}")
        for r in report.results:
            vals = "".join(f"{r.last[c]:>13.4f}" if isinstance(r.last.get(c), float) else f"{'-':>13}" for c in _COLS)
            click.echo(f"{r.key:<40}{r.action:>8}{vals}{r.seconds:>9.1f}")
        if collect_dir:
            written = collect(sweep.trials, collect_dir)
            click.echo(f"collected {len(written)} finished run(s) to {collect_dir}")
    except CdoError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"compare: python tools/comparison.py --logdir {sweep.output_dir} "
               f"-o {sweep.output_dir}/comparison/table.png")
    if report.failed:
        lines = "; ".join(f"{r.key}: {r.error or r.status or 'no result'}" for r in report.failed)
        raise click.ClickException(f"{len(report.failed)} of {len(report.results)} trials did not finish ({lines}); "
                                   "fix the cause and run the same command again")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    _cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="cdo-sweep")


if __name__ == "__main__":
    main()
