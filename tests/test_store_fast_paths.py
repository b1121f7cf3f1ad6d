"""The object store's fast paths, seen from a driver on a real single-node cluster.

* ``get`` of an object this process owns and still maps makes fresh views of the
  pinned copy without asking the node agent;
* ``wait`` on refs that are all ready answers at once;
* large ``put``s copy with several threads.

Each test checks behaviour a user sees (values, errors, the store's bytes going
back to zero), and the first also that no request reaches the agent.
"""

from __future__ import annotations

import gc
import re
import signal
import time

import numpy as np
import psutil
import pytest

import shoal
from shoal.core import context, shm_window
from shoal.core.shm_window import ParallelCopy
from shoal.rpc.messages import Method
from tests.utils import wait_for_condition

pytestmark = pytest.mark.timeout(60)

MiB = 1024 * 1024


def _worker():
    return context.current_worker_or_none()


def _requests_sent_to_agent() -> int:
    """How many requests this driver has sent its node agent (its next request id)."""
    counter = _worker().node._request_ids
    return int(re.fullmatch(r"count\((\d+)\)", repr(counter)).group(1))


def _store_used() -> int:
    return _worker().node_call(Method.STORE_STATS)["used"]


@shoal.remote
def make_array(n: int, fill: int) -> np.ndarray:
    return np.full(n, fill, dtype=np.uint8)


@shoal.remote
class Keeper:
    """Owns an array it put, and hands out the ref (so the driver only borrows it)."""

    def put(self, n: int) -> list:
        self.ref = shoal.put(np.arange(n, dtype=np.uint8))
        return [self.ref]


def test_get_of_a_mapped_object_needs_no_request_and_gives_a_fresh_view(shoal_cluster):
    arr = np.arange(4 * MiB, dtype=np.uint8)
    ref = shoal.put(arr)
    first = shoal.get(ref)
    before = _requests_sent_to_agent()
    again = [shoal.get(ref) for _ in range(20)]
    assert _requests_sent_to_agent() == before  # no STORE_GET while ``first`` maps it
    for view in again:
        assert view is not first and np.shares_memory(view, first)
        assert not view.flags.writeable
        np.testing.assert_array_equal(view, arr)


def test_get_and_drop_in_a_loop_reuses_the_idle_pin(shoal_cluster, monkeypatch):
    monkeypatch.setattr(shm_window, "IDLE_PIN_S", 30.0)  # no expiry during the test
    arr = np.arange(4 * MiB, dtype=np.uint8)
    ref = shoal.put(arr)
    assert int(shoal.get(ref)[-1]) == 255  # dropped at once
    before = _requests_sent_to_agent()
    for _ in range(20):
        assert int(shoal.get(ref)[12345]) == 12345 % 256
    assert _requests_sent_to_agent() == before
    del ref  # the owner's free gives the idle pin back without waiting for its expiry
    wait_for_condition(lambda: _store_used() == 0, timeout=10)


def test_an_idle_pin_goes_back_after_its_time(shoal_cluster):
    ref = shoal.put(np.arange(2 * MiB, dtype=np.uint8))
    assert int(shoal.get(ref)[3]) == 3
    wait_for_condition(lambda: _worker().shm.mapped_count == 0, timeout=10)
    before = _requests_sent_to_agent()
    assert int(shoal.get(ref)[4]) == 4
    assert _requests_sent_to_agent() == before + 1  # pinned afresh


def test_views_stay_valid_when_the_first_one_goes(shoal_cluster):
    arr = np.arange(3 * MiB, dtype=np.uint8)
    ref = shoal.put(arr)
    first = shoal.get(ref)
    second = shoal.get(ref)
    del first
    gc.collect()
    third = shoal.get(ref)  # re-got after the view it was made from is gone
    np.testing.assert_array_equal(second, arr)
    np.testing.assert_array_equal(third, arr)
    del second, third
    gc.collect()
    np.testing.assert_array_equal(shoal.get(ref), arr)  # pinned afresh


def test_mapped_objects_free_all_store_memory_when_refs_go(shoal_cluster):
    wait_for_condition(lambda: _store_used() == 0, timeout=20)
    refs = [shoal.put(np.full(2 * MiB, i, dtype=np.uint8)) for i in range(5)]
    refs += [make_array.remote(2 * MiB, 100 + i) for i in range(3)]
    views = [shoal.get(r) for r in refs for _ in range(3)]  # 3 views each, one pin
    assert [int(v[0]) for v in views[::3]] == [0, 1, 2, 3, 4, 100, 101, 102]
    assert _store_used() > 0
    del refs  # freed by the owner while views still map them: memory stays
    assert int(views[-1][-1]) == 102
    # the owner's free (counted lazily) drops them: no later get may reuse those pins
    wait_for_condition(lambda: _worker().shm.mapped_count == 0, timeout=10)
    del views
    gc.collect()
    wait_for_condition(lambda: _store_used() == 0, timeout=20)


def _node_agent() -> psutil.Process:
    [agent] = [p for p in psutil.Process().children(recursive=True)
               if any("shoal.node.main" in part for part in p.cmdline())]
    return agent


def test_a_get_timing_out_on_a_silent_agent_gives_the_late_pin_back(shoal_cluster):
    """The STORE_GET is sent and read on the user's thread (core/thread_pin.py):
    its timeout holds while the agent does not answer, and the pin the late
    answer makes is given back, so the store empties when the ref goes."""
    wait_for_condition(lambda: _store_used() == 0, timeout=20)
    ref = make_array.remote(2 * MiB, 7)  # made by a task: the driver does not map it yet
    assert shoal.wait([ref], timeout=30)[0] == [ref]
    agent = _node_agent()
    agent.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(shoal.exceptions.GetTimeoutError):
            shoal.get(ref, timeout=1)
        assert time.monotonic() - started < 5
    finally:
        agent.send_signal(signal.SIGCONT)
    assert int(shoal.get(ref, timeout=30)[0]) == 7  # the connection still works
    del ref
    gc.collect()
    wait_for_condition(lambda: _store_used() == 0, timeout=20,
                       message="the late answer's pin was given back")


def test_borrowed_object_whose_owner_died_errors_although_a_view_is_held(shoal_cluster):
    keeper = Keeper.remote()
    [ref] = shoal.get(keeper.put.remote(2 * MiB), timeout=30)
    held = shoal.get(ref, timeout=30)
    np.testing.assert_array_equal(held, np.arange(2 * MiB, dtype=np.uint8))
    shoal.kill(keeper)

    def owner_died_raised() -> bool:  # once the node agent hears of the death
        try:
            shoal.get(ref, timeout=30)
        except shoal.exceptions.OwnerDiedError:
            return True
        return False

    wait_for_condition(owner_died_raised, timeout=30)
    assert int(held[7]) == 7  # the view the driver holds stays readable


def test_wait_on_ready_refs_splits_by_num_returns_in_order(shoal_cluster):
    refs = [shoal.put(i) for i in range(50)]
    ready, rest = shoal.wait(refs, num_returns=50, timeout=10)
    assert ready == refs and rest == []
    ready, rest = shoal.wait(refs, num_returns=7, timeout=10)
    assert ready == refs[:7] and rest == refs[7:]
    ready, rest = shoal.wait(tuple(refs), num_returns=3, timeout=10)
    assert ready == refs[:3] and rest == refs[3:]  # lists, also for a tuple
    assert ready is not refs and isinstance(rest, list)


def test_wait_rejects_duplicates_and_non_refs_before_answering(shoal_cluster):
    ref = shoal.put(1)
    with pytest.raises(ValueError, match="duplicate"):
        shoal.wait([ref, ref], num_returns=2)
    with pytest.raises(TypeError, match="ObjectRef"):
        shoal.wait([ref, 3], num_returns=1)


def test_large_put_round_trips_through_the_parallel_copy(shoal_cluster):
    for n in (8 * MiB, 8 * MiB + 12_345, 33 * MiB + 1):
        arr = np.random.default_rng(n).integers(0, 255, n, dtype=np.uint8)
        np.testing.assert_array_equal(shoal.get(shoal.put(arr)), arr)
    strided = np.arange(40 * MiB // 8, dtype=np.int64)[::2]  # not contiguous: pickled copy
    np.testing.assert_array_equal(shoal.get(shoal.put(strided)), strided)


@pytest.mark.parametrize("helpers", [0, 1, 3])
@pytest.mark.parametrize("n", [1, 4095, 8 * MiB, 8 * MiB + 1, 9 * MiB + 65_537, 33 * MiB + 1])
def test_parallel_copy_copies_every_byte(helpers, n):
    src = np.random.default_rng(n).integers(0, 255, n, dtype=np.uint8)
    dst = np.zeros(n + 2, dtype=np.uint8)
    copy = ParallelCopy(helpers)
    try:
        copy(memoryview(dst)[1:n + 1], memoryview(src))
    finally:
        copy.close()
    np.testing.assert_array_equal(dst[1:n + 1], src)
    assert dst[0] == 0 and dst[-1] == 0
