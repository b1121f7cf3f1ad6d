"""Small edges of Ray's documented behaviour that Ray's own tests rely on: each
test names the rule it pins."""

from __future__ import annotations

import os
import time

import pytest

import shoal
from tests.utils import open_gate, wait_for_condition, wait_for_file

pytestmark = pytest.mark.timeout(120)


@shoal.remote
class _Pinger:
    def ping(self) -> str:
        return "pong"


# shutdown_only tests first: the module's shoal_cluster must not be running yet.
def test_a_handle_from_an_earlier_cluster_says_so(shutdown_only):
    """Ray's wording for a handle the current cluster does not know: "It might be
    dead or it's from a different cluster"."""
    shoal.init(num_cpus=1)
    actor = _Pinger.remote()
    assert shoal.get(actor.ping.remote(), timeout=30) == "pong"
    shoal.shutdown()
    shoal.init(num_cpus=1)
    with pytest.raises(shoal.exceptions.ActorDiedError) as info:
        shoal.get(actor.ping.remote(), timeout=30)
    assert "It might be dead or it's from a different cluster" in info.value.args[0]


@shoal.remote
class _Sleeper:
    async def nap(self, seconds: float) -> float:
        import asyncio

        await asyncio.sleep(seconds)
        return seconds


def test_force_cancel_of_an_actor_call_is_refused(shoal_cluster):
    """Ray: force=True would kill the actor's process, so it is refused for an
    actor call with a ValueError; the call itself runs on."""
    actor = _Sleeper.remote()
    ref = actor.nap.remote(0.5)
    with pytest.raises(ValueError, match="force=True is not supported for actor tasks"):
        shoal.cancel(ref, force=True)
    assert shoal.get(ref, timeout=30) == 0.5
    with pytest.raises(ValueError, match="force=True is not supported for actor tasks"):
        shoal.cancel(ref, force=True)  # finished: still an actor call


@shoal.remote
def _wait_for_gate(started: str, gate: str) -> str:
    open_gate(started)
    while not os.path.exists(gate):
        time.sleep(0.02)
    return "passed the gate"


@shoal.remote
class _AsyncParent:
    async def run(self, started: str, gate: str) -> str:
        self.child = _wait_for_gate.remote(started, gate)
        return await self.child

    def child_ref(self) -> list:
        return [self.child]


@pytest.mark.parametrize("recursive", [True, False])
def test_cancel_of_an_async_actor_call_reaches_its_children_when_recursive(
        shoal_cluster, tmp_path, recursive):
    """Ray: cancel(recursive=True) of an actor call also cancels the tasks it
    submitted; recursive=False leaves them running."""
    started, gate = str(tmp_path / "started"), str(tmp_path / "gate")
    parent = _AsyncParent.remote()
    ref = parent.run.remote(started, gate)
    wait_for_file(started, timeout=30)
    shoal.cancel(ref, recursive=recursive)
    with pytest.raises(shoal.exceptions.TaskCancelledError):
        shoal.get(ref, timeout=30)
    [child] = shoal.get(parent.child_ref.remote(), timeout=30)
    if recursive:
        with pytest.raises(shoal.exceptions.TaskCancelledError):
            shoal.get(child, timeout=30)
    else:
        open_gate(gate)
        assert shoal.get(child, timeout=30) == "passed the gate"
    open_gate(gate)


@shoal.remote
class _Threaded:
    def pool_threads(self) -> int:
        import threading

        return sum(t.name.startswith("shoal-actor") for t in threading.enumerate())


def test_a_threaded_actor_starts_all_its_threads_up_front(shoal_cluster):
    """Ray starts a threaded actor's max_concurrency threads when it is created, so
    its thread count does not grow while calls come in."""
    actor = _Threaded.options(max_concurrency=3).remote()
    assert shoal.get(actor.pool_threads.remote(), timeout=30) == 3
    assert shoal.get([actor.pool_threads.remote() for _ in range(20)], timeout=30) == [3] * 20


@shoal.remote(num_cpus=1)
class _SlowToBuild:
    def __init__(self, started: str, gate: str) -> None:
        open_gate(started)
        while not os.path.exists(gate):
            time.sleep(0.02)


def test_killing_an_actor_whose_constructor_runs_frees_its_resources(shoal_cluster, tmp_path):
    """Ray: kill() of an actor still being created stops its constructor and gives
    back its CPU (shoal killed the worker only once __init__ returned)."""
    before = shoal.available_resources().get("CPU", 0)
    started, gate = str(tmp_path / "started"), str(tmp_path / "gate")
    actor = _SlowToBuild.remote(started, gate)
    wait_for_file(started, timeout=30)
    shoal.kill(actor)
    try:
        wait_for_condition(lambda: shoal.available_resources().get("CPU", 0) == before,
                           timeout=30, message="the killed actor's CPU never came back")
    finally:
        open_gate(gate)


@shoal.remote
class _Spawner:
    def spawn(self) -> int:
        import subprocess

        return subprocess.Popen(["sleep", "300"]).pid


def test_a_killed_workers_child_processes_end_with_it(shoal_cluster):
    """Ray's default (kill_child_processes_on_worker_exit): the processes a task or
    actor started end when its worker is killed, instead of living on orphaned."""
    import psutil

    actor = _Spawner.remote()
    child = psutil.Process(shoal.get(actor.spawn.remote(), timeout=30))
    try:
        shoal.kill(actor)
        wait_for_condition(lambda: not child.is_running() or
                           child.status() == psutil.STATUS_ZOMBIE, timeout=30,
                           message="the actor's child process outlived it")
    finally:
        if child.is_running():
            child.kill()
