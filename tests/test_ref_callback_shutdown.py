"""A completion callback (``ref._on_completed``) still queued when its session
shuts down does not run: it belongs to that session, and a ``.remote()`` in it
would start a new cluster by auto-init (Ray drops them with its core worker)."""

from __future__ import annotations

import threading
import time

import shoal
from shoal.core.ref_futures import CALLBACK_THREADS
from tests.utils import wait_for_condition


def test_a_completion_callback_queued_past_shutdown_is_dropped(shutdown_only):
    """A callback still queued when its session shuts down does not run (it would
    start a new cluster if it submitted work)."""
    shoal.init(num_cpus=1, include_dashboard=False)
    release = threading.Event()
    busy = []
    ran = []
    ref = shoal.put(1)
    for _ in range(CALLBACK_THREADS):  # occupy every callback thread
        ref._on_completed(lambda _v: (busy.append(1), release.wait(30)))
    wait_for_condition(lambda: len(busy) == CALLBACK_THREADS, timeout=30)
    ref._on_completed(lambda _v: ran.append(1))  # queued behind them
    del ref
    shoal.shutdown()
    release.set()
    time.sleep(0.5)  # the callback threads drain (a negative check: nothing to wait on)
    assert ran == []
    assert not shoal.is_initialized()


@shoal.remote
def noop():
    return None


def test_shutdown_waits_for_a_running_callback_so_it_starts_no_new_cluster(shutdown_only):
    shoal.init(num_cpus=1, include_dashboard=False)
    started, release = threading.Event(), threading.Event()
    submitted = []

    def callback(_value):
        started.set()
        release.wait(30)
        submitted.append(noop.remote())  # still this session's: no auto-init

    shoal.put(1)._on_completed(callback)
    assert started.wait(30)
    stopper = threading.Thread(target=shoal.shutdown)
    stopper.start()
    stopper.join(1.0)  # it waits for the callback (up to its bound)
    release.set()
    stopper.join(30)
    try:
        assert submitted and not shoal.is_initialized()
    finally:
        if shoal.is_initialized():
            shoal.shutdown()
