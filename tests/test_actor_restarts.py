"""Actor restarts (``max_restarts``) and call retries (``max_task_retries``), with
real processes: the actor's worker is SIGKILLed with ``os.kill``, or its node is
removed from a local ``Cluster``.

Synchronisation is on events: a file the actor writes when a call has started,
or the actor's state in the control store polled with a deadline.
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

import shoal
from shoal.api.session import control_call
from shoal.cluster_utils import Cluster
from shoal.exceptions import ActorDiedError, ActorUnavailableError
from shoal.rpc.messages import Method
from shoal.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from tests.utils import wait_for_condition

T = 30  # timeout of every blocking get


@shoal.remote
class Counter:
    def __init__(self, start: int = 0, slow_restart_s: float = 0.0,
                 die_on_restart: bool = False) -> None:
        ctx = shoal.get_runtime_context()
        self.reconstructed_in_init = ctx.was_current_actor_reconstructed
        if self.reconstructed_in_init:
            time.sleep(slow_restart_s)  # keeps it RESTARTING long enough to call it
            if die_on_restart:
                os._exit(3)
        self.count = start

    def incr(self, by: int = 1) -> int:
        self.count += by
        return self.count

    def pid(self) -> int:
        return os.getpid()

    def node(self) -> str:
        return shoal.get_runtime_context().get_node_id()

    def reconstructed(self) -> tuple[bool, bool]:
        ctx = shoal.get_runtime_context()
        return self.reconstructed_in_init, ctx.was_current_actor_reconstructed

    def hang(self, path: str) -> None:
        """Say that the call runs, then never answer."""
        with open(path, "w"):
            pass
        time.sleep(120)

    def step(self, i: int, pause_s: float) -> tuple[int, int, int]:
        time.sleep(pause_s)
        self.count += 1
        return i, os.getpid(), self.count


@shoal.remote
class Big:
    def __init__(self, array: np.ndarray) -> None:
        self.total = float(array.sum())

    def total_and_pid(self) -> tuple[float, int]:
        return self.total, os.getpid()


@shoal.remote
class Owner:
    def make(self) -> list:
        self.child = Counter.options(max_restarts=-1).remote()
        shoal.get(self.child.incr.remote())
        return [self.child]

    def pid(self) -> int:
        return os.getpid()


def record(actor) -> dict:
    """The control store's record of ``actor`` (state, num_restarts, death_cause)."""
    for rec in control_call(Method.LIST_ACTORS):
        if rec["actor_id"] == actor._actor_id:
            return rec
    raise LookupError(actor._actor_id)


def wait_state(actor, state: str, num_restarts: int | None = None,
               timeout: float = T) -> dict:
    def reached():
        rec = record(actor)
        if rec["state"] == state and (num_restarts is None
                                      or rec["num_restarts"] == num_restarts):
            return rec
        return None

    return wait_for_condition(reached, timeout=timeout,
                              message=f"actor {state} (num_restarts={num_restarts})")


def kill_process(actor) -> int:
    """SIGKILL the actor's worker; returns its pid.  Asked with retries, so it works
    right after a restart too."""
    pid = shoal.get(actor.pid.options(max_task_retries=-1).remote(), timeout=T)
    os.kill(pid, signal.SIGKILL)
    return pid


# ---------------------------------------------------------------------------
# A cluster of two nodes (before the tests that share one single-node cluster).
# ---------------------------------------------------------------------------


@pytest.fixture
def two_nodes():
    if shoal.is_initialized():
        shoal.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "object_store_memory": 64 << 20})
    try:
        node = cluster.add_node(num_cpus=1, object_store_memory=64 << 20)
        cluster.connect()
        yield cluster, node
    finally:
        shoal.shutdown()
        cluster.shutdown()


def test_actor_comes_back_on_another_node_after_its_node_dies(two_nodes):
    cluster, node = two_nodes
    there = NodeAffinitySchedulingStrategy(node.node_id, soft=True)
    counter = Counter.options(max_restarts=1, scheduling_strategy=there).remote()
    assert shoal.get(counter.node.remote(), timeout=T) == node.node_id
    assert shoal.get(counter.incr.remote(5), timeout=T) == 5
    cluster.remove_node(node)
    wait_state(counter, "ALIVE", num_restarts=1)
    # on the head, the only node left (a retry: this caller may hear of the restart
    # a moment after the control store)
    assert shoal.get(counter.node.options(max_task_retries=1).remote(),
                     timeout=T) == cluster.head_node.node_id
    assert shoal.get(counter.incr.remote(), timeout=T) == 1  # a fresh constructor
    assert shoal.get(counter.reconstructed.remote(), timeout=T) == (True, True)
    rec = wait_state(counter, "ALIVE", num_restarts=1)
    assert f"node {node.node_id}" in rec["death_cause"] and "died" in rec["death_cause"]


# ---------------------------------------------------------------------------
# Tests sharing one single-node cluster (they kill actor workers only).
# ---------------------------------------------------------------------------


def test_counter_restarts_with_fresh_state(shoal_cluster):
    counter = Counter.options(max_restarts=1).remote(10)
    assert shoal.get(counter.incr.remote(), timeout=T) == 11
    assert shoal.get(counter.reconstructed.remote(), timeout=T) == (False, False)
    old = kill_process(counter)
    wait_state(counter, "ALIVE", num_restarts=1)
    # a retry: this caller may hear of the restart a moment after the control store
    assert shoal.get(counter.incr.options(max_task_retries=1).remote(),
                     timeout=T) == 11  # constructor ran again
    assert shoal.get(counter.pid.remote(), timeout=T) != old
    assert shoal.get(counter.reconstructed.remote(), timeout=T) == (True, True)
    assert "died unexpectedly" in record(counter)["death_cause"]


def test_call_in_flight_without_retries_fails_then_later_calls_succeed(shoal_cluster,
                                                                      tmp_path):
    counter = Counter.options(max_restarts=-1).remote()
    assert shoal.get(counter.incr.remote(), timeout=T) == 1
    pid = shoal.get(counter.pid.remote(), timeout=T)
    started = tmp_path / "started"
    busy = counter.hang.remote(str(started))
    wait_for_condition(started.exists, timeout=T, message="the call runs")
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(ActorUnavailableError, match="restart") as info:
        shoal.get(busy, timeout=T)
    assert "died unexpectedly" in str(info.value)
    assert "max_task_retries" in str(info.value)
    # the caller knows of the restart now: later calls with retries wait for it
    # (without, they may fail at once while it restarts: test below)
    assert [shoal.get(counter.incr.options(max_task_retries=1).remote(), timeout=T)
            for _ in range(3)] == [1, 2, 3]


def test_calls_with_infinite_retries_all_complete_in_order(shoal_cluster):
    counter = Counter.options(max_restarts=-1, max_task_retries=-1).remote()
    first = shoal.get(counter.pid.remote(), timeout=T)
    refs = [counter.step.remote(i, 0.005) for i in range(150)]
    shoal.get(refs[0], timeout=T)
    os.kill(first, signal.SIGKILL)  # while ~150 calls are in flight
    refs += [counter.step.remote(i, 0.005) for i in range(150, 300)]
    _, second, _ = shoal.get(refs[160], timeout=T)  # sent after the kill: a new process
    os.kill(second, signal.SIGKILL)  # and once more
    refs += [counter.step.remote(i, 0.005) for i in range(300, 400)]
    results = shoal.get(refs, timeout=60)
    assert [i for i, _, _ in results] == list(range(400))
    by_process: dict[int, list] = {}
    for i, pid, count in results:
        by_process.setdefault(pid, []).append((i, count))
    assert len(by_process) == 3
    for calls in by_process.values():  # each incarnation ran its calls in order
        counts = [count for _, count in sorted(calls)]
        assert counts == sorted(counts) and len(set(counts)) == len(counts)


def test_method_option_overrides_the_actors_max_task_retries(shoal_cluster, tmp_path):
    counter = Counter.options(max_restarts=-1, max_task_retries=-1).remote()
    pid = shoal.get(counter.pid.remote(), timeout=T)
    started = tmp_path / "started"
    busy = counter.hang.options(max_task_retries=0).remote(str(started))
    wait_for_condition(started.exists, timeout=T, message="the call runs")
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(ActorUnavailableError):
        shoal.get(busy, timeout=T)


def test_exhausted_restarts_give_actor_died_error_with_the_cause(shoal_cluster):
    counter = Counter.options(max_restarts=1).remote()
    kill_process(counter)
    wait_state(counter, "ALIVE", num_restarts=1)
    kill_process(counter)
    rec = wait_state(counter, "DEAD", num_restarts=1)
    assert "died unexpectedly" in rec["death_cause"]
    with pytest.raises(ActorDiedError, match="died unexpectedly"):
        shoal.get(counter.incr.remote(), timeout=T)


def test_calls_made_while_restarting_wait_for_it_if_they_have_retries(shoal_cluster):
    counter = Counter.options(max_restarts=1).remote(0, 1.0)
    kill_process(counter)
    wait_state(counter, "RESTARTING")
    refs = [counter.incr.options(max_task_retries=1).remote() for _ in range(5)]
    assert shoal.get(refs, timeout=T) == [1, 2, 3, 4, 5]  # never sent: no retry used
    assert record(counter)["state"] == "ALIVE"


def test_calls_without_retries_made_while_restarting_fail_at_once(shoal_cluster):
    """Ray's at-most-once default (max_task_retries=0): a call made while the caller
    knows the actor is restarting fails with ActorUnavailableError instead of
    waiting; a call with retries waits for it."""
    counter = Counter.options(max_restarts=1).remote(0, 3.0)
    kill_process(counter)
    wait_state(counter, "RESTARTING")
    # the caller hears of the restart from the actor channel
    wait_for_condition(lambda: _fails_at_once(counter), timeout=T,
                       message="a call without retries fails while it restarts")
    assert shoal.get(counter.incr.options(max_task_retries=1).remote(), timeout=T) == 1
    assert shoal.get(counter.incr.remote(), timeout=T) == 2  # back: no retries needed


def _fails_at_once(counter) -> bool:
    try:
        shoal.get(counter.incr.remote(), timeout=T)
    except ActorUnavailableError as exc:
        assert "max_task_retries=0" in str(exc)
        return True
    return False


def test_calls_made_while_restarting_fail_if_it_dies_for_good(shoal_cluster):
    counter = Counter.options(max_restarts=1).remote(0, 1.0, True)
    kill_process(counter)
    wait_state(counter, "RESTARTING")
    ref = counter.incr.options(max_task_retries=1).remote()
    with pytest.raises(ActorDiedError, match="constructor"):
        shoal.get(ref, timeout=T)
    assert record(counter)["state"] == "DEAD"


def test_kill_no_restart_false_restarts_and_kill_does_not(shoal_cluster):
    counter = Counter.options(max_restarts=-1, name="restart-by-kill").remote()
    assert shoal.get(counter.incr.remote(), timeout=T) == 1
    shoal.kill(counter, no_restart=False)
    rec = wait_state(counter, "ALIVE", num_restarts=1)
    assert "no_restart=False" in rec["death_cause"]
    # the control store says ALIVE; this caller may hear it a moment later, and a call
    # without retries made before that fails at once (Ray's at-most-once default)
    assert shoal.get(counter.incr.options(max_task_retries=1).remote(), timeout=T) == 1
    again = shoal.get_actor("restart-by-kill")  # keeps its name while it restarts
    assert shoal.get(again.reconstructed.remote(), timeout=T) == (True, True)
    shoal.kill(counter)
    rec = wait_state(counter, "DEAD")
    assert rec["num_restarts"] == 1 and "shoal.kill()" in rec["death_cause"]
    with pytest.raises(ActorDiedError, match=r"shoal\.kill\(\)"):
        shoal.get(counter.incr.remote(), timeout=T)
    with pytest.raises(ValueError):
        shoal.get_actor("restart-by-kill")


def test_kill_no_restart_false_without_restarts_left_is_final(shoal_cluster):
    counter = Counter.remote()
    assert shoal.get(counter.incr.remote(), timeout=T) == 1
    shoal.kill(counter, no_restart=False)
    wait_state(counter, "DEAD", num_restarts=0)
    with pytest.raises(ActorDiedError):
        shoal.get(counter.incr.remote(), timeout=T)


def test_constructor_arguments_in_the_object_store_outlive_the_first_construction(
        shoal_cluster):
    array = np.ones(200_000)  # 1.6 MB: passed by reference, not inline
    big = Big.options(max_restarts=1).remote(array)
    del array
    total, pid = shoal.get(big.total_and_pid.remote(), timeout=T)
    os.kill(pid, signal.SIGKILL)
    total2, pid2 = shoal.get(big.total_and_pid.options(max_task_retries=-1).remote(),
                             timeout=T)
    assert total == total2 == 200_000.0 and pid2 != pid


def test_a_non_detached_actor_dies_with_its_owner_and_is_not_restarted(shoal_cluster):
    owner = Owner.remote()
    [child] = shoal.get(owner.make.remote(), timeout=T)
    assert shoal.get(child.incr.remote(), timeout=T) == 2
    os.kill(shoal.get(owner.pid.remote(), timeout=T), signal.SIGKILL)
    rec = wait_state(child, "DEAD", num_restarts=0)
    assert "owner" in rec["death_cause"]
    with pytest.raises(ActorDiedError, match="owner"):
        shoal.get(child.incr.remote(), timeout=T)


def test_death_causes_use_rays_wording(shoal_cluster):
    """Programs match Ray's phrases for why an actor died (a killed worker process,
    a dead owner)."""
    @shoal.remote
    class Pid:
        def pid(self):
            return os.getpid()

        def make(self):
            self.child = Pid.remote()
            return self.child

    victim = Pid.remote()
    os.kill(shoal.get(victim.pid.remote(), timeout=60), signal.SIGKILL)
    with pytest.raises(ActorDiedError, match="The actor is dead because its worker process "
                                             "has died"):
        shoal.get(victim.pid.remote(), timeout=60)
    owner = Pid.remote()
    child = shoal.get(owner.make.remote(), timeout=60)
    shoal.kill(owner)
    with pytest.raises(ActorDiedError, match="The actor is dead because its owner has died"):
        shoal.get(child.pid.remote(), timeout=60)
