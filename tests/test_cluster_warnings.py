"""The cluster warns the driver (on stderr, and to ``subscribe_warnings``) when one
actor has thousands of calls waiting, and when a node runs many worker processes."""

from __future__ import annotations

import time

import pytest

import shoal
from shoal.util import subscribe_warnings
from shoal.util.cluster_warnings import WarningType


def _next_of(sub, kind: WarningType, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        item = sub.get(timeout=max(0.0, deadline - time.monotonic()))
        if item is not None and item.type is kind:
            return item
    return None


@shoal.remote(num_cpus=1)
class Slow:
    def block(self):
        time.sleep(600)


@shoal.remote(num_cpus=0)
class Stuck:
    def __init__(self):
        time.sleep(600)


def test_thousands_of_calls_queued_to_an_actor_warn_the_driver(shutdown_only, capfd):
    shoal.init(num_cpus=1, include_dashboard=False)
    with subscribe_warnings() as sub:
        actor = Slow.remote()
        refs = [actor.block.remote() for _ in range(5001)]
        item = _next_of(sub, WarningType.EXCESS_QUEUEING, timeout=30)
        assert item is not None
        assert "More than 5000 tasks are pending submission to actor" in item.message
        assert _next_of(sub, WarningType.EXCESS_QUEUEING, timeout=0.5) is None  # once
    assert "More than 5000 tasks are pending" in capfd.readouterr().err
    del refs


def test_calls_made_one_after_another_do_not_warn(shutdown_only):
    shoal.init(num_cpus=1, include_dashboard=False)

    @shoal.remote
    class Quick:
        def f(self):
            return 1

    with subscribe_warnings() as sub:
        actor = Quick.remote()
        for _ in range(300):
            assert shoal.get(actor.f.remote(), timeout=30) == 1
        assert _next_of(sub, WarningType.EXCESS_QUEUEING, timeout=0.5) is None


def test_many_worker_processes_on_a_node_warn_the_driver(shutdown_only):
    shoal.init(num_cpus=1, include_dashboard=False)
    with subscribe_warnings() as sub:
        actors = [Stuck.remote() for _ in range(6)]  # each constructor holds a worker
        item = _next_of(sub, WarningType.WORKER_POOL_LARGE, timeout=60)
        assert item is not None and "worker processes have been started on node" in item.message
    del actors


def test_subscribing_needs_a_driver():
    if shoal.is_initialized():
        shoal.shutdown()
    with pytest.raises(RuntimeError, match="not initialized"):
        subscribe_warnings()
