"""Resuming into an output folder: results are keyed by what produced them.

``results.jsonl`` records, with every result, the SHA-256 of the model file
that produced it and the image and pixel thresholds in force. A run into an
``--out`` folder that already holds results resumes (the sources skip what is
recorded) only when every record there was produced by the same model file
and thresholds; otherwise it refuses with one line naming ``--out`` and
``--fresh``. ``--fresh`` moves the earlier results (``results.jsonl``,
``results.csv``, ``summary.json``, ``summaries.jsonl``, ``overlays/``) into
``OUT/previous/<UTC time>/`` and starts anew; nothing is deleted. Unconfirmed
MQTT messages (``mqtt_spool.jsonl``) stay and are still delivered.

Example:
    >>> key = producer_key("ab" * 32, 0.75, 0.7)
    >>> key
    ('abababababababababababababababababababababababababababababababab', 0.75, 0.7)
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from pathlib import Path

from .errors import CdoError
from .results import json_float
from .sinks.jsonl import ResultsLog, read_log

__all__ = ["PREVIOUS_OUTPUTS", "check_resume", "producer_key", "start_fresh"]

log = logging.getLogger(__name__)

#: what ``--fresh`` moves aside
PREVIOUS_OUTPUTS = ("results.jsonl", "results.csv", "summary.json", "summaries.jsonl", "overlays")


def producer_key(model_sha256: str, image_threshold: float, pixel_threshold: float) -> tuple:
    """The provenance of a result as results.jsonl records it (thresholds rounded like the records)."""
    return (model_sha256, json_float(image_threshold), json_float(pixel_threshold))


def _describe(key: tuple) -> str:
    if key[0] is None:
        return "no model recorded (an older cdo-inspect)"
    return f"model {key[0][:12]}, thresholds image {key[1]} pixel {key[2]}"


def check_resume(results: str | Path, key: tuple) -> ResultsLog:
    """Read ``results`` and check every record was produced by ``key``.

    Returns:
        The log (its ``done`` set is what the sources skip).

    Raises:
        CdoError: the log holds results of another model file or other thresholds.
    """
    state = read_log(results)
    others = {k: n for k, n in state.producers.items() if k != key}
    if others:
        k, n = max(others.items(), key=lambda kv: kv[1])
        out = Path(results).parent
        raise CdoError(
            f"{out} already holds {n} result(s) of another bundle or other thresholds ({_describe(k)}; this run: "
            f"{_describe(key)}): resuming would mix them. Use another --out, or --fresh to move them to "
            f"{out / 'previous'}/ and start anew")
    return state


def start_fresh(out: str | Path) -> Path | None:
    """Move the earlier results of ``out`` into ``out/previous/<UTC time>/``; the folder used, or ``None``."""
    out = Path(out)
    present = [name for name in PREVIOUS_OUTPUTS if (out / name).exists()]
    if not present:
        return None
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    dest = out / "previous" / stamp
    try:
        dest.mkdir(parents=True)
        for name in present:
            os.replace(out / name, dest / name)
    except OSError as e:
        raise CdoError(f"--fresh: cannot move the earlier results of {out} to {dest}: {e.strerror or e}") from None
    log.warning("--fresh: earlier results of %s moved to %s", out, dest)
    return dest
