"""Runtime behaviour Ray documents and its own tests rely on (docs/design.md
section 22, sixth increment): each test names the rule it pins."""

from __future__ import annotations

import os

import numpy as np
import pytest

import shoal
from shoal.cluster_utils import Cluster

pytestmark = pytest.mark.timeout(120)
MiB = 1 << 20


@shoal.remote
def _put_in_task():
    return shoal.put(np.ones(MiB, dtype=np.uint8)), os.getpid()


@shoal.remote
class _Pid:
    def pid(self) -> int:
        return os.getpid()


def test_an_actor_never_gets_a_worker_that_ran_tasks(shutdown_only):
    """Ray: a worker that ran tasks is not reused for an actor, so what a task left
    behind (here an object it owns) does not die with the actor."""
    shoal.init(num_cpus=1)
    inner, task_pid = shoal.get(_put_in_task.remote(), timeout=60)
    actor = _Pid.remote()
    assert shoal.get(actor.pid.remote(), timeout=60) != task_pid
    shoal.kill(actor)
    assert int(shoal.get(inner, timeout=60).sum()) == MiB  # its owner still lives


@shoal.remote(max_retries=0)
def _crash() -> None:
    os._exit(1)


@shoal.remote
def _consume(x) -> object:
    return x


def test_an_argument_holding_a_system_error_fails_the_consumer_with_its_own_task_error(
        shutdown_only):
    """Ray raises the argument's error while the consumer fetches its arguments, so
    the consumer's get is a task error (of the consumer) caused by it; a producer's
    own task error is passed on unchanged."""
    shoal.init(num_cpus=1)
    with pytest.raises(shoal.exceptions.TaskError) as info:
        shoal.get(_consume.remote(_crash.remote()), timeout=60)
    assert isinstance(info.value, shoal.exceptions.WorkerCrashedError)
    assert "_consume" in str(info.value)


@shoal.remote(num_cpus=1)
class _HoldsACpu:
    def ping(self) -> str:
        return "pong"


@shoal.remote(num_cpus=0.5)
def _where() -> str:
    return shoal.get_runtime_context().get_node_id()


def test_a_task_queued_behind_an_actor_runs_on_a_node_that_joins():
    """A task queued at a node whose CPU an actor holds runs on a node that joins
    later (Ray's scheduler places queued work on any node with room), instead of
    waiting for as long as the actor lives."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.connect()
        actor = _HoldsACpu.remote()  # the head's only CPU, for as long as it lives
        assert shoal.get(actor.ping.remote(), timeout=60) == "pong"
        waiting = _where.remote()  # no room anywhere: queued at the head
        assert shoal.wait([waiting], timeout=1.0)[0] == []
        other = cluster.add_node(num_cpus=1)
        assert shoal.get(waiting, timeout=30) == other.node_id
    finally:
        shoal.shutdown()
        cluster.shutdown()


@shoal.remote(num_returns="streaming")
def _three_items():
    yield from (1, 2, 3)


def test_a_generator_past_the_returns_cap_fails_after_the_items_within_it(
        shutdown_only, monkeypatch):
    """Ray's RAY_max_num_generator_returns (SHOAL_MAX_NUM_GENERATOR_RETURNS): the
    items within the cap arrive, then the task's error."""
    monkeypatch.setenv("RAY_max_num_generator_returns", "2")
    shoal.init(num_cpus=1)
    refs = list(_three_items.remote())
    assert [shoal.get(r, timeout=60) for r in refs[:2]] == [1, 2]
    assert len(refs) == 3
    with pytest.raises(shoal.exceptions.TaskError, match="more than 2 values"):
        shoal.get(refs[2], timeout=60)


@shoal.remote
def _ids_of_a_task() -> list[str]:
    inner = _Pid.remote()
    return [shoal.get_runtime_context().get_job_id(), shoal.put(1).job_id().hex(),
            _where.remote().job_id().hex(), inner._actor_id.job_id.hex(),
            inner.pid.remote().job_id().hex()]


def test_object_and_actor_ids_name_their_job(shutdown_only):
    """Ray's ids carry their job: ``ObjectRef.job_id()`` and an actor id's
    ``job_id`` are the job of the process that made them, in the driver and in a
    worker the job's tasks run on."""
    shoal.init(num_cpus=2)
    job = shoal.get_runtime_context().get_job_id()
    assert shoal.put(1).job_id().hex() == job
    assert _Pid.remote()._actor_id.job_id.hex() == job
    assert shoal.get(_ids_of_a_task.remote(), timeout=60) == [job] * 5


def _pairs_on_call(invoke):
    """An invocation decorator: the caller's ``m.remote(x, **extra)`` sends
    ``(x, x)`` and hands ``extra`` back beside the ref."""
    def call(args, kwargs):
        return invoke([args[0], args[0]], {}), kwargs
    return call


def _summed(method):
    def run(self, a, b):
        return method(self, a + b)
    run.__ray_invocation_decorator__ = _pairs_on_call
    return run


@shoal.remote
class _Decorated:
    @_summed
    def plus_one(self, x: int) -> int:
        return x + 1


def test_an_actor_method_invocation_decorator_wraps_the_callers_side(shutdown_only):
    """Ray's ``__ray_invocation_decorator__`` on a method wraps ``.remote()`` in
    the caller: it may change the arguments sent and what the call returns."""
    shoal.init(num_cpus=1)
    ref, extra = _Decorated.remote().plus_one.remote(4, note="kept")
    assert extra == {"note": "kept"}
    assert shoal.get(ref, timeout=60) == 9


@shoal.remote(num_gpus=1)
def _gpu_pid() -> int:
    return os.getpid()


@shoal.remote
def _cpu_pid() -> int:
    return os.getpid()


def test_gpu_and_cpu_tasks_never_share_a_worker(shutdown_only):
    """Ray isolates workers by resources: a worker that ran a CPU-only task is not
    given GPU work, nor the reverse (what one leaves behind stays with its kind)."""
    shoal.init(num_cpus=1, num_gpus=1)
    cpu = shoal.get(_cpu_pid.remote(), timeout=60)
    gpu = shoal.get(_gpu_pid.remote(), timeout=60)
    assert gpu != cpu
    assert shoal.get(_cpu_pid.remote(), timeout=60) != gpu
    assert shoal.get(_gpu_pid.remote(), timeout=60) != cpu


@shoal.remote(num_cpus=0)
def _imported(name: str) -> bool:
    import sys

    return name in sys.modules


def test_a_nodes_workers_import_its_preload_modules_first(shutdown_only):
    """Ray's ``_system_config["preload_python_modules"]``: the node's workers import
    them when they start (a module that does not exist is skipped)."""
    shoal.init(num_cpus=1, _system_config={
        "preload_python_modules": ["webbrowser", "no_such_module_for_preloading"]})
    assert shoal.get(_imported.remote("webbrowser"), timeout=60)
    assert not shoal.get(_imported.remote("no_such_module_for_preloading"), timeout=60)


def test_without_preload_modules_a_worker_does_not_import_them(shutdown_only):
    shoal.init(num_cpus=1)
    assert not shoal.get(_imported.remote("webbrowser"), timeout=60)


@shoal.remote(num_gpus=0)
def _visible_devices() -> str | None:
    return os.environ.get("CUDA_VISIBLE_DEVICES")


def test_override_on_zero_hides_the_gpus_from_a_task_given_none(shutdown_only,
                                                                 monkeypatch):
    """Ray's RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO=1: a task given no GPUs gets
    CUDA_VISIBLE_DEVICES="" (without it the variable is left as the worker had it)."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "1")
    shoal.init(num_cpus=1)
    assert shoal.get(_visible_devices.remote(), timeout=60) == ""


@shoal.remote
def _pid_when_both_run(started_dir: str, me: str) -> int:
    import time

    open(os.path.join(started_dir, me), "w").close()
    deadline = time.monotonic() + 60
    while len(os.listdir(started_dir)) < 2:  # both run at once: two workers
        if time.monotonic() > deadline:
            raise TimeoutError("the other task never started")
        time.sleep(0.01)
    return os.getpid()


def test_the_worker_idle_the_shortest_time_is_reused_first(shutdown_only, tmp_path):
    """Ray hands out the most recently idle worker: a sync loop of tasks of
    different shapes keeps running in one warm worker."""
    shoal.init(num_cpus=2)
    both = shoal.get([_pid_when_both_run.remote(str(tmp_path), name) for name in "ab"],
                     timeout=60)
    assert both[0] != both[1]  # two workers of this job now
    # a task needing both CPUs runs once both leases are back: from here on
    # both workers are idle (the two above finish up to a poll apart, so the
    # one that finished last may be the one idle the shortest time)
    shoal.get(_cpu_pid.options(num_cpus=2).remote(), timeout=60)
    first = shoal.get(_cpu_pid.remote(), timeout=60)
    assert shoal.get(_cpu_pid.options(num_cpus=2).remote(), timeout=60) == first
