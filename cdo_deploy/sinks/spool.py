"""The MQTT spool: messages not yet confirmed by the broker, on disk under OUT.

``OUT/mqtt_spool.jsonl`` holds one line per message published
(``{"id": ..., "topic": ..., "payload": ...}``) and one per confirmation
(``{"ack": id}``). A message is pending while it has no ``ack`` line. Lines
reach the kernel when written (they survive the process being killed) and are
fsynced at most every ``fsync_every_s`` and at close. At open the pending
messages are read back (a torn last line is skipped) and the file is rewritten
with only them; while running it is truncated whenever nothing is pending and
rewritten when it grows past ``compact_bytes``. A ``{"last": id}`` line keeps
the id of the newest message across rewrites, so the sink can find records of
``results.jsonl`` written after it (a kill between the two writes).

Not thread-safe: the MQTT sink serialises calls with its lock.

Example:
    >>> import tempfile, pathlib
    >>> sp = Spool(pathlib.Path(tempfile.mkdtemp()) / "mqtt_spool.jsonl")
    >>> sp.open()
    []
    >>> sp.add("a1", "t", '{"x": 1}'); sp.add("b2", "t", '{"x": 2}'); sp.ack("a1")
    >>> sp.close(); sp.open(), sp.last_id
    ([('b2', 't', '{"x": 2}')], 'b2')
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from .base import AppendFile

__all__ = ["Spool"]

log = logging.getLogger(__name__)

Message = tuple[str, str, str]  # (id, topic, payload)


class Spool:
    """Append-only store of MQTT messages and their confirmations.

    Args:
        path: the spool file.
        fsync_every_s: fsync at most this often while running.
        compact_bytes: rewrite the file with only the pending messages beyond this size.
    """

    def __init__(self, path: str | Path, fsync_every_s: float = 1.0, compact_bytes: int = 8 << 20) -> None:
        self.path = Path(path)
        self.fsync_every_s, self.compact_bytes = fsync_every_s, compact_bytes
        self.last_id: str | None = None
        self._file = AppendFile(self.path)
        self._last_sync = 0.0

    def read_pending(self) -> list[Message]:
        """Messages in the file without an ack, oldest first (missing file: none)."""
        pending: dict[str, Message] = {}
        if not self.path.exists():
            return []
        bad = 0
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                    if "ack" in rec:
                        pending.pop(rec["ack"], None)
                    elif "last" in rec:
                        self.last_id = rec["last"]
                    else:
                        pending[rec["id"]] = (rec["id"], rec["topic"], rec["payload"])
                        self.last_id = rec["id"]
                except (ValueError, KeyError, TypeError):
                    bad += line.strip() != ""
        if bad:
            log.warning("%s: skipped %d unreadable line(s) (interrupted write?)", self.path, bad)
        return list(pending.values())

    def open(self) -> list[Message]:
        """Read the pending messages, rewrite the file with only them, open it for appending."""
        pending = self.read_pending()
        self._rewrite(pending)
        return pending

    def add(self, msg_id: str, topic: str, payload: str) -> None:
        """Record a message about to be published (raises ``OSError``, e.g. disk full)."""
        self._append({"id": msg_id, "topic": topic, "payload": payload})
        self.last_id = msg_id

    def ack(self, msg_id: str) -> None:
        """Record the broker's confirmation of a message."""
        self._append({"ack": msg_id})

    def reset(self) -> None:
        """Nothing is pending: empty the file (keeping the newest id)."""
        if self._file.size > 256:
            self._rewrite([])

    def compact_if_large(self) -> None:
        """Rewrite the file with only the pending messages when it has grown past ``compact_bytes``."""
        if self._file.size > self.compact_bytes:
            self._rewrite(self.read_pending())

    def _append(self, rec: dict) -> None:
        now = time.monotonic()
        sync = now - self._last_sync >= self.fsync_every_s
        self._file.append(json.dumps(rec) + "\n", fsync=sync)
        if sync:
            self._last_sync = now

    def _rewrite(self, pending: list[Message]) -> None:
        self._file.close()
        tmp = self.path.with_name(self.path.name + ".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            if self.last_id is not None:
                f.write(json.dumps({"last": self.last_id}) + "\n")
            for msg_id, topic, payload in pending:
                f.write(json.dumps({"id": msg_id, "topic": topic, "payload": payload}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._file.open()

    def close(self) -> None:
        self._file.close()
