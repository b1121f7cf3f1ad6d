"""Generator tasks and methods as Ray defines them: num_returns=N (exactly N
yields), "dynamic", "streaming" (also async, and async generator methods), None."""

from __future__ import annotations

import asyncio
import itertools

import numpy as np
import pytest

import shoal
from shoal import DynamicObjectRefGenerator
from shoal.core import context
from shoal.rpc.messages import Method
from tests.utils import wait_for_condition

GET_TIMEOUT = 60


@shoal.remote(num_returns=3)
def yields(n):
    yield from range(n)


@shoal.remote(num_returns=2)
def forever():
    yield from itertools.count()


def test_generator_with_num_returns_n_gives_n_refs(shoal_cluster):
    assert shoal.get(yields.remote(3), timeout=GET_TIMEOUT) == [0, 1, 2]

    @shoal.remote(num_returns=1)
    def one():
        yield "only"

    assert shoal.get(one.remote(), timeout=GET_TIMEOUT) == "only"


def _anon_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon in /proc/self/status")


def test_each_value_is_stored_as_it_is_yielded(shoal_cluster):
    """Ray's way to keep a task's heap small: with num_returns=N, a generator's
    values go to the store one at a time, so the task never holds them all."""
    size = 40 << 20

    @shoal.remote(num_returns=5)
    def blocks():
        base = peak = _anon_bytes()
        for i in range(4):
            yield np.full(size // 8, i, dtype=np.int64)  # fresh pages each time
            peak = max(peak, _anon_bytes())
        yield peak - base

    *arrays, grew = blocks.remote()
    assert [int(a[-1]) for a in shoal.get(arrays, timeout=GET_TIMEOUT)] == [0, 1, 2, 3]
    # held all at once, the heap would grow by 4 x 40 MB
    assert shoal.get(grew, timeout=GET_TIMEOUT) < 2 * size


def test_a_failed_task_frees_the_values_it_stored(shoal_cluster):
    """Too few values fail every return; the ones already stored are freed."""
    @shoal.remote(num_returns=3, max_retries=0)
    def two_large():
        yield np.ones(1 << 20)
        yield np.ones(1 << 20)

    def store_used() -> int:
        return context.current_worker_or_none().node_call(Method.STORE_STATS)["used"]

    before = store_used()
    refs = two_large.remote()
    with pytest.raises(ValueError, match="yielded 2 values"):
        shoal.get(refs[0], timeout=GET_TIMEOUT)
    wait_for_condition(lambda: store_used() == before, timeout=30)


def test_generator_yielding_too_few_values_is_a_clear_error(shoal_cluster):
    refs = yields.remote(2)
    for ref in refs:
        with pytest.raises(ValueError, match="declared num_returns=3 but yielded 2 values"):
            shoal.get(ref, timeout=GET_TIMEOUT)


def test_extra_values_are_dropped_and_an_endless_generator_ends(shoal_cluster):
    assert shoal.get(yields.remote(5), timeout=GET_TIMEOUT) == [0, 1, 2]  # as Ray: logged
    assert shoal.get(forever.remote(), timeout=GET_TIMEOUT) == [0, 1]


def test_dynamic_needs_a_generator_function(shoal_cluster):
    with pytest.raises(ValueError, match="can only be used with generator"):
        @shoal.remote(num_returns="dynamic")
        def not_a_generator():
            return 1


def test_get_of_a_streaming_generator_returns_it(shoal_cluster):
    @shoal.remote
    def stream(n):
        yield from range(n)

    gen = stream.remote(2)
    assert shoal.get(gen) is gen
    first, second = gen
    assert shoal.get([first, second], timeout=GET_TIMEOUT) == [0, 1]


def test_dynamic_returns_a_ref_to_an_iterable_of_refs(shoal_cluster):
    ref = yields.options(num_returns="dynamic").remote(4)
    gen = shoal.get(ref, timeout=GET_TIMEOUT)
    assert isinstance(gen, DynamicObjectRefGenerator) and len(gen) == 4
    assert [shoal.get(r, timeout=GET_TIMEOUT) for r in gen] == [0, 1, 2, 3]


def test_num_returns_none_is_the_default(shoal_cluster):
    @shoal.remote
    def plain():
        return 5

    @shoal.remote
    def gen():
        yield 1
        yield 2

    assert shoal.get(plain.options(num_returns=None).remote(), timeout=GET_TIMEOUT) == 5
    refs = gen.options(num_returns=None).remote()  # a generator: streaming
    assert [shoal.get(r, timeout=GET_TIMEOUT) for r in refs] == [1, 2]


def test_async_for_over_a_streaming_generator(shoal_cluster):
    @shoal.remote
    def stream(n):
        yield from range(n)

    async def consume():
        return [await ref async for ref in stream.remote(3)]

    assert asyncio.run(asyncio.wait_for(consume(), GET_TIMEOUT)) == [0, 1, 2]


def test_async_generator_method_streams_each_item_as_yielded(shoal_cluster):
    @shoal.remote
    class Source:
        def __init__(self):
            self.more = asyncio.Event()

        async def items(self):
            yield "first"
            await self.more.wait()
            yield "second"
            raise ValueError("after two")

        async def release(self):
            self.more.set()

        @shoal.method(num_returns=2)
        async def pair(self):
            yield 1
            yield 2

    source = Source.remote()
    gen = source.items.remote()
    assert shoal.get(next(gen), timeout=GET_TIMEOUT) == "first"  # before the generator ends
    shoal.get(source.release.remote(), timeout=GET_TIMEOUT)
    assert shoal.get(next(gen), timeout=GET_TIMEOUT) == "second"
    with pytest.raises(ValueError, match="after two"):
        shoal.get(next(gen), timeout=GET_TIMEOUT)
    assert shoal.get(source.pair.remote(), timeout=GET_TIMEOUT) == [1, 2]


class Flaky(Exception):
    pass


def test_a_generator_that_raises_a_retryable_error_is_run_again(shoal_cluster, tmp_path):
    attempts = tmp_path / "attempts"

    @shoal.remote(retry_exceptions=[Flaky], max_retries=2)
    def flaky_stream():
        with open(attempts, "a") as f:
            f.write("x")
        yield "first"
        if len(attempts.read_text()) < 3:
            raise Flaky("not yet")
        yield "second"

    gen = flaky_stream.remote()
    assert [shoal.get(r, timeout=GET_TIMEOUT) for r in gen] == ["first", "second"]
    assert attempts.read_text() == "xxx"  # two retries; "first" was not delivered again

    @shoal.remote(retry_exceptions=[Flaky], max_retries=1)
    def always_fails():
        yield 1
        raise Flaky("always")

    gen = always_fails.remote()
    assert shoal.get(next(gen), timeout=GET_TIMEOUT) == 1
    with pytest.raises(Flaky):
        shoal.get(next(gen), timeout=GET_TIMEOUT)
    with pytest.raises(StopIteration):
        next(gen)


def test_values_yielded_before_an_error_are_kept(shoal_cluster):
    @shoal.remote(num_returns=3, max_retries=0)
    def fails_after_one():
        yield "kept"
        raise RuntimeError("after one")

    first, second, third = fails_after_one.remote()
    assert shoal.get(first, timeout=GET_TIMEOUT) == "kept"
    for ref in (second, third):
        with pytest.raises(RuntimeError, match="after one"):
            shoal.get(ref, timeout=GET_TIMEOUT)


def test_generator_method_streams_unless_num_returns_says_otherwise(shoal_cluster):
    @shoal.remote
    class Gen:
        def items(self, n):
            yield from range(n)

    actor = Gen.remote()
    gen = actor.items.options(num_returns=None).remote(2)  # None: the default, streaming
    assert [shoal.get(r, timeout=GET_TIMEOUT) for r in gen] == [0, 1]
    assert shoal.get(actor.items.options(num_returns=2).remote(2), timeout=GET_TIMEOUT) == [0, 1]


def test_wait_takes_streaming_generators(shoal_cluster, tmp_path):
    gate = tmp_path / "gate"

    @shoal.remote
    def gated(gate_path):
        yield 1
        import os
        import time

        while not os.path.exists(gate_path):
            time.sleep(0.01)
        yield 2

    gen = gated.remote(str(gate))
    ready, not_ready = shoal.wait([gen], timeout=GET_TIMEOUT)
    assert ready == [gen] and shoal.get(next(gen), timeout=GET_TIMEOUT) == 1
    ready, not_ready = shoal.wait([gen], timeout=0.3)  # item 2 waits for the gate
    assert ready == [] and not_ready == [gen]
    gate.touch()
    assert shoal.wait([gen], timeout=GET_TIMEOUT)[0] == [gen]
    assert gen.next_ready()
    assert shoal.get(next(gen), timeout=GET_TIMEOUT) == 2
    wait_for_condition(lambda: shoal.wait([gen], timeout=0)[0] == [gen]
                       and shoal.wait([gen.completed()], timeout=0)[0])
    assert gen.is_finished() and not gen.next_ready()  # all taken: next() would stop
    with pytest.raises(StopIteration):
        next(gen)
    assert gen.is_finished()


def test_iterating_a_dynamic_generator_hands_each_ref_over(shoal_cluster):
    """Ray: the generator forgets each ref it hands out, so an item consumed and
    dropped is freed while the generator lives."""
    from shoal.core import context

    gen = shoal.get(yields.options(num_returns="dynamic").remote(4), timeout=GET_TIMEOUT)
    refs = context.current_worker_or_none().references.refs
    first = next(iter(gen))
    assert len(gen) == 3
    oid = first.object_id
    assert shoal.get(first, timeout=GET_TIMEOUT) == 0
    del first
    wait_for_condition(lambda: oid not in refs, timeout=GET_TIMEOUT)
    assert [shoal.get(r, timeout=GET_TIMEOUT) for r in gen] == [1, 2, 3]
    assert len(gen) == 0 and list(gen) == []
