"""StopSignal: Ctrl-C sets a flag and logs a notice, which notices_held() keeps back until its block ends."""

from __future__ import annotations

import logging
import os
import signal

from cdo_train.training.signals import StopSignal, notices_held


def _notices(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "stopping after this step" in r.getMessage()]


def test_a_signal_in_a_held_block_is_noticed_after_it(caplog):
    caplog.set_level(logging.WARNING)
    before = signal.getsignal(signal.SIGINT)
    with StopSignal() as stop:
        with notices_held():
            os.kill(os.getpid(), signal.SIGINT)  # handled in this (main) thread before the next line runs
            assert stop.signum == signal.SIGINT  # the flag is set at once ...
            assert _notices(caplog) == []  # ... the notice waits (tqdm may be half-way through drawing a bar)
        assert len(_notices(caplog)) == 1 and _notices(caplog)[0].startswith("SIGINT: ")
    assert signal.getsignal(signal.SIGINT) is before  # the previous handler is back


def test_outside_a_held_block_the_notice_is_logged_at_once(caplog):
    caplog.set_level(logging.WARNING)
    with StopSignal() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.signum == signal.SIGTERM and len(_notices(caplog)) == 1
