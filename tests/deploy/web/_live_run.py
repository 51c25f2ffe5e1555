"""For the web tests: a running ``cdo-inspect --http`` subprocess (fixture ``live_run``) and urllib helpers."""

from __future__ import annotations

import re
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest


class LiveRun:
    """``cdo-inspect BUNDLE -s INBOX -o OUT --http ...`` with its stderr collected and its page's URL."""

    def __init__(self, proc, inbox: Path, out: Path, make_part) -> None:
        self.proc, self.inbox, self.out, self.make_part = proc, inbox, out, make_part
        self.lines: list[str] = []
        self.url: str | None = None
        self._seen = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)
            m = re.search(r"live page (http://\S+/) ", line)
            if m:
                self.url = m.group(1)
                self._seen.set()
        self._seen.set()

    def wait_url(self, timeout: float = 30) -> str:
        self._seen.wait(timeout)
        assert self.url, "".join(self.lines)
        return self.url

    def drop(self, decisions: str, start: int = 0) -> None:
        """Write parts into the inbox, one per character: ``"OONO"`` (O = good, N = NG)."""
        import cv2

        for i, c in enumerate(decisions, start):
            tmp = self.inbox / f".{i:04d}.tmp.png"
            cv2.imwrite(str(tmp), self.make_part(c == "N", seed=i))
            tmp.rename(self.inbox / f"part{i:04d}.png")


def get(url: str, token: str | None = None, timeout: float = 10) -> tuple[int, bytes, dict]:
    """(status, body, headers) of a GET; HTTP errors are returned, not raised."""
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


@pytest.fixture
def live_run(tmp_path, tiny_bundle, cli_popen, part):
    """``live_run(*args, env=None)`` starts cdo-inspect on a fresh inbox with extra args (e.g. ``--http``)."""

    def start(*args: object, env: dict | None = None) -> LiveRun:
        import os

        inbox, out = tmp_path / "inbox", tmp_path / "out"
        inbox.mkdir(exist_ok=True)
        proc = cli_popen("cdo-inspect", tiny_bundle, "--source", inbox, "--out", out, "--settle-ms", 30,
                         "--overlays", "ng", *args, env={**os.environ, **(env or {})})
        return LiveRun(proc, inbox, out, part)

    return start
