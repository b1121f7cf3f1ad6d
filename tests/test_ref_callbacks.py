"""Waiting on refs without blocking a thread per ref: ``ref.as_future()``,
``ref._on_completed(callback)`` and ``ref.future()``; and ``async def`` refused as
a remote function (it belongs in an async actor)."""

from __future__ import annotations

import asyncio
import threading

import pytest

import shoal
from tests.utils import open_gate, wait_for_condition, wait_for_file


@shoal.remote
def gated(gate: str, value: int) -> int:
    wait_for_file(gate, timeout=60)
    return value


@shoal.remote
def fails():
    raise ValueError("bad")


def test_on_completed_gets_the_value_or_the_error(shoal_cluster, tmp_path):
    seen: dict = {}
    shoal.put(7)._on_completed(lambda v: seen.__setitem__("put", v))
    wait_for_condition(lambda: seen.get("put") == 7, timeout=30)

    gate = str(tmp_path / "gate")
    gated.remote(gate, 3)._on_completed(lambda v: seen.__setitem__("task", v))
    fails.remote()._on_completed(lambda v: seen.__setitem__("error", v))
    wait_for_condition(lambda: "error" in seen, timeout=30)
    assert isinstance(seen["error"], ValueError)
    assert "task" not in seen
    open_gate(gate)
    wait_for_condition(lambda: seen.get("task") == 3, timeout=30)


def test_many_pending_futures_do_not_take_a_thread_each(shoal_cluster, tmp_path):
    gate = str(tmp_path / "gate")
    ref = gated.remote(gate, 5)
    before = threading.active_count()
    futures = [ref.future() for _ in range(200)]
    done = []
    for _ in range(200):
        ref._on_completed(done.append)
    assert threading.active_count() < before + 20
    open_gate(gate)
    assert [f.result(timeout=30) for f in futures] == [5] * 200
    wait_for_condition(lambda: len(done) == 200, timeout=30)


def test_as_future_is_an_asyncio_future(shoal_cluster, tmp_path):
    gate = str(tmp_path / "gate")
    ref = gated.remote(gate, 9)

    async def main():
        future = ref.as_future()
        assert isinstance(future, asyncio.Future)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(future, timeout=0.2)
        open_gate(gate)
        return await asyncio.wait_for(ref.as_future(), timeout=30)

    assert asyncio.run(main()) == 9


def test_async_def_is_not_a_remote_function():
    async def coroutine():
        return 1

    with pytest.raises(ValueError, match="async def"):
        shoal.remote(coroutine)
    with pytest.raises(ValueError, match="async def"):
        shoal.remote(num_cpus=1)(coroutine)


def test_handle_answers_rays_actor_id_spelling(shoal_cluster):
    @shoal.remote
    class Plain:
        def ping(self):
            return 1

    actor = Plain.remote()
    assert actor._ray_actor_id.hex() == actor._actor_id.hex()

