"""``ObjectRefGenerator.completed()``: a ref that is ready once the streaming task has
ended, with None, or with the task's failure (crash, cancel, exception)."""

from __future__ import annotations

import os
import signal
import time

import pytest

import shoal
from shoal.exceptions import TaskCancelledError, WorkerCrashedError
from tests.utils import wait_for_condition

CLUSTER_INIT_KWARGS = {"num_cpus": 2}
GET_TIMEOUT = 60


@shoal.remote(max_retries=0)
def gated(gate: str):
    yield os.getpid()
    deadline = time.monotonic() + 120
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.01)
    yield "after the gate"


def test_a_task_waiting_for_a_stream_lends_its_cpu(shutdown_only):
    """On one CPU, a task that iterates a stream whose task needs that CPU too."""
    shoal.init(num_cpus=1)

    @shoal.remote
    def produce():
        yield from range(3)

    @shoal.remote
    def consume():
        return [shoal.get(r, timeout=GET_TIMEOUT) for r in produce.remote()]

    assert shoal.get(consume.remote(), timeout=GET_TIMEOUT) == [0, 1, 2]


def test_completed_is_ready_only_when_the_task_ends(shoal_cluster, tmp_path):
    gate = tmp_path / "gate"
    gen = gated.remote(str(gate))
    shoal.get(next(gen), timeout=GET_TIMEOUT)
    assert shoal.wait([gen.completed()], timeout=0.3)[0] == []
    gate.touch()
    assert shoal.get(gen.completed(), timeout=GET_TIMEOUT) is None
    assert gen._generator_ref is gen.completed()  # Ray's name for it
    assert shoal.get(next(gen), timeout=GET_TIMEOUT) == "after the gate"


def test_completed_raises_when_the_worker_dies(shoal_cluster, tmp_path):
    gen = gated.remote(str(tmp_path / "never"))
    pid = shoal.get(next(gen), timeout=GET_TIMEOUT)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(WorkerCrashedError):
        shoal.get(gen.completed(), timeout=GET_TIMEOUT)


def test_completed_raises_the_cancel_and_the_tasks_own_error(shoal_cluster, tmp_path):
    gen = gated.remote(str(tmp_path / "never"))
    shoal.get(next(gen), timeout=GET_TIMEOUT)
    shoal.cancel(gen, force=True)
    with pytest.raises(TaskCancelledError):
        shoal.get(gen.completed(), timeout=GET_TIMEOUT)
    assert not gen.is_finished()  # the cancel is an item not taken yet
    with pytest.raises(TaskCancelledError):
        shoal.get(next(gen), timeout=GET_TIMEOUT)
    assert gen.is_finished() and not gen.next_ready()

    @shoal.remote(max_retries=0)
    def raises():
        yield 1
        raise KeyError("boom")

    gen = raises.remote()
    with pytest.raises(KeyError):
        shoal.get(gen.completed(), timeout=GET_TIMEOUT)
    assert shoal.get(next(gen), timeout=GET_TIMEOUT) == 1
    wait_for_condition(lambda: gen.next_ready(), timeout=30)


def test_an_item_taken_and_dropped_is_freed_while_the_generator_lives(shoal_cluster):
    """The generator gives up its hold on an item once next() returned it: the
    caller's ref alone keeps it (a long stream does not pile up in memory)."""
    from shoal.util.state import list_objects

    @shoal.remote
    def big_items():
        for i in range(3):
            yield bytes([i]) * 2_000_000

    gen = big_items.remote()
    first = next(gen)
    first_id = first.hex()
    assert shoal.get(first, timeout=GET_TIMEOUT)[:1] == b"\x00"
    assert list_objects(filters=[("object_id", "=", first_id)])
    del first
    wait_for_condition(lambda: not list_objects(filters=[("object_id", "=", first_id)]),
                       timeout=30)
    assert [shoal.get(r, timeout=GET_TIMEOUT)[:1] for r in gen] == [b"\x01", b"\x02"]

