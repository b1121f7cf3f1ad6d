"""``max_calls``: a worker that has run a function max_calls times leaves its lease
and exits, once it owns nothing that is still in scope (docs/design.md section 7)."""

from __future__ import annotations

import os

import pytest

import shoal
from tests.utils import pid_gone, wait_for_condition

CLUSTER_INIT_KWARGS = {"num_cpus": 1}


@pytest.mark.timeout(60)
def test_a_worker_leaves_after_max_calls(shoal_cluster):
    @shoal.remote(max_calls=2)
    def pid() -> int:
        return os.getpid()

    pids = [shoal.get(pid.remote(), timeout=30) for _ in range(6)]
    assert pids[0] == pids[1] and pids[2] == pids[3] and pids[4] == pids[5], pids
    assert len({pids[0], pids[2], pids[4]}) == 3, pids  # a new worker every two calls
    for old in (pids[0], pids[2]):
        wait_for_condition(lambda old=old: pid_gone(old), timeout=15,
                           message=f"the retired worker {old} did not exit")
    # pipelined calls (submitted together) run at most two per worker too
    many = shoal.get([pid.remote() for _ in range(6)], timeout=30)
    assert max(many.count(p) for p in set(many)) <= 2, many


@pytest.mark.timeout(60)
def test_a_retired_worker_stays_while_others_borrow_what_it_owns(shoal_cluster):
    @shoal.remote(max_calls=1)
    def make() -> tuple[int, list]:
        return os.getpid(), [shoal.put(b"x" * 1000)]  # owned by this worker

    @shoal.remote(max_calls=1)
    def pid() -> int:
        return os.getpid()

    owner_pid, [inner] = shoal.get(make.remote(), timeout=30)
    other = shoal.get(pid.remote(), timeout=30)  # the retired worker ran no more
    assert other != owner_pid
    assert not pid_gone(owner_pid)  # still owns `inner`, which the driver borrows
    assert shoal.get(inner, timeout=30) == b"x" * 1000
    del inner
    wait_for_condition(lambda: pid_gone(owner_pid), timeout=15,
                       message="the retired worker did not exit once its object was released")

