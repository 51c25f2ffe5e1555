"""StopSignal: Ctrl-C sets a flag and logs a notice, which notices_held() keeps back until its block ends.

The handler is called as Python calls it (in the main thread, between bytecodes); the real signal
through a terminal is tests/train/test_first_hour_train.py's (a subprocess on a pty), which keeps
signals out of the test process itself.
"""

from __future__ import annotations

import logging
import signal

from cdo_train.training.signals import StopSignal, notices_held


def _notices(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "stopping after this step" in r.getMessage()]


def test_a_signal_in_a_held_block_is_noticed_after_it(caplog):
    caplog.set_level(logging.WARNING)
    before = signal.getsignal(signal.SIGINT)
    with StopSignal() as stop:
        assert signal.getsignal(signal.SIGINT) == stop._handle  # installed for the block
        with notices_held():
            stop._handle(signal.SIGINT, None)  # what Python runs when SIGINT arrives here
            assert stop.signum == signal.SIGINT  # the flag is set at once ...
            assert _notices(caplog) == []  # ... the notice waits (tqdm may be half-way through drawing a bar)
        assert len(_notices(caplog)) == 1 and _notices(caplog)[0].startswith("SIGINT: ")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # a second Ctrl-C aborts
    assert signal.getsignal(signal.SIGINT) is before  # the previous handler is back


def test_outside_a_held_block_the_notice_is_logged_at_once(caplog):
    caplog.set_level(logging.WARNING)
    with StopSignal() as stop:
        stop._handle(signal.SIGTERM, None)
        assert stop.signum == signal.SIGTERM and len(_notices(caplog)) == 1
