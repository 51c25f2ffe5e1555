"""A network guard for subprocesses: every socket connection and name lookup is refused and recorded.

``blocked_env(tmp)`` returns an environment whose ``PYTHONPATH`` starts with a
folder holding a ``sitecustomize.py`` (imported by every Python process at
start-up, console scripts included) that replaces ``socket.socket.connect``,
``connect_ex``, ``socket.create_connection`` and ``socket.getaddrinfo`` with
functions that append the attempt to ``attempts.log`` and raise ``OSError``.
It also points the Hugging Face and torch hub caches at empty folders, so a
test sees what a machine without cached weights does.
"""

from __future__ import annotations

import os
from pathlib import Path

GUARD = '''
import os, socket, traceback

_LOG = os.environ["CDO_TEST_NET_LOG"]


def _refuse(what):
    def refused(*args, **kwargs):
        with open(_LOG, "a") as f:
            f.write(f"{what} {args[1:] if what.startswith('socket.connect') else args} pid {os.getpid()}\\n")
            f.write("".join(traceback.format_stack(limit=12)) + "\\n")
        raise OSError(f"network blocked by the test: {what}")
    return refused


socket.socket.connect = _refuse("socket.connect")
socket.socket.connect_ex = _refuse("socket.connect_ex")
socket.create_connection = _refuse("create_connection")
socket.getaddrinfo = _refuse("getaddrinfo")
'''


def blocked_env(tmp: Path, base: dict[str, str] | None = None) -> tuple[dict[str, str], Path]:
    """(environment with the guard and empty weight caches, the log of attempts)."""
    guard = tmp / "netguard"
    guard.mkdir(parents=True, exist_ok=True)
    (guard / "sitecustomize.py").write_text(GUARD)
    log = tmp / "attempts.log"
    log.write_text("")
    env = dict(base if base is not None else os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(guard), env.get("PYTHONPATH", "")) if p)
    env.update(CDO_TEST_NET_LOG=str(log), HF_HOME=str(tmp / "hf_home"), HF_HUB_CACHE=str(tmp / "hf_home" / "hub"),
               TORCH_HOME=str(tmp / "torch_home"))
    return env, log
