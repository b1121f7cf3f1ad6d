"""``shoal.util.actor_group.ActorGroup`` (Ray's deprecated utility): N actors of one
class, a method called on all of them at once, started and shut down together."""

from __future__ import annotations

import os

import pytest

import shoal
from shoal.util.actor_group import ActorGroup
from tests.utils import wait_for_condition

CLUSTER_INIT_KWARGS = {"num_cpus": 2}
GET_TIMEOUT = 60


class Worker:
    def __init__(self, base=0):
        self.base = base

    def add(self, x):
        return self.base + x

    def pid(self):
        return os.getpid()

    def get_actor_metadata(self):
        return f"worker {self.base}"


def _cpus_free() -> float:
    return shoal.available_resources().get("CPU", 0)


def test_members_run_a_method_together_and_hold_their_cpus(shoal_cluster):
    with pytest.warns(DeprecationWarning, match="use ray.util.multiprocessing"):
        group = ActorGroup(Worker, num_actors=2, init_args=(10,))
    try:
        assert len(group) == 2
        assert shoal.get(group.add.remote(1), timeout=GET_TIMEOUT) == [11, 11]
        assert group.actor_metadata == ["worker 10", "worker 10"]
        pids = shoal.get(group.pid.remote(), timeout=GET_TIMEOUT)
        assert len(set(pids)) == 2 and group[0].metadata == "worker 10"
        wait_for_condition(lambda: _cpus_free() == 0, timeout=30)
        with pytest.raises(TypeError, match="cannot be called directly"):
            group.add(1)
        with pytest.raises(AttributeError, match="no method 'missing'"):
            group.missing.remote()
        with pytest.raises(RuntimeError, match="already started"):
            group.start()
    finally:
        group.shutdown()
    wait_for_condition(lambda: _cpus_free() == 2, timeout=30)
    with pytest.raises(RuntimeError, match="no actors"):
        group.add.remote(1)


def test_restart_after_a_kill_and_resizing(shoal_cluster):
    group = ActorGroup(Worker, num_actors=1, num_cpus_per_actor=1)
    try:
        group.shutdown(patience_s=0)
        group.start()
        group.add_actors(1)
        assert shoal.get(group.add.remote(2), timeout=GET_TIMEOUT) == [2, 2]
        removed = group[0].actor
        group.remove_actors([0])
        assert len(group) == 1
        shoal.kill(removed)  # left out, not ended: its owner ends it
    finally:
        group.shutdown()


def test_bad_sizes_are_refused(shoal_cluster):
    with pytest.raises(ValueError, match="num_actors must be a positive int"):
        ActorGroup(Worker, num_actors=0)
    with pytest.raises(ValueError, match="num_cpus_per_actor must be >= 0"):
        ActorGroup(Worker, num_cpus_per_actor=-1)
