"""The documentation site builds with ``mkdocs build --strict`` and its CLI reference follows the code.

The CLI reference pages are generated from the Click commands by mkdocs-click, so every option a
command has must appear in the built HTML: the test reads the options from the command objects
themselves (not from a list kept here), so a new option that does not reach the site fails it.
README.md links into the site by file path; every such link must name a page that exists.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

REPO = Path(__file__).resolve().parents[1]

#: console script -> (module, Click command object, reference page); setup.cfg's entry points are thin
#: wrappers (argv handling, ``build-engine`` dispatch) around these commands
COMMANDS = {
    "cdo-train": ("cdo_train.cli", "_cli", "cdo-train"),
    "cdo-export": ("cdo_train.export.cli", "_cli", "cdo-export"),
    "cdo-inspect": ("cdo_deploy.cli.inspect", "inspect_main", "cdo-inspect"),
    "cdo-inspect build-engine": ("cdo_deploy.cli.engine", "build_engine_cmd", "cdo-inspect"),
    "cdo-bench": ("cdo_deploy.cli.bench", "bench_main", "cdo-bench"),
}

_TOOLS = ("mkdocs", "material", "mkdocs_click", "mkdocstrings", "mkdocstrings_handlers.python")
_MISSING = [m for m in _TOOLS if importlib.util.find_spec(m.split(".")[0]) is None]
needs_mkdocs = pytest.mark.skipif(bool(_MISSING), reason=f"docs tooling not installed ({', '.join(_MISSING)}): "
                                                          "pip install -e '.[docs]'")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built once with --strict into a temporary folder (the repo's code, not an installed copy)."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "NO_MKDOCS_2_WARNING": "1"}
    # no -q: mkdocs counts warnings for --strict only when they are logged, and -q drops them
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"mkdocs build --strict failed:\n{r.stdout}\n{r.stderr}"
    return out


def _options(command: click.Command) -> list[str]:
    """Every long option name a command accepts (hidden ones excluded), --help included."""
    ctx = click.Context(command)
    names = []
    for param in command.get_params(ctx):
        if isinstance(param, click.Option) and not param.hidden:
            names += [n for n in param.opts + param.secondary_opts if n.startswith("--")]
    return names


@needs_mkdocs
@pytest.mark.parametrize("prog", list(COMMANDS))
def test_cli_reference_lists_every_option(site, prog):
    module, attr, page = COMMANDS[prog]
    command = getattr(importlib.import_module(module), attr)
    assert isinstance(command, click.Command)
    options = _options(command)
    assert len(options) > 3, options
    text = (site / "reference" / "cli" / page / "index.html").read_text()
    missing = [o for o in options if not re.search(re.escape(o) + r"(?![\w-])", text)]
    assert not missing, f"{prog}: options missing from the generated reference page: {missing}"


@needs_mkdocs
def test_cli_reference_shows_registry_choices_and_the_walkthrough(site):
    train = (site / "reference" / "cli" / "cdo-train" / "index.html").read_text()
    assert "tf_efficientnet_lite0" in train and "self-paced" in train  # --backbone / --curriculum, read from registries
    inspect = (site / "reference" / "cli" / "cdo-inspect" / "index.html").read_text()
    assert "--trtexec-line" in inspect and "--trigger-edge" in inspect  # both cdo-inspect commands
    walkthrough = (site / "getting-started" / "walkthrough" / "index.html").read_text()
    assert "bracket_bundle" in re.sub(r"<[^>]+>", "", walkthrough)  # the snippet was included
    api = (site / "reference" / "api" / "cdo_deploy" / "index.html").read_text()
    assert "Inspector" in api and "Prediction" in api


def test_readme_is_short_and_links_to_pages_that_exist():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 160, "README.md grew past ~150 lines: move the detail into docs/"
    for cmd in ("make demo", "make test"):
        assert cmd in readme
    links = re.findall(r"\]\((docs/[^)#\s]+)", readme)
    assert links, "README.md no longer links into docs/"
    missing = [link for link in links if not (REPO / link).exists()]
    assert not missing, f"README.md links to missing files: {missing}"
