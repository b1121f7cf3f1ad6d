"""shoal.util.queue.Queue and shoal.util.multiprocessing.Pool with real actors."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

import shoal
from shoal.util.multiprocessing import Pool, TimeoutError
from shoal.util.queue import Empty, Full, Queue

GET_TIMEOUT = 60


# ---------------------------------------------------------------------------- queue


def test_queue_put_get_sizes_and_nowait(shoal_cluster):
    q = Queue(maxsize=2)
    assert q.empty() and not q.full() and len(q) == 0
    q.put("a")
    q.put_nowait("b")
    assert q.full() and q.qsize() == 2
    with pytest.raises(Full):
        q.put_nowait("c")
    with pytest.raises(Full):
        q.put("c", block=False)
    assert q.get() == "a" and q.get_nowait() == "b"
    with pytest.raises(Empty):
        q.get_nowait()
    q.shutdown()


def test_queue_blocking_calls_honour_their_timeout(shoal_cluster):
    q = Queue(maxsize=1)
    start = time.monotonic()
    with pytest.raises(Empty):
        q.get(timeout=0.3)
    q.put(1)
    with pytest.raises(Full):
        q.put(2, timeout=0.3)
    assert 0.5 <= time.monotonic() - start < 10
    with pytest.raises(ValueError):
        q.get(timeout=-1)
    q.shutdown(force=True)


def test_queue_batches_are_all_or_nothing(shoal_cluster):
    q = Queue(maxsize=3)
    q.put_nowait_batch([1, 2])
    with pytest.raises(Full):
        q.put_nowait_batch([3, 4])
    assert q.qsize() == 2
    with pytest.raises(Empty):
        q.get_nowait_batch(3)
    assert q.get_nowait_batch(2) == [1, 2]
    q.shutdown()


def test_queue_is_shared_by_tasks_and_a_blocked_get_wakes_on_put(shoal_cluster):
    q = Queue()

    @shoal.remote
    def consumer(queue):
        return [queue.get(timeout=30) for _ in range(3)]

    @shoal.remote
    def producer(queue):
        for i in range(3):
            queue.put(i)

    got = consumer.remote(q)
    shoal.get(producer.remote(q), timeout=GET_TIMEOUT)
    assert shoal.get(got, timeout=GET_TIMEOUT) == [0, 1, 2]
    q.shutdown()


def test_queue_async_variants(shoal_cluster):
    q = Queue(maxsize=1)

    async def run():
        await q.put_async("x")
        with pytest.raises(Full):
            await q.put_async("y", timeout=0.2)
        value = await q.get_async()
        with pytest.raises(Empty):
            await q.get_async(block=False)
        return value

    assert asyncio.run(run()) == "x"
    q.shutdown()


# ---------------------------------------------------------------------------- pool


def square(x):
    return x * x


def fail_on_three(x):
    if x == 3:
        raise ValueError("three")
    return x


def set_marker(value):
    os.environ["POOL_MARKER"] = value


def read_marker(_):
    return os.environ.get("POOL_MARKER"), os.getpid()


def test_pool_map_starmap_apply_and_iterators(shoal_cluster):
    with Pool(processes=2) as pool:
        assert pool.map(square, range(10)) == [x * x for x in range(10)]
        assert pool.map(square, range(7), chunksize=3) == [x * x for x in range(7)]
        assert pool.starmap(pow, [(2, 3), (3, 2)]) == [8, 9]
        assert pool.apply(square, (6,)) == 36
        assert list(pool.imap(square, range(5))) == [0, 1, 4, 9, 16]
        assert sorted(pool.imap_unordered(square, range(5))) == [0, 1, 4, 9, 16]


def test_pool_initializer_runs_in_every_process(shoal_cluster):
    with Pool(processes=2, initializer=set_marker, initargs=("set",)) as pool:
        results = pool.map(read_marker, range(8), chunksize=1)
    assert {marker for marker, _ in results} == {"set"}
    assert len({pid for _, pid in results}) == 2


def test_pool_async_results_errors_and_callbacks(shoal_cluster):
    with Pool(processes=2) as pool:
        got = []
        result = pool.map_async(square, [1, 2, 3], callback=got.append)
        assert result.get(timeout=GET_TIMEOUT) == [1, 4, 9]
        assert result.ready() and result.successful()
        from tests.utils import wait_for_condition

        wait_for_condition(lambda: got == [[1, 4, 9]])
        errors = []
        failing = pool.map_async(fail_on_three, range(5), error_callback=errors.append)
        with pytest.raises(ValueError, match="three"):
            failing.get(timeout=GET_TIMEOUT)
        assert not failing.successful()
        wait_for_condition(lambda: len(errors) == 1)
        slow = pool.apply_async(time.sleep, (5,))
        with pytest.raises(TimeoutError):
            slow.get(timeout=0.2)


def test_pool_close_join_and_use_after_terminate(shoal_cluster):
    pool = Pool(processes=1)
    result = pool.map_async(square, range(4))
    pool.close()
    with pytest.raises(ValueError, match="not running"):
        pool.map(square, [1])
    pool.join()
    assert result.get(timeout=GET_TIMEOUT) == [0, 1, 4, 9]
    pool.terminate()
    with pytest.raises(ValueError):
        Pool(processes=0)
