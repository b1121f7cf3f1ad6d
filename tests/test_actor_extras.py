"""Actor API beyond the core: exit_actor, __ray_terminate__/__ray_ready__, concurrency
groups, and the error for subclassing an actor class."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

import shoal
from shoal.actor import ActorClassInheritanceException, exit_actor
from shoal.exceptions import ActorDiedError
from tests.utils import wait_for_condition

GET_TIMEOUT = 60


@shoal.remote(max_restarts=3)
class Exiter:
    def __init__(self, marker=None):
        self.marker = marker
        if marker:
            import atexit

            atexit.register(lambda: open(marker, "w").write("ran"))

    def pid(self):
        return os.getpid()

    def slow(self, seconds):
        time.sleep(seconds)
        return "slow done"

    def leave(self):
        exit_actor()
        return "not reached"


def test_exit_actor_fails_pending_calls_naming_the_exit_and_does_not_restart(
        shoal_cluster, tmp_path):
    marker = tmp_path / "atexit"
    actor = Exiter.remote(str(marker))
    pid = shoal.get(actor.pid.remote(), timeout=GET_TIMEOUT)
    slow = actor.slow.remote(0.3)
    leaving = actor.leave.remote()
    queued = actor.pid.remote()
    assert shoal.get(slow, timeout=GET_TIMEOUT) == "slow done"  # sent before: it ran
    for ref in (leaving, queued):
        with pytest.raises(ActorDiedError, match="exit_actor"):
            shoal.get(ref, timeout=GET_TIMEOUT)
    # no restart despite max_restarts=3
    with pytest.raises(ActorDiedError, match="exit_actor"):
        shoal.get(actor.pid.remote(), timeout=GET_TIMEOUT)
    import psutil

    wait_for_condition(lambda: not psutil.pid_exists(pid)
                       or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    assert marker.read_text() == "ran"  # atexit handlers ran


def test_exit_actor_in_an_async_actor(shoal_cluster):
    @shoal.remote
    class AsyncExiter:
        async def leave(self):
            exit_actor()

        async def ping(self):
            return "pong"

    actor = AsyncExiter.remote()
    assert shoal.get(actor.ping.remote(), timeout=GET_TIMEOUT) == "pong"
    with pytest.raises(ActorDiedError, match="exit_actor"):
        shoal.get(actor.leave.remote(), timeout=GET_TIMEOUT)


def test_exit_actor_outside_an_actor_is_an_error(shoal_cluster):
    with pytest.raises(TypeError, match="inside an actor"):
        exit_actor()


def test_ray_ready_and_ray_terminate(shoal_cluster):
    actor = Exiter.remote()
    assert shoal.get(actor.__ray_ready__.remote(), timeout=GET_TIMEOUT) is True
    before = actor.slow.remote(0.2)
    terminate = actor.__ray_terminate__.remote()
    assert shoal.get(before, timeout=GET_TIMEOUT) == "slow done"  # queued ahead: it ran
    with pytest.raises(ActorDiedError):
        shoal.get(terminate, timeout=GET_TIMEOUT)
    with pytest.raises(ActorDiedError):
        shoal.get(actor.pid.remote(), timeout=GET_TIMEOUT)


@shoal.remote(concurrency_groups={"io": 2, "compute": 1})
class Grouped:
    def __init__(self):
        self.gate = threading.Event()

    @shoal.method(concurrency_group="io")
    def io_thread(self):
        return threading.current_thread().name

    @shoal.method(concurrency_group="compute")
    def blocked(self):
        self.gate.wait(30)
        return "released"

    def default_thread(self):
        return threading.current_thread().name

    @shoal.method(concurrency_group="io")
    def release(self):
        self.gate.set()
        return True


def test_sync_actor_groups_run_on_their_own_threads(shoal_cluster):
    actor = Grouped.remote()
    blocked = actor.blocked.remote()  # holds the only compute thread
    io_name = shoal.get(actor.io_thread.remote(), timeout=GET_TIMEOUT)
    default_name = shoal.get(actor.default_thread.remote(), timeout=GET_TIMEOUT)
    assert "io" in io_name and default_name == "MainThread"
    # a call routed to the busy group at call time waits behind it
    rerouted = actor.io_thread.options(concurrency_group="compute").remote()
    ready, _ = shoal.wait([rerouted], timeout=0.5)
    assert not ready
    assert shoal.get(actor.release.remote(), timeout=GET_TIMEOUT)
    assert shoal.get(blocked, timeout=GET_TIMEOUT) == "released"
    assert "compute" in shoal.get(rerouted, timeout=GET_TIMEOUT)


def test_async_actor_group_with_a_blocked_loop_does_not_block_other_groups(shoal_cluster):
    @shoal.remote(concurrency_groups={"stuck": 1, "free": 2})
    class AsyncGrouped:
        def __init__(self):
            self.release = threading.Event()

        @shoal.method(concurrency_group="stuck")
        async def block(self):
            self.release.wait(30)  # blocks its group's loop thread
            return "unblocked"

        @shoal.method(concurrency_group="free")
        async def ping(self):
            await asyncio.sleep(0)
            return "pong"

        @shoal.method(concurrency_group="free")
        def unblock(self):
            self.release.set()

    actor = AsyncGrouped.remote()
    blocked = actor.block.remote()
    assert shoal.get(actor.ping.remote(), timeout=GET_TIMEOUT) == "pong"
    shoal.get(actor.unblock.remote(), timeout=GET_TIMEOUT)
    assert shoal.get(blocked, timeout=GET_TIMEOUT) == "unblocked"


def test_undeclared_concurrency_group_is_a_clear_error(shoal_cluster):
    @shoal.remote(concurrency_groups={"io": 1})
    class Bad:
        @shoal.method(concurrency_group="nope")
        def f(self):
            return 1

    with pytest.raises(ValueError, match="'nope'"):
        Bad.remote()
    actor = Grouped.remote()
    with pytest.raises(ValueError, match="no concurrency group 'other'"):
        actor.io_thread.options(concurrency_group="other")


def test_subclassing_an_actor_class_raises():
    @shoal.remote
    class Base:
        pass

    with pytest.raises(ActorClassInheritanceException, match="Inheriting from actor classes"):
        class Derived(Base):  # noqa: F841
            pass


# ---------------------------------------------------------------------- cancellation


def test_cancelled_actor_call_keeps_running_and_sees_is_canceled(shoal_cluster, tmp_path):
    @shoal.remote(max_concurrency=2)
    class Worker:
        def __init__(self):
            self.saw = []

        def work(self, name, started):
            open(started, "w").close()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if shoal.get_runtime_context().is_canceled():
                    self.saw.append(name)
                    return "stopped early"
                time.sleep(0.01)
            return "finished"

        def seen(self):
            return self.saw

    actor = Worker.remote()
    started = tmp_path / "started"
    ref = actor.work.remote("a", str(started))
    wait_for_condition(started.exists)
    shoal.cancel(ref)
    with pytest.raises(shoal.exceptions.TaskCancelledError):
        shoal.get(ref, timeout=GET_TIMEOUT)
    assert shoal.get(actor.seen.remote(), timeout=GET_TIMEOUT) == ["a"]


def test_cancelled_task_gets_a_keyboard_interrupt_it_may_handle(shoal_cluster, tmp_path):
    @shoal.remote
    def handles_interrupt(started):
        open(started, "w").close()
        try:
            time.sleep(30)
        except KeyboardInterrupt:
            return ("interrupted", shoal.get_runtime_context().is_canceled())
        return "slept"

    started = tmp_path / "started"
    ref = handles_interrupt.remote(str(started))
    wait_for_condition(started.exists)
    shoal.cancel(ref)
    assert shoal.get(ref, timeout=GET_TIMEOUT) == ("interrupted", True)


def test_is_canceled_is_refused_in_a_driver_and_in_an_async_actor(shoal_cluster):
    with pytest.raises(RuntimeError, match="driver"):
        shoal.get_runtime_context().is_canceled()

    @shoal.remote
    class AsyncActor:
        async def check(self):
            return shoal.get_runtime_context().is_canceled()

    with pytest.raises(RuntimeError, match="not supported in an async actor"):
        shoal.get(AsyncActor.remote().check.remote(), timeout=GET_TIMEOUT)


# ---------------------------------------------------------------------- handles and classes


class Base:
    LIMIT = 3


@shoal.remote
class Counter(Base):
    START = 10

    def __init__(self, start=0):
        self.value = start

    @classmethod
    def make(cls, start):
        return cls(start)

    @staticmethod
    def double(x):
        return 2 * x

    def limit(self):
        return Counter.LIMIT + Counter.START + Counter.double(1)  # class attributes, inside

    def me(self):
        return shoal.get_runtime_context().current_actor

    def get(self):
        return self.value


def test_actor_class_exposes_its_class_attributes(shoal_cluster):
    assert Counter.START == 10 and Counter.LIMIT == 3 and Counter.double(4) == 8
    assert Counter.make(5).get() == 5  # a classmethod builds a plain instance
    counter = Counter.remote()
    assert shoal.get(counter.limit.remote(), timeout=GET_TIMEOUT) == 15
    assert {n for n in dir(Counter) if not n.startswith("_")} >= {"remote", "options", "bind",
                                                                   "limit", "make"}
    assert [n for n in dir(counter) if not n.startswith("_")] == ["double", "get", "limit",
                                                                  "make", "me"]


def test_ray_call_and_current_actor(shoal_cluster):
    counter = Counter.remote(7)
    assert shoal.get(counter.__ray_call__.remote(lambda self, add: self.value + add, 1),
                     timeout=GET_TIMEOUT) == 8
    same = shoal.get(counter.me.remote(), timeout=GET_TIMEOUT)
    assert same == counter and shoal.get(same.get.remote(), timeout=GET_TIMEOUT) == 7
    with pytest.raises(RuntimeError, match="only available inside an actor"):
        _ = shoal.get_runtime_context().current_actor


def test_remote_with_empty_parentheses_is_an_error():
    with pytest.raises(TypeError, match="needs options"):
        @shoal.remote()
        class Nothing:  # noqa: F841
            pass


def test_ray_spelling_of_private_remote_kill_and_actor_ids(shoal_cluster):
    @shoal.remote
    def add(a, b=0):
        return a + b

    assert shoal.get(add._remote(args=[1], kwargs={"b": 2}), timeout=GET_TIMEOUT) == 3
    named = Counter._remote(args=[4], name="spelled", lifetime="detached")
    try:
        assert shoal.get(named.get.remote(), timeout=GET_TIMEOUT) == 4
        assert named._actor_id.hex() == named.actor_id
        assert "spelled" in shoal.util.list_named_actors()
        assert {"name": "spelled", "namespace": "default"} in shoal.util.list_named_actors(
            all_namespaces=True)
    finally:
        shoal.kill(named)
    wait_for_condition(lambda: "spelled" not in shoal.util.list_named_actors())
    with pytest.raises(ValueError):
        shoal.kill("not an actor handle")


def test_cluster_accepts_rays_dashboard_and_config_node_arguments():
    from shoal.cluster_utils import Cluster

    cluster = Cluster()
    try:
        cluster.add_node(num_cpus=1, include_dashboard=False, _system_config={"x": 1})
        with pytest.raises(ValueError, match="unknown node argument"):
            cluster.add_node(num_cpus=1, not_an_argument=1)
    finally:
        cluster.shutdown()


def test_a_method_is_found_on_the_class_even_if_an_attribute_shadows_it(shoal_cluster):
    @shoal.remote
    class Shadowed:
        def __init__(self):
            self.done = False  # same name as the method below

        def done(self):  # noqa: F811
            return "method"

        @staticmethod
        def helper():
            return "static"

    actor = Shadowed.remote()
    assert shoal.get(actor.done.remote(), timeout=GET_TIMEOUT) == "method"
    assert shoal.get(actor.helper.remote(), timeout=GET_TIMEOUT) == "static"


def test_cancel_from_a_process_that_borrows_the_ref(shoal_cluster):
    @shoal.remote
    class Sleeper:
        async def sleep(self):
            await asyncio.sleep(60)

    @shoal.remote
    def cancel_it(refs):
        shoal.cancel(refs[0])

    actor = Sleeper.remote()
    ref = actor.sleep.remote()
    shoal.get(cancel_it.remote([ref]), timeout=GET_TIMEOUT)
    with pytest.raises(shoal.exceptions.TaskCancelledError):
        shoal.get(ref, timeout=GET_TIMEOUT)



@pytest.mark.parametrize("kind", ["threaded", "async"])
def test_concurrent_actors_run_calls_whose_arguments_are_ready_first(shoal_cluster, kind,
                                                                     tmp_path):
    @shoal.remote
    def later(gate):
        wait_for_condition(lambda: os.path.exists(gate), timeout=30)
        return "late"

    if kind == "threaded":
        @shoal.remote(max_concurrency=2)
        class Echo:
            def echo(self, value):
                return value
    else:
        @shoal.remote
        class Echo:
            async def echo(self, value):
                return value

    actor = Echo.remote()
    gate = tmp_path / "gate"
    first = actor.echo.remote(later.remote(str(gate)))  # its argument is not ready
    assert shoal.get(actor.echo.remote(2), timeout=GET_TIMEOUT) == 2  # not held back
    gate.touch()
    assert shoal.get(first, timeout=GET_TIMEOUT) == "late"


def test_in_order_execution_cannot_be_asked_of_a_concurrent_actor(shoal_cluster):
    @shoal.remote
    class AsyncActor:
        async def f(self):
            pass

    with pytest.raises(ValueError, match="allow_out_of_order_execution=False"):
        AsyncActor.options(allow_out_of_order_execution=False).remote()


def test_an_actor_keeps_its_cpus_while_it_blocks_in_get(shoal_cluster):
    @shoal.remote
    def needs_a_cpu():
        return 1

    @shoal.remote(num_cpus=2)  # every CPU of this cluster
    class Holder:
        def wait_for_task(self):
            return shoal.get(needs_a_cpu.remote(), timeout=30)

    holder = Holder.remote()
    shoal.get(holder.__ray_ready__.remote(), timeout=GET_TIMEOUT)
    ref = holder.wait_for_task.remote()
    ready, _ = shoal.wait([ref], timeout=1.0)
    assert not ready  # the task cannot run: the blocked actor did not lend its CPUs
    shoal.kill(holder)


def test_oversized_functions_and_actor_classes_are_refused(shoal_cluster):
    big = bytearray(101_000_000)

    @shoal.remote
    def uses_big():
        return len(big)

    @shoal.remote
    class UsesBig:
        def size(self):
            return len(big)

    with pytest.raises(ValueError, match="The remote function .*uses_big is too large"):
        uses_big.remote()
    with pytest.raises(ValueError, match="The actor UsesBig is too large"):
        UsesBig.remote()
    assert shoal.ObjectID is shoal.ObjectRef



def test_async_actor_init_sees_the_loop_its_methods_run_on(shoal_cluster):
    @shoal.remote
    class Loopy:
        def __init__(self):
            self.loop = asyncio.get_event_loop()
            self.event = asyncio.Event()

        async def same_loop(self):
            self.event.set()
            await self.event.wait()
            return asyncio.get_running_loop() is self.loop

        def sync_method_loop(self):
            return asyncio.get_event_loop() is self.loop

    actor = Loopy.remote()
    assert shoal.get(actor.same_loop.remote(), timeout=GET_TIMEOUT)
    assert shoal.get(actor.sync_method_loop.remote(), timeout=GET_TIMEOUT)
    assert shoal.ObjectRef[int] is shoal.ObjectRef


def test_runtime_context_of_actors_and_tasks(shoal_cluster):
    @shoal.remote(num_cpus=1)
    class WithCpu:
        def resources(self):
            import os

            return shoal.get_runtime_context().get_assigned_resources(), \
                os.environ.get("OMP_NUM_THREADS")

    @shoal.remote(num_cpus=2)
    def task_view():
        import os

        return os.environ.get("OMP_NUM_THREADS"), shoal.get_runtime_context().get()

    actor = WithCpu.remote()
    assert shoal.get(actor.resources.remote(), timeout=GET_TIMEOUT) == ({"CPU": 1.0}, "1")
    shoal.kill(actor)
    omp, ctx = shoal.get(task_view.remote(), timeout=GET_TIMEOUT)
    assert omp == "2" and "task_id" in ctx and "actor_id" not in ctx
    assert "task_id" not in shoal.get_runtime_context().get()  # the driver runs no task
