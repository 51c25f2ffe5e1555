"""Sweep files: one YAML that expands to a grid of ``cdo-train`` runs (one trial per point, class and seed).

A sweep file holds::

    name: "{curriculum}"          # experiment folder per grid point (str.format over the point's config)
    output_dir: result/sweeps     # where the experiments go (relative to the working directory, as cdo-train)
    base:                         # cdo-train fields shared by every trial
      config: ../demo.yaml        # optional preset file(s), relative to this sweep file
      data_root: demo_data
      steps: 1000
    grid:                         # field: [values]; the trials are the product of all lists
      curriculum: [none, linear, self-paced]
      lr: [0.002, 0.001]
    classes: [weave, grain]       # or base's class_names; "all" lists the dataset's classes
    seeds: 3                      # 3 seeds from base's seed (111, 112, 113), or a list [111, 200];
                                  # default: base's seed and seeds, as cdo-train

A ``curriculum`` value that names a preset ``curriculum_<value>.yaml`` in
``presets`` (default: the repository's ``configs/``) applies that preset's
keys (schedule, knobs, parameters); other grid fields apply after it. Every
trial's config is built (and so checked) before anything runs: an unknown
key or a bad value fails with one line. Each trial's run folder is exactly
where ``cdo-train --output-dir OUT --name NAME`` puts it:
``<output_dir>/<name>/<class>/seed_<n>``, so ``tools/comparison.py`` finds
the grid points as experiments.

Example:
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "s.yaml"
    >>> _ = f.write_text("base: {data_root: data, dataset: mvtec2d}\\n"
    ...                  "grid: {lr: [0.001, 0.002]}\\nclasses: [weave]\\nseeds: 2\\nname: 'lr{lr}'\\n")
    >>> [t.key for t in load_sweep(f).trials]
    ['lr0.001/weave/seed_111', 'lr0.001/weave/seed_112', 'lr0.002/weave/seed_111', 'lr0.002/weave/seed_112']
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdo_deploy.errors import CdoError, did_you_mean

from ..training.config import TrainConfig, load_config_file
from ..data.splits import run_classes

__all__ = ["SWEEP_KEYS", "Sweep", "Trial", "load_sweep"]

#: the keys a sweep file may hold
SWEEP_KEYS = ("name", "output_dir", "base", "grid", "classes", "seeds", "presets")
#: the repository's presets folder (configs/curriculum_<name>.yaml), the default ``presets``
PRESETS = Path(__file__).resolve().parents[2] / "configs"


@dataclass(frozen=True)
class Trial:
    """One ``cdo-train`` run of a sweep: a grid point's experiment, one class and one seed.

    Attributes:
        experiment: the experiment folder name (the grid point's ``name``).
        class_name: the class trained.
        seed: the seed.
        config: the run's ``TrainConfig`` fields (``class_names`` = this class, ``seeds`` = 1).
    """

    experiment: str
    class_name: str
    seed: int
    config: dict[str, Any]

    @property
    def key(self) -> str:
        """``<experiment>/<class>/seed_<n>``: the run folder below the output folder."""
        return f"{self.experiment}/{self.class_name}/seed_{self.seed}"

    def train_config(self, **overrides: Any) -> TrainConfig:
        """The run's config (``overrides``: fields that do not change what is computed, e.g. ``device``)."""
        return TrainConfig().merged({**self.config, **overrides})

    @property
    def run_dir(self) -> Path:
        return Path(self.config["output_dir"]) / self.key


@dataclass(frozen=True)
class Sweep:
    """A loaded sweep file: its name (the file's stem), output folder and trials in grid order."""

    name: str
    output_dir: Path
    trials: tuple[Trial, ...]


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CdoError(f"{what} must be a mapping of key: value, got {value!r}")
    return dict(value)


def _base_config(base: dict[str, Any], folder: Path) -> TrainConfig:
    """``base`` (cdo-train fields, ``config``: preset file or list of them relative to the sweep file)."""
    cfg = TrainConfig()
    files = base.pop("config", None) or []
    for file in [files] if isinstance(files, str) else files:
        path = Path(file).expanduser()
        cfg = cfg.merged(load_config_file(path if path.is_absolute() else folder / path))
    return cfg.merged(base)


def _point_overrides(point: dict[str, Any], presets: Path) -> dict[str, Any]:
    """A grid point's overrides: a ``curriculum`` preset's keys first, then the point's other fields."""
    out: dict[str, Any] = {}
    cur = point.get("curriculum")
    if isinstance(cur, str) and (presets / f"curriculum_{cur}.yaml").is_file():
        out.update(load_config_file(presets / f"curriculum_{cur}.yaml"))
    out.update({k: v for k, v in point.items() if not (k == "curriculum" and out)})
    return out


def _text(value: Any) -> str:
    """A field's value in an experiment name: lists joined with ``+`` (as cdo-train's default name)."""
    if isinstance(value, (list, tuple)):
        return "+".join(map(str, value))
    return str(value)


def _name(template: str | None, point: dict[str, Any], cfg: TrainConfig) -> str:
    if template is None:  # the grid's values, in file order; no grid: cdo-train's own default name
        return "-".join(_text(v) for v in point.values()) or cfg.experiment
    fields = {k: _text(v) for k, v in cfg.to_dict().items()}
    fields.update({k: _text(v) for k, v in point.items()})  # a preset's name, not the schedule it sets
    try:
        name = template.format(**fields)
    except KeyError as e:
        raise CdoError(f"sweep name {template!r}: unknown field {e.args[0]!r}"
                       f"{did_you_mean(e.args[0], fields)}") from None
    except (IndexError, ValueError) as e:
        raise CdoError(f"sweep name {template!r}: {e} (use {{field}} placeholders)") from None
    if not name or "/" in name or name in (".", ".."):
        raise CdoError(f"sweep name {template!r} gives {name!r}, which is no folder name")
    return name


def _seeds(value: Any, first: int) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return [first + k for k in range(value)]
    if isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        return list(value)
    raise CdoError(f"seeds must be a count >= 1 or a list of integer seeds, got {value!r}")


def load_sweep(path: str | Path, overrides: dict[str, Any] | None = None) -> Sweep:
    """Read a sweep file and expand it into trials (configs checked, nothing run).

    Args:
        path: the sweep YAML.
        overrides: on top of the file (``--set``): a sweep key (``classes``, ``seeds``, ``name``,
            ``output_dir``, ``presets``) replaces it; any other key is a cdo-train field set in ``base``.

    Raises:
        CdoError: unreadable file, unknown key (with suggestions), bad value, or two grid points
            with the same experiment name.
    """
    path = Path(path)
    spec = load_config_file(path)
    for key in spec:
        if key not in SWEEP_KEYS:
            raise CdoError(f"{path}: unknown sweep key {key!r}{did_you_mean(key, SWEEP_KEYS)}; cdo-train fields go "
                           "under base: or grid:")
    base = _mapping(spec.get("base"), f"{path}: base")
    for key, value in (overrides or {}).items():
        if key in SWEEP_KEYS and key not in ("base", "grid"):
            spec[key] = value
        else:
            base[key.replace("-", "_")] = value
    if spec.get("output_dir") is not None:
        base["output_dir"] = spec["output_dir"]
    if spec.get("classes") is not None:
        base["class_names"] = spec["classes"]
    grid = _mapping(spec.get("grid"), f"{path}: grid")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise CdoError(f"{path}: grid {key} must be a non-empty list of values, got {values!r}")
    presets = Path(spec["presets"]).expanduser() if spec.get("presets") else PRESETS
    if not presets.is_absolute():
        presets = path.parent / presets
    if spec.get("presets") and not presets.is_dir():
        raise CdoError(f"{path}: presets folder not found: {presets}")
    try:
        cfg = _base_config(base, path.parent)
        seeds = _seeds(spec["seeds"] if spec.get("seeds") is not None else cfg.seeds, cfg.seed)  # or base's seeds
        trials: list[Trial] = []
        names: dict[str, dict[str, Any]] = {}
        for values in itertools.product(*grid.values()):
            point = dict(zip(grid, values))
            pcfg = cfg.merged(_point_overrides(point, presets))
            name = _name(spec.get("name"), point, pcfg)
            if name in names:
                raise CdoError(f"grid points {names[name]} and {point} both get the experiment name {name!r}: "
                               "give the sweep a name: template that tells them apart")
            names[name] = point
            if pcfg.data_root is None:
                raise CdoError("no data_root (set it under base:, or --set data_root=FOLDER)")
            pcfg = pcfg.merged({"name": name, "seeds": 1})
            for c in run_classes(pcfg):
                for s in seeds:
                    trials.append(Trial(name, c, s, pcfg.merged({"class_names": [c], "seed": s}).to_dict()))
    except CdoError as e:
        raise CdoError(f"{path}: {e}") from None
    return Sweep(path.stem, Path(cfg.output_dir), tuple(trials))
