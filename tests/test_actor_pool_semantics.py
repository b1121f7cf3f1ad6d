"""ActorPool as Ray defines it: eager map, earlier calls set aside, lists of refs, push."""

from __future__ import annotations

import asyncio

import pytest

import shoal
from shoal.util import ActorPool
from tests.utils import wait_for_condition

GET_TIMEOUT = 60


@shoal.remote
class Recorder:
    def __init__(self):
        self.seen = []

    def record(self, value):
        self.seen.append(value)
        return value * 10

    def seen_values(self):
        return self.seen

    @shoal.method(num_returns=2)
    def pair(self, value):
        return value, -value


def test_map_submits_every_value_before_it_is_iterated(shoal_cluster):
    actor = Recorder.remote()
    pool = ActorPool([actor])
    results = pool.map(lambda a, v: a.record.remote(v), [1, 2, 3])  # not consumed yet
    wait_for_condition(lambda: shoal.get(actor.seen_values.remote(), timeout=GET_TIMEOUT)
                       == [1], timeout=10)  # the first ran without anyone reading
    assert list(results) == [10, 20, 30]


def test_map_ignores_a_slow_call_submitted_before_it(shoal_cluster):
    @shoal.remote
    class Slow:
        async def echo(self, value):
            if value == "slow":
                await asyncio.sleep(30)
            return value

    pool = ActorPool([Slow.remote(), Slow.remote()])
    pool.submit(lambda a, v: a.echo.remote(v), "slow")
    assert list(pool.map(lambda a, v: a.echo.remote(v), [1, 2, 3])) == [1, 2, 3]
    assert sorted(pool.map_unordered(lambda a, v: a.echo.remote(v), [4, 5])) == [4, 5]


def test_methods_with_several_returns_come_back_as_lists(shoal_cluster):
    pool = ActorPool([Recorder.remote(), Recorder.remote()])
    for value in range(3):
        pool.submit(lambda a, v: a.pair.remote(v), value)
    got = []
    while pool.has_next():
        got.append(pool.get_next(timeout=GET_TIMEOUT))
    assert got == [[0, 0], [1, -1], [2, -2]]


def test_push_refuses_an_actor_already_in_the_pool(shoal_cluster):
    first, second = Recorder.remote(), Recorder.remote()
    pool = ActorPool([first])
    pool.submit(lambda a, v: a.record.remote(v), 1)
    with pytest.raises(ValueError, match="already belongs"):
        pool.push(first)  # busy, but the pool's
    pool.push(second)
    assert pool.has_free() and pool.pop_idle() is second
