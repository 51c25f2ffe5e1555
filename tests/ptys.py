"""Run a console script with its stderr on a pseudo-terminal: what an interactive user sees.

Progress bars are drawn only on a terminal; a pty (with a real window size: a 0x0 one makes
bars zero characters wide) is how a test sees them. stdout stays a pipe.
"""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import struct
import subprocess
import termios
import threading


def run_in_pty(args: list[str], timeout: float = 300, interrupt_when: str | None = None,
               **kw) -> tuple[int, str, str]:
    """Run ``args`` with stderr on a 120x24 pty; returns (exit status, stdout, stderr as the terminal got it).

    ``interrupt_when``: send SIGINT (a user's Ctrl-C) once the terminal has shown this text."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, **kw)
    os.close(slave)
    chunks: list[bytes] = []
    interrupted: list[bool] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)
            if interrupt_when is not None and not interrupted and interrupt_when.encode() in b"".join(chunks):
                interrupted.append(True)
                proc.send_signal(signal.SIGINT)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(10)
        os.close(master)
    return proc.returncode, out.decode(errors="replace"), b"".join(chunks).decode(errors="replace")
