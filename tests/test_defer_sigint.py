"""``shoal.util.DeferSigint``: a SIGINT (Ctrl-C, or the cancel of a task running on a
worker's main thread) that comes inside the block is acted on when the block ends;
a SIGINT handler set inside the block is installed, and called once, at its end;
on other threads it is a context that does nothing."""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import threading
import time

import pytest

import shoal
from shoal.util import DeferSigint
from tests.utils import wait_for_condition


def noted(deferral: DeferSigint) -> bool:
    """Wait (running bytecode, so the main thread gets to run its handlers) until
    the deferral has noted a SIGINT: a fixed sleep only guesses when it ran."""
    wait_for_condition(lambda: deferral.signal_received, timeout=10, interval=0.01)
    return True


@pytest.fixture
def sigint_handler():
    """Set SIGINT's handler for one test, and put the one before back.  A process
    started in the background by a shell without job control (``cmd &`` in a
    script) inherits SIGINT ignored, and Python then leaves it ignored: the
    tests must not depend on how pytest was started."""
    before = signal.getsignal(signal.SIGINT)
    yield lambda handler: signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGINT, before)


def test_a_sigint_inside_the_block_raises_after_it(sigint_handler):
    sigint_handler(signal.default_int_handler)
    done_inside = False
    with pytest.raises(KeyboardInterrupt):
        with DeferSigint() as deferral:
            _thread.interrupt_main()
            assert noted(deferral)
            done_inside = True
    assert done_inside
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_sigint_inside_the_block_stays_ignored_where_sigint_was_ignored(sigint_handler):
    sigint_handler(signal.SIG_IGN)
    with DeferSigint() as deferral:
        _thread.interrupt_main()
        assert noted(deferral)
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_only_the_last_handler_set_inside_runs_once_at_the_end():
    before = signal.getsignal(signal.SIGINT)
    calls = []
    try:
        with DeferSigint() as deferral:
            signal.signal(signal.SIGINT, lambda s, f: calls.append("first"))
            for _ in range(3):
                _thread.interrupt_main()
            assert noted(deferral)
            signal.signal(signal.SIGINT, lambda s, f: calls.append("last"))
            deferral.signal_received = False
            _thread.interrupt_main()
            assert noted(deferral)
            assert calls == []
        assert calls == ["last"]
    finally:
        signal.signal(signal.SIGINT, before)


def test_off_the_main_thread_it_does_nothing():
    got = []
    t = threading.Thread(target=lambda: got.append(DeferSigint.create_if_main_thread()))
    t.start()
    t.join(10)
    assert isinstance(got[0], contextlib.nullcontext)
    with pytest.raises(ValueError, match="main thread"):
        err = []

        def enter():
            try:
                DeferSigint().__enter__()
            except ValueError as exc:
                err.append(exc)

        t = threading.Thread(target=enter)
        t.start()
        t.join(10)
        raise err[0]


@shoal.remote(num_cpus=1, max_retries=0)
def careful(marker: str) -> None:
    with DeferSigint.create_if_main_thread():
        open(marker + ".started", "w").close()
        deadline = time.monotonic() + 30
        while not os.path.exists(marker + ".go") and time.monotonic() < deadline:
            time.sleep(0.01)
        open(marker + ".finished", "w").close()
    time.sleep(30)  # the deferred cancel lands here


def test_a_cancel_waits_for_the_block_of_a_running_task(shutdown_only, tmp_path):
    shoal.init(num_cpus=1, include_dashboard=False)
    marker = str(tmp_path / "m")
    ref = careful.remote(marker)
    wait_for_condition(lambda: os.path.exists(marker + ".started"), timeout=30)
    shoal.cancel(ref)
    time.sleep(0.3)  # the cancel's interrupt has reached the task by now (not a sync)
    assert not os.path.exists(marker + ".finished")
    open(marker + ".go", "w").close()
    with pytest.raises(shoal.exceptions.TaskCancelledError):
        shoal.get(ref, timeout=30)
    assert os.path.exists(marker + ".finished")
