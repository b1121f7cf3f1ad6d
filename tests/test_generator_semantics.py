"""Generator tasks and methods as Ray defines them: num_returns=N (exactly N
yields), "dynamic", "streaming" (also async, and async generator methods), None."""

from __future__ import annotations

import asyncio
import itertools

import pytest

import shoal
from shoal import DynamicObjectRefGenerator

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


@pytest.mark.parametrize("n, said", [(2, "yielded 2 values"), (4, "yielded 3 or more")])
def test_generator_yielding_the_wrong_count_is_a_clear_error(shoal_cluster, n, said):
    refs = yields.remote(n)
    for ref in refs:
        with pytest.raises(ValueError, match=f"declared num_returns=3 but {said}"):
            shoal.get(ref, timeout=GET_TIMEOUT)


def test_an_endless_generator_with_num_returns_fails_instead_of_hanging(shoal_cluster):
    with pytest.raises(ValueError, match="yielded 2 or more"):
        shoal.get(forever.remote(), timeout=GET_TIMEOUT)


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
