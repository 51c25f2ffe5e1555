"""Peers side by side with cdo: anomalib's PatchCore (and PaDiM) on the project's teacher vs cdo-train runs.

For each class and seed, every peer (``tools/peer_models.py``: anomalib 2.7's own torch
models, the project's ``tf_efficientnet_lite0`` teacher with its offline ImageNet weights)
is fitted on all good training images and run on the test set; every finished cdo-train
run found under ``--cdo-runs`` for those classes is re-predicted on the same test set with
``cdo_train.api.load_run(...).predict``. Both are scored by one function,
``cdo_train.training.metrics.compute_metrics``, on masks at ``--image-size`` (a cdo run trained at
another size has its maps resized bilinearly to it).

Writes under ``--out``:

* ``<method>/<class>/seed_<n>.json``: metrics, wall and CPU time of fit and inference per
  image, the configuration (``--save-maps``: also ``seed_<n>.npz`` with maps and scores).
  An existing result with the same configuration is reused unless ``--force``;
* ``peers.md`` / ``peers.png``: per metric (image AUROC, pixel AUROC, AUPRO) rows =
  methods, columns = classes and their mean (per-seed class average), mean ± std over
  seeds, Δ = paired per-seed difference of the mean from PatchCore (cdo − PatchCore);
  then a timing table.

``--anomalib-metrics`` also stores anomalib's own AUROC / ``_AUPRO`` and scikit-learn's
AUROCs on the same maps and prints the largest difference from the project's metrics.

Usage:
    make peers-venv
    .venv-peers/bin/python tools/peers.py --data-root D --class-name turf --class-name cells --seeds 3 \\
        --peer patchcore --cdo-runs result/x --out result/peers
    # the photo suite (docs/results/photo_suite.md; tools/photo_suite.sh writes data and runs):
    .venv-peers/bin/python tools/peers.py --data-root result/photo_data --class-name all --seeds 3 \\
        --cdo-runs result/photo/default --out result/photo_peers
    # cdo runs only, without anomalib (main venv):
    .venv/bin/python tools/peers.py --data-root result/photo_data --class-name all --no-peers \\
        --cdo-runs result/photo/default --out result/photo_peers
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: nothing here may download

import numpy as np  # noqa: E402
import torch  # noqa: E402

if not __package__:  # run as `python tools/peers.py`: the checkout's root, so `tools` imports as a package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools import comparison, peer_models  # noqa: E402

from cdo_deploy.errors import CdoError  # noqa: E402
from cdo_train.data import list_classes, list_samples  # noqa: E402
from cdo_train.training.evaluation import EvalSet, load_images  # noqa: E402
from cdo_train.training.metrics import compute_metrics  # noqa: E402
from cdo_train.training.run_folder import MODEL_CONFIG, SUMMARY, WEIGHTS, run_seed, run_status  # noqa: E402

BASELINE = "patchcore"
CDO_PREFIX = "cdo-"


@dataclass(frozen=True)
class CdoRun:
    """A finished cdo-train run folder ``.../<experiment>/<class>/seed_<n>``."""

    experiment: str
    class_name: str
    seed: int
    run_dir: Path

    @property
    def method(self) -> str:
        return CDO_PREFIX + self.experiment


def _as_run(run_dir: Path) -> Optional[CdoRun]:
    """The run in ``run_dir`` if it is a finished cdo-train run folder, else ``None``."""
    if not all((run_dir / f).is_file() for f in (MODEL_CONFIG, WEIGHTS)):
        return None
    if run_status(run_dir) != "finished":  # an interrupted run writes a summary (and weights) too
        return None
    seed = run_seed(run_dir)
    if seed is None:
        return None
    return CdoRun(run_dir.parent.parent.name, run_dir.parent.name, seed, run_dir)


def find_cdo_runs(paths: list[str | Path], classes: list[str]) -> list[CdoRun]:
    """Finished cdo-train runs of ``classes`` in or under each path, sorted.

    A path may be one run folder, an experiment folder or a whole ``--output-dir``.

    Raises:
        CdoError: a path does not exist, holds no finished run of these classes, or two
            runs share experiment, class and seed.
    """
    found: dict[tuple[str, str, int], CdoRun] = {}
    for path in map(Path, paths):
        if not path.is_dir():
            raise CdoError(f"--cdo-runs {path}: no such folder")
        one = _as_run(path)
        runs = [one] if one else [_as_run(p.parent) for p in sorted(path.rglob(SUMMARY))]
        runs = [r for r in runs if r is not None and r.class_name in classes]
        if not runs:
            raise CdoError(f"--cdo-runs {path}: no finished cdo-train run of {', '.join(classes)} "
                           "(expected <experiment>/<class>/seed_<n>/ with summary.json and model.safetensors)")
        for r in runs:
            key = (r.experiment, r.class_name, r.seed)
            if key in found:
                raise CdoError(f"two runs of experiment {r.experiment}, class {r.class_name}, seed {r.seed}: "
                               f"{found[key].run_dir} and {r.run_dir} (pass only one of them)")
            found[key] = r
    return sorted(found.values(), key=lambda r: (r.experiment, r.class_name, r.seed))


def score(test: EvalSet, scores: np.ndarray, maps: np.ndarray) -> dict[str, Optional[float]]:
    """The project's metrics (``compute_metrics``) of one method on one test set; the only scorer here."""
    return compute_metrics(test.labels, scores, test.masks if test.labels.any() else None, maps)


def _resized(maps: np.ndarray, size: int) -> np.ndarray:
    """``(N, h, w)`` maps -> ``(N, size, size)``, bilinear (unchanged when already that size)."""
    if maps.shape[-2:] == (size, size):
        return maps
    t = torch.nn.functional.interpolate(torch.from_numpy(maps)[:, None], size=(size, size), mode="bilinear",
                                        align_corners=False)
    return t[:, 0].numpy()


def predict_cdo(run: CdoRun, samples, size: int, batch_size: int, device: str):
    """Re-predict ``samples`` with a cdo run (``load_run(...).predict``) at the run's own image size.

    Returns:
        ``(maps (N, size, size), scores (N,), inference Clock, the run's image size)``; maps
        of a run trained at another size are resized bilinearly to ``size``.
    """
    from cdo_train.api import load_run

    trained = load_run(run.run_dir, device)
    images = load_images(samples, trained.image_size[0]).images
    maps, scores = [], []
    with peer_models.Clock(device) as clock:
        for i in range(0, len(images), batch_size):
            m, s = trained.predict(images[i : i + batch_size])
            maps.append(m[:, 0])
            scores.append(s)
    return _resized(np.concatenate(maps), size), np.concatenate(scores), clock, trained.image_size[0]


def result_path(out: Path, method: str, class_name: str, seed: int) -> Path:
    return out / method / class_name / f"seed_{seed}.json"


def _timing(fit_wall: Optional[float], fit_cpu: Optional[float], infer: peer_models.Clock, n: int) -> dict:
    return {"fit_seconds": fit_wall, "fit_cpu_seconds": fit_cpu,
            "infer_ms_per_image": 1000.0 * infer.wall / max(1, n), "infer_cpu_ms_per_image": 1000.0 * infer.cpu / max(1, n)}


@dataclass
class Job:
    """What every result of one invocation shares."""

    data_root: Path
    dataset: str
    cfg: peer_models.PeerConfig
    out: Path
    force: bool = False
    save_maps: bool = False
    anomalib_check: bool = False

    def reused(self, path: Path, config: dict) -> Optional[dict]:
        """The stored result at ``path`` when it was made with ``config`` (and not ``--force``)."""
        if self.force or not path.is_file():
            return None
        stored = json.loads(path.read_text())
        # compared as JSON: the stored config's tuples (e.g. patchcore_layers) came back as lists
        return stored if stored.get("config") == json.loads(json.dumps(config)) else None

    def finish(self, result: dict, test: EvalSet, scores: np.ndarray, maps: np.ndarray) -> dict:
        """Score, cross-check if asked, and write one result (and its maps)."""
        result["metrics"] = score(test, scores, maps)
        if self.anomalib_check and test.labels.any():
            result["anomalib_metrics"] = peer_models.anomalib_metrics(test.labels, scores, test.masks, maps)
        path = result_path(self.out, result["method"], result["class_name"], result["seed"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        if self.save_maps:
            np.savez_compressed(path.with_suffix(".npz"), maps=maps.astype(np.float32), scores=scores,
                                labels=test.labels)
        return result


def _peer_result(job: Job, peer: str, class_name: str, seed: int, train: np.ndarray, test: EvalSet) -> dict:
    config = {"peer": peer, "anomalib": peer_models.require_anomalib(), **job.cfg.to_dict()}
    path = result_path(job.out, peer, class_name, seed)
    stored = job.reused(path, config)
    if stored:
        return stored
    out = peer_models.fit_predict(peer, job.cfg, train, test.images, seed)
    result = {"method": peer, "class_name": class_name, "seed": seed, "config": config,
              "n_train": len(train), "n_test": len(test.labels), "threads": torch.get_num_threads(),
              **_timing(out.fit.wall, out.fit.cpu, out.infer, len(test.labels)), "kept_mb": out.kept_mb,
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # this process so far
    return job.finish(result, test, out.scores, out.maps)


def _cdo_result(job: Job, run: CdoRun, test: EvalSet) -> dict:
    config = {"run_dir": str(run.run_dir.resolve()), "image_size": job.cfg.image_size,
              "weights_mtime": (run.run_dir / "model.safetensors").stat().st_mtime}
    stored = job.reused(result_path(job.out, run.method, run.class_name, run.seed), config)
    if stored:
        return stored
    maps, scores, clock, run_size = predict_cdo(run, test.samples, job.cfg.image_size, job.cfg.batch_size,
                                                job.cfg.device)
    summary = json.loads((run.run_dir / "summary.json").read_text())
    _warn_other_data(run, job.data_root)
    result = {"method": run.method, "class_name": run.class_name, "seed": run.seed, "config": config,
              "run_image_size": run_size, "n_test": len(test.labels), "threads": torch.get_num_threads(),
              **_timing(summary.get("seconds"), summary.get("cpu_seconds"), clock, len(test.labels))}  # cpu: since 0.2
    return job.finish(result, test, scores, maps)


def _warn_other_data(run: CdoRun, data_root: Path) -> None:
    """Say so when a run was trained on another data root than the one scored here."""
    import yaml

    trained_on = (yaml.safe_load((run.run_dir / "config.yaml").read_text()) or {}).get("data_root")
    if trained_on and Path(trained_on).resolve() != data_root.resolve():
        print(f"note: {run.run_dir} was trained on {trained_on}; scoring it on {data_root}", file=sys.stderr)


def run_all(job: Job, classes: list[str], seeds: list[int], peers: list[str], cdo_runs: list[CdoRun]) -> list[dict]:
    """Every (peer, class, seed) and every cdo run of these classes; one result dict each."""
    results = []
    for class_name in classes:
        test = load_images(list_samples(job.dataset, job.data_root, class_name, "test"), job.cfg.image_size)
        if peers:
            train = load_images(list_samples(job.dataset, job.data_root, class_name, "train"),
                                job.cfg.image_size).images
            for peer in peers:
                for seed in seeds:
                    results.append(_peer_result(job, peer, class_name, seed, train, test))
                    _log_result(results[-1])
        for run in (r for r in cdo_runs if r.class_name == class_name):
            results.append(_cdo_result(job, run, test))
            _log_result(results[-1])
    return results


def _log_result(r: dict) -> None:
    m = r["metrics"]
    shown = " ".join(f"{k} {m[k]:.4f}" for k in comparison.METRICS if m.get(k) is not None)
    fit = f"fit {r['fit_seconds']:.1f} s, " if r.get("fit_seconds") is not None else ""
    print(f"{r['method']:>24} {r['class_name']:<12} seed {r['seed']}: {shown} "
          f"({fit}{r['infer_ms_per_image']:.1f} ms/image)", flush=True)


def build_tables(results: list[dict]) -> list[comparison.Table]:
    """One ``tools/comparison.py`` table per metric: rows = methods, Δ = paired difference from PatchCore."""
    runs = [comparison.Run(r["method"], r["class_name"], r["seed"], [r["metrics"]], True) for r in results]
    methods = {r.experiment for r in runs}
    return [comparison.build_table(runs, m, last=1, baseline=BASELINE if BASELINE in methods else None)
            for m in comparison.METRICS]


def _mean(values: list[Optional[float]]) -> Optional[float]:
    xs = [v for v in values if v is not None]
    return statistics.fmean(xs) if xs else None


def timing_markdown(results: list[dict]) -> str:
    """Mean over classes and seeds of fit and inference times per method."""
    keys = ("fit_seconds", "fit_cpu_seconds", "infer_ms_per_image", "infer_cpu_ms_per_image", "kept_mb")
    lines = ["### time (mean over classes and seeds)", "",
             "| method | runs | fit s | fit CPU s | ms / image | CPU ms / image | kept MB | threads |",
             "|---|:-:|:-:|:-:|:-:|:-:|:-:|:-:|"]
    for method in sorted({r["method"] for r in results}, key=lambda m: (m != BASELINE, m)):
        rs = [r for r in results if r["method"] == method]
        cells = [_mean([r.get(k) for r in rs]) for k in keys]
        text = ["-" if v is None else f"{v:.1f}" for v in cells]
        lines.append(f"| {method} | {len(rs)} | " + " | ".join(text) + f" | {rs[0].get('threads', '-')} |")
    return "\n".join(lines) + "\n"


CAPTION = ("Cell: mean ± std over seeds (n seeds) of one run per class and seed, scored by cdo_train.training.metrics on the "
           "same test images and masks. mean: per-seed class average, seeds with every class only. Δ: paired per-seed "
           "difference of mean from patchcore ± standard error. cdo fit s = its training time (summary.json). "
           "-: missing. Bold: best mean of the column.")


def write_report(results: list[dict], out: Path, title: str) -> str:
    """``peers.md`` and ``peers.png`` under ``out``; returns the Markdown."""
    tables = build_tables(results)
    labels = {m: m for m in tables[0].rows}
    md = f"## {title}\n\n" + comparison.to_markdown(tables, labels, CAPTION) + "\n" + timing_markdown(results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "peers.md").write_text(md)
    comparison.plot_tables(tables, labels, out / "peers.png", title, CAPTION)
    return md


def metric_agreement(results: list[dict]) -> str:
    """Largest |project − anomalib| (and |project − scikit-learn|) over the cross-checked results."""
    checked = [r for r in results if "anomalib_metrics" in r]
    if not checked:
        return ""
    pairs = [("image_auroc", "image_auroc"), ("pixel_auroc", "pixel_auroc"), ("aupro", "aupro"),
             ("image_auroc", "sklearn_image_auroc"), ("pixel_auroc", "sklearn_pixel_auroc")]
    parts = [f"{ref}: {max(abs(r['metrics'][own] - r['anomalib_metrics'][ref]) for r in checked):.2e}"
             for own, ref in pairs]
    return f"largest |project - reference| over {len(checked)} results: " + ", ".join(parts)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", required=True, help="dataset root (MVTec layout)")
    ap.add_argument("--dataset", default="mvtec2d", help="layout: mvtec2d (default) or mvtec3d")
    ap.add_argument("--class-name", action="append", required=True, help="class to run (repeat; 'all' for every)")
    ap.add_argument("--peer", action="append", choices=peer_models.PEERS.list(),
                    help="peer to run (repeat; default patchcore)")
    ap.add_argument("--no-peers", action="store_true", help="score only the --cdo-runs")
    ap.add_argument("--seed", type=int, default=111, help="first seed (default 111, as cdo-train)")
    ap.add_argument("--seeds", type=int, default=1, help="seeds: seed, seed+1, ... (default 1)")
    ap.add_argument("--cdo-runs", action="append", default=[], help="cdo-train run, experiment or output folder")
    ap.add_argument("--out", default="result/peers", help="output folder (default result/peers)")
    ap.add_argument("--image-size", type=int, default=256, help="input and metric resolution (default 256)")
    ap.add_argument("--backbone", default="tf_efficientnet_lite0", help="peers' teacher (default tf_efficientnet_lite0)")
    ap.add_argument("--coreset-ratio", type=float, default=0.1, help="PatchCore memory bank share (default 0.1)")
    ap.add_argument("--batch-size", type=int, default=8, help="images per forward pass (default 8)")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda:N")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's / OMP_NUM_THREADS)")
    ap.add_argument("--save-maps", action="store_true", help="also write <method>/<class>/seed_<n>.npz")
    ap.add_argument("--anomalib-metrics", action="store_true", help="cross-check with anomalib's and sklearn's metrics")
    ap.add_argument("--force", action="store_true", help="recompute results that already exist")
    return ap


def main(argv: Optional[list[str]] = None) -> int:
    """Command line entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.seeds < 1 or not 0.0 < args.coreset_ratio <= 1.0 or args.image_size < 32:
            raise CdoError("--seeds must be >= 1, --coreset-ratio in (0, 1], --image-size >= 32")
        if args.threads:
            torch.set_num_threads(args.threads)
        peers = [] if args.no_peers else (args.peer or [BASELINE])
        if peers or args.anomalib_metrics:
            peer_models.require_anomalib()
        root = Path(args.data_root)
        classes = list_classes(args.dataset, root) if "all" in args.class_name else list(args.class_name)
        cdo_runs = find_cdo_runs(args.cdo_runs, classes)
        cfg = peer_models.PeerConfig(backbone=args.backbone, image_size=args.image_size,
                                     coreset_ratio=args.coreset_ratio, batch_size=args.batch_size, device=args.device)
        job = Job(root, args.dataset, cfg, Path(args.out), args.force, args.save_maps, args.anomalib_metrics)
        seeds = [args.seed + i for i in range(args.seeds)]
        results = run_all(job, classes, seeds, peers, cdo_runs)
    except CdoError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    if not results:
        print("Error: nothing to compare (no peer and no cdo run)", file=sys.stderr)
        return 1
    title = f"peers vs cdo on {root} ({args.image_size} px, {len(seeds)} seed(s))"
    print(write_report(results, job.out, title))
    agreement = metric_agreement(results)
    if agreement:
        print(agreement)
    print(f"wrote {job.out / 'peers.md'}, {job.out / 'peers.png'} and one JSON per method, class and seed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
