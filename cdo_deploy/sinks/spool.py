"""The MQTT spool: messages not yet confirmed by the broker, on disk under OUT.

``OUT/mqtt_spool.jsonl`` holds one line per message published
(``{"id": ..., "topic": ..., "payload": ...}``) and one per confirmation
(``{"ack": id}``). A message is pending while it has no ``ack`` line. Lines
reach the kernel when written (they survive the process being killed) and are
fsynced at most every ``fsync_every_s`` and at close. At open the pending
messages are read back (a torn last line is skipped) and the file is rewritten
with only them; while running it is truncated whenever nothing is pending and
rewritten when it grows past ``compact_bytes`` and twice its size after the last
rewrite. Reading streams the file, so memory holds the confirmed ids, not the
messages. A ``{"last": id}`` line keeps
the id of the newest message across rewrites, so the sink can find records of
``results.jsonl`` written after it (a kill between the two writes).

Not thread-safe: the MQTT sink serialises calls with its lock.

Example:
    >>> import tempfile, pathlib
    >>> sp = Spool(pathlib.Path(tempfile.mkdtemp()) / "mqtt_spool.jsonl")
    >>> sp.open()
    ([], 0)
    >>> sp.add("a1", "t", '{"x": 1}'); sp.add("b2", "t", '{"x": 2}'); sp.ack("a1")
    >>> sp.close(); sp.open(), sp.last_id
    (([('b2', 't', '{"x": 2}')], 1), 'b2')
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

    def __init__(self, path: str | Path, fsync_every_s: float = 1.0, compact_bytes: int = 4 << 20) -> None:
        self.path = Path(path)
        self.fsync_every_s, self.compact_bytes = fsync_every_s, compact_bytes
        self.last_id: str | None = None
        self._file = AppendFile(self.path)
        self._last_sync = 0.0
        self._rewritten_size = 0  # the file's size right after the last rewrite: what is still pending

    def _acked(self) -> set[str]:
        """First pass: the ids confirmed (and the newest id) in the file."""
        acked: set[str] = set()
        for rec in self._lines():
            if "ack" in rec:
                acked.add(rec["ack"])
            elif "last" in rec:
                self.last_id = rec["last"]
            elif "id" in rec:
                self.last_id = rec["id"]
        return acked

    def _lines(self):
        bad = 0
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    bad += line.strip() != ""
                    continue
                if isinstance(rec, dict):
                    yield rec
        if bad:
            log.warning("%s: skipped %d unreadable line(s) (interrupted write?)", self.path, bad)

    def read_pending(self, limit: int | None = None) -> list[Message]:
        """Messages in the file without an ack, oldest first, at most ``limit`` (missing file: none).

        Streams the file twice, so memory is the set of confirmed ids plus what is returned.
        """
        if not self.path.exists():
            return []
        acked = self._acked()
        pending: dict[str, Message] = {}
        for rec in self._lines():
            if "payload" in rec and rec.get("id") not in acked and rec["id"] not in pending:
                pending[rec["id"]] = (rec["id"], rec["topic"], rec["payload"])
                if limit is not None and len(pending) >= limit:
                    break
        return list(pending.values())

    def count_pending(self) -> int:
        """Number of messages in the file without an ack."""
        if not self.path.exists():
            return 0
        acked = self._acked()
        return len({rec["id"] for rec in self._lines() if "payload" in rec and rec.get("id") not in acked})

    def open(self, limit: int | None = None) -> tuple[list[Message], int]:
        """Rewrite the file with only its pending messages, open it for appending.

        Returns:
            The oldest pending messages (at most ``limit``) and how many are pending in all.
        """
        self._rewrite(None)
        return self.read_pending(limit), self.count_pending()

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
        """Rewrite the file with only the pending messages when it has grown past ``compact_bytes``
        and to twice what the last rewrite left (during a long broker outage nearly everything is
        pending: rewriting on every call would stream and fsync the whole file per message)."""
        if self._file.size > max(self.compact_bytes, 2 * self._rewritten_size):
            self._rewrite(None)

    def _append(self, rec: dict) -> None:
        now = time.monotonic()
        sync = now - self._last_sync >= self.fsync_every_s
        self._file.append(json.dumps(rec) + "\n", fsync=sync)
        if sync:
            self._last_sync = now

    def _rewrite(self, pending: list[Message] | None) -> None:
        """Replace the file with ``pending`` (``None``: the file's own unconfirmed messages, streamed)."""
        self._file.close()
        tmp = self.path.with_name(self.path.name + ".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        acked = self._acked() if pending is None and self.path.exists() else set()
        with open(tmp, "w", encoding="utf-8") as f:
            if self.last_id is not None:
                f.write(json.dumps({"last": self.last_id}) + "\n")
            if pending is None:
                for rec in self._lines() if self.path.exists() else ():
                    if "payload" in rec and rec.get("id") not in acked:
                        f.write(json.dumps(rec) + "\n")
            else:
                for msg_id, topic, payload in pending:
                    f.write(json.dumps({"id": msg_id, "topic": topic, "payload": payload}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._file.open()
        self._rewritten_size = self._file.size

    def close(self) -> None:
        self._file.close()
