"""Back-pressure of streaming generators (``_generator_backpressure_num_objects``):
the generator pauses once that many of its yielded items are not yet taken by the
caller's ``next()``, and goes on as they are taken, or when the caller drops it."""

from __future__ import annotations

import time

import pytest

import shoal
from tests.utils import wait_for_condition

CLUSTER_INIT_KWARGS = {"num_cpus": 3}
GET_TIMEOUT = 60
QUIET_S = 1.0  # how long a paused generator is watched to make sure it stays paused


@shoal.remote
class Progress:
    """The items a generator has started to make (it reports before it yields)."""

    def __init__(self) -> None:
        self.started: list[int] = []

    def mark(self, i: int) -> None:
        self.started.append(i)

    def seen(self) -> list[int]:
        return self.started


def _started(progress) -> list[int]:
    return shoal.get(progress.seen.remote(), timeout=GET_TIMEOUT)


def _stays_at(progress, expected: list[int]) -> None:
    """The generator reached ``expected`` and does not go past it for QUIET_S."""
    wait_for_condition(lambda: _started(progress) == expected, timeout=30)
    deadline = time.monotonic() + QUIET_S
    while time.monotonic() < deadline:
        assert _started(progress) == expected


@shoal.remote(_generator_backpressure_num_objects=2)
def counted(progress, n):
    for i in range(n):
        shoal.get(progress.mark.remote(i), timeout=GET_TIMEOUT)
        yield i


@shoal.remote
class Streamer:
    @shoal.method(_generator_backpressure_num_objects=1)
    def items(self, progress, n):
        for i in range(n):
            shoal.get(progress.mark.remote(i), timeout=GET_TIMEOUT)
            yield i


def test_task_pauses_at_the_bound_and_resumes_as_items_are_taken(shoal_cluster):
    progress = Progress.remote()
    gen = counted.remote(progress, 6)
    _stays_at(progress, [0, 1])  # two yielded, none taken: paused before item 2
    assert shoal.get(next(gen), timeout=GET_TIMEOUT) == 0
    _stays_at(progress, [0, 1, 2])  # one taken: one more may be made
    assert [shoal.get(next(gen), timeout=GET_TIMEOUT) for _ in range(5)] == [1, 2, 3, 4, 5]
    with pytest.raises(StopIteration):
        next(gen)


def test_actor_method_pauses_with_the_method_option(shoal_cluster):
    progress = Progress.remote()
    streamer = Streamer.remote()
    gen = streamer.items.remote(progress, 3)
    _stays_at(progress, [0])
    assert shoal.get(next(gen), timeout=GET_TIMEOUT) == 0
    _stays_at(progress, [0, 1])
    assert [shoal.get(r, timeout=GET_TIMEOUT) for r in gen] == [1, 2]
    # .options() overrides the method's bound
    progress2 = Progress.remote()
    free = streamer.items.options(_generator_backpressure_num_objects=-1).remote(progress2, 3)
    wait_for_condition(lambda: _started(progress2) == [0, 1, 2], timeout=30)
    assert [shoal.get(r, timeout=GET_TIMEOUT) for r in free] == [0, 1, 2]


def test_dropping_the_generator_lets_the_task_finish(shoal_cluster):
    progress = Progress.remote()
    gen = counted.remote(progress, 5)
    _stays_at(progress, [0, 1])
    del gen
    wait_for_condition(lambda: _started(progress) == [0, 1, 2, 3, 4], timeout=30)


def test_bad_bounds_and_async_methods_are_refused(shoal_cluster):
    with pytest.raises(ValueError, match="backpressure_num_objects=0 is not allowed"):
        shoal.remote(_generator_backpressure_num_objects=0)(lambda: None)
    with pytest.raises(TypeError, match="_generator_backpressure_num_objects"):
        counted.options(_generator_backpressure_num_objects="2")

    @shoal.remote
    class AsyncStreamer:
        async def items(self):
            for i in range(3):
                yield i

    actor = AsyncStreamer.remote()
    gen = actor.items.options(_generator_backpressure_num_objects=1).remote()
    with pytest.raises(ValueError, match="async actor"):
        shoal.get(next(gen), timeout=GET_TIMEOUT)
