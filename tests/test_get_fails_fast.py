"""get() of several refs raises the first error that arrives, without waiting for
the objects still being computed (Ray's documented behaviour)."""

from __future__ import annotations

import time

import pytest

import shoal
from shoal.exceptions import ActorDiedError, TaskError
from tests.utils import open_gate, wait_for_file


@shoal.remote
def fails():
    raise ValueError("boom")


@shoal.remote
def waits_for(gate: str) -> int:
    wait_for_file(gate, timeout=60)
    return 1


def test_get_raises_a_failed_task_while_another_still_runs(shoal_cluster, tmp_path):
    gate = str(tmp_path / "gate")
    slow = waits_for.remote(gate)
    start = time.monotonic()
    try:
        with pytest.raises(TaskError, match="boom"):
            shoal.get([slow, fails.remote()], timeout=30)
        assert time.monotonic() - start < 20
    finally:
        open_gate(gate)
    assert shoal.get(slow, timeout=30) == 1


def test_get_raises_a_dead_actors_call_while_a_task_still_runs(shoal_cluster, tmp_path):
    gate = str(tmp_path / "gate")

    @shoal.remote
    class Dies:
        def die(self):
            import os

            os._exit(0)

    actor = Dies.remote()
    slow = waits_for.remote(gate)
    start = time.monotonic()
    try:
        with pytest.raises(ActorDiedError):
            shoal.get([slow, actor.die.remote()], timeout=30)
        assert time.monotonic() - start < 20
    finally:
        open_gate(gate)
