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
