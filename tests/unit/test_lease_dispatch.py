"""The caller's dispatch decisions (shoal/core/lease_dispatch.py): which leased
worker gets which ready task, when to ask for another lease, when to return one.
Pure: no sockets, no loop."""

from __future__ import annotations

from types import SimpleNamespace

from shoal.core.lease_dispatch import (
    KeyState,
    LeasedWorker,
    idle_workers,
    keep_grant,
    leases_wanted,
    locality_node,
    next_worker,
    should_return,
    steal_victim,
    tasks_to_steal,
)


def _task(name: str, function_id: bytes = b"f"):
    return SimpleNamespace(name=name, depth=0, queue_seq=-1,
                           spec=SimpleNamespace(function_id=function_id))


def _worker(n: int, in_flight: int = 0) -> LeasedWorker:
    leased = LeasedWorker(n, f"w{n}", f"addr{n}", "node", node_conn=None, conn=object())
    for i in range(in_flight):
        leased.in_flight[f"{n}-{i}".encode()] = _task(f"busy{i}")
    return leased


def plan_dispatch(state: KeyState, depth_of) -> SimpleNamespace:
    """What LeaseSubmitter.dispatch does, with a push recorded in ``in_flight``."""
    pushes = []
    while (leased := next_worker(state, depth_of)) is not None:
        task = state.queue.popleft()
        leased.in_flight[id(task)] = task
        pushes.append((leased, task))
    return SimpleNamespace(pushes=pushes, request_leases=leases_wanted(state),
                           idle=idle_workers(state))


def _key(*workers: LeasedWorker, tasks: int = 0, max_in_flight: int = 8) -> KeyState:
    state = KeyState(key=(), resources={"CPU": 1}, label="f", max_in_flight=max_in_flight)
    state.workers.extend(workers)
    for i in range(tasks):
        state.queue.append(_task(f"t{i}"))
    return state


def test_no_worker_asks_for_one_lease_per_queued_task():
    state = _key(tasks=3)
    plan = plan_dispatch(state, lambda fid: 8)
    assert plan.pushes == [] and plan.request_leases == 3 and plan.idle == []
    assert len(state.queue) == 3  # nothing was taken off the queue
    state.requesting = 3
    assert plan_dispatch(state, lambda fid: 8).request_leases == 0  # already asked


def test_tasks_go_to_the_least_loaded_worker_up_to_the_pipeline_depth():
    a, b = _worker(1, in_flight=1), _worker(2)
    state = _key(a, b, tasks=5)
    plan = plan_dispatch(state, lambda fid: 2)  # this function: 2 in flight per worker
    assert [(w.lease_id, t.name) for w, t in plan.pushes] == [(2, "t0"), (1, "t1"), (2, "t2")]
    assert len(state.queue) == 2
    # two still queued, and each worker has one waiting behind its running task
    assert plan.request_leases == 4
    assert plan.idle == []


def test_a_long_function_runs_one_at_a_time_per_worker():
    a = _worker(1)
    state = _key(a, tasks=2)
    plan = plan_dispatch(state, lambda fid: 1)
    assert [t.name for _, t in plan.pushes] == ["t0"]
    assert plan.request_leases == 1


def test_dead_and_unconnected_workers_get_nothing():
    dead, connecting = _worker(1), _worker(2)
    dead.dead = True
    connecting.conn = None
    plan = plan_dispatch(_key(dead, connecting, tasks=1), lambda fid: 8)
    assert plan.pushes == [] and plan.request_leases == 1


def test_spread_keys_run_one_task_per_worker():
    a, b = _worker(1), _worker(2)
    plan = plan_dispatch(_key(a, b, tasks=3, max_in_flight=1), lambda fid: 8)
    assert [w.lease_id for w, _ in plan.pushes] == [1, 2]


def test_idle_workers_with_nothing_queued_steal_then_linger():
    busy, idle, lingering = _worker(1, in_flight=4), _worker(2), _worker(3)
    lingering.linger = object()  # its return is already scheduled
    state = _key(busy, idle, lingering)
    plan = plan_dispatch(state, lambda fid: 8)
    assert plan.pushes == [] and plan.idle == [idle]
    assert plan.request_leases == 3  # the three waiting behind busy's running task
    assert steal_victim(state, idle) is busy
    assert tasks_to_steal(busy) == [b"1-2", b"1-3"]  # the newest half of those waiting
    busy.stealing = True
    assert steal_victim(state, idle) is None  # one steal at a time


def test_keep_a_grant_only_while_work_waits():
    state = _key(_worker(1, in_flight=1))
    assert not keep_grant(state)
    state.workers.append(_worker(2, in_flight=2))  # one waits behind a running task
    assert keep_grant(state)
    assert keep_grant(_key(tasks=1))


def test_return_a_lingering_worker_only_if_still_idle():
    leased = _worker(1)
    state = _key(leased)
    assert should_return(state, leased)
    state.queue.append(_task("late"))
    assert not should_return(state, leased)
    assert not should_return(_key(), _worker(2, in_flight=1))


def test_locality_prefers_the_node_with_most_argument_bytes():
    locations = [({"n2"}, 100), ({"n1", "n2"}, 50), ({"n3"}, 120)]
    assert locality_node(locations, "n1") == "n2"
    assert locality_node(locations, "n2") == ""  # most are here already
    assert locality_node([], "n1") == ""
