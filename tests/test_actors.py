"""Actors: state, ordering, concurrency, naming, lifetime, failures, ActorPool."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid

import pytest

import shoal
from shoal.util import ActorPool
from tests.utils import open_gate, wait_for_condition

pytestmark = pytest.mark.timeout(60)

# The module's shared cluster: 2 CPUs and one unit of the custom resource "slot".
CLUSTER_INIT_KWARGS = {"num_cpus": 2, "resources": {"slot": 1}}


@shoal.remote
class Counter:
    def __init__(self, start=0):
        self.value = start

    def incr(self, by=1):
        self.value += by
        return self.value

    def get(self):
        return self.value

    def pid(self):
        return os.getpid()

    def fail(self, message):
        raise ValueError(message)

    def die(self):
        os._exit(1)


@shoal.remote
class Recorder:
    def __init__(self):
        self.calls = []

    def record(self, i):
        self.calls.append(i)
        return len(self.calls)

    def recorded(self):
        return self.calls


@shoal.remote
class BarrierActor:
    def __init__(self, parties):
        self.barrier = threading.Barrier(parties)

    def meet(self, timeout):
        # Raises BrokenBarrierError unless `parties` calls run at the same time.
        return self.barrier.wait(timeout=timeout)


@shoal.remote
class AsyncActor:
    def __init__(self):
        self._event = None

    def _get_event(self):
        if self._event is None:
            self._event = asyncio.Event()
        return self._event

    async def wait_for_signal(self, timeout):
        await asyncio.wait_for(self._get_event().wait(), timeout=timeout)
        return "released"

    async def send_signal(self):
        self._get_event().set()
        return "sent"


@shoal.remote
class FailingInit:
    def __init__(self, message):
        raise RuntimeError(message)

    def ping(self):
        return "pong"


@shoal.remote
class Caller:
    def call_incr(self, counter, by):
        return shoal.get(counter.incr.remote(by))


@shoal.remote
class Doubler:
    def double(self, value):
        return shoal.get_runtime_context().get_actor_id(), value * 2


@shoal.remote
class TwoReturns:
    @shoal.method(num_returns=2)
    def split(self, a, b):
        return a, b


@shoal.remote
def incr_via_handle(counter, by):
    return shoal.get(counter.incr.remote(by))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# ---------------------------------------------------------------------------
# Tests with their own cluster (they kill processes); must precede shared-cluster tests.
# ---------------------------------------------------------------------------


def test_actor_process_exit_fails_that_call_and_later_calls(shutdown_only):
    shoal.init(num_cpus=2)
    counter = Counter.options(max_restarts=0).remote()
    assert shoal.get(counter.incr.remote()) == 1
    with pytest.raises(shoal.exceptions.ActorDiedError):
        shoal.get(counter.die.remote(), timeout=30)
    for _ in range(2):
        with pytest.raises(shoal.exceptions.ActorDiedError):
            shoal.get(counter.incr.remote(), timeout=30)
    # the cluster still works
    assert shoal.get(Counter.remote(5).get.remote(), timeout=30) == 5


# ---------------------------------------------------------------------------
# Tests sharing the module cluster.
# ---------------------------------------------------------------------------


def test_actor_methods_share_state(shoal_cluster):
    counter = Counter.remote(10)
    assert shoal.get(counter.incr.remote()) == 11
    assert shoal.get(counter.incr.remote(5)) == 16
    assert shoal.get(counter.get.remote()) == 16


def test_actor_method_returns_object_ref(shoal_cluster):
    counter = Counter.remote()
    ref = counter.incr.remote()
    assert isinstance(ref, shoal.ObjectRef)
    assert shoal.get(ref) == 1


def test_actor_handle_type(shoal_cluster):
    assert isinstance(Counter.remote(), shoal.actor.ActorHandle)


def test_actor_calls_from_one_caller_execute_in_submission_order(shoal_cluster):
    recorder = Recorder.remote()
    refs = [recorder.record.remote(i) for i in range(200)]
    assert shoal.get(refs) == list(range(1, 201))
    assert shoal.get(recorder.recorded.remote()) == list(range(200))


def test_instantiating_actor_class_directly_raises_type_error(shoal_cluster):
    with pytest.raises(TypeError):
        Counter()


def test_calling_actor_method_directly_raises_type_error(shoal_cluster):
    counter = Counter.remote()
    with pytest.raises(TypeError):
        counter.incr()


@shoal.remote
def _released_when(gate_path, value):
    from tests.utils import wait_for_file

    wait_for_file(gate_path)
    return value


def test_calls_keep_submission_order_when_one_waits_for_its_argument(shoal_cluster, tmp_path):
    """A call whose argument is not ready yet goes through the owner's loop; plain calls
    after it are sent straight from the caller's thread and must not overtake it."""
    recorder = Recorder.remote()
    assert shoal.get(recorder.record.remote("warm-up")) == 1  # connected: direct path on
    gate = tmp_path / "gate"
    pending_arg = _released_when.remote(str(gate), "waited")
    refs = [recorder.record.remote(pending_arg)]
    refs += [recorder.record.remote(i) for i in range(20)]
    open_gate(gate)
    assert shoal.get(refs, timeout=30) == list(range(2, 23))
    assert shoal.get(recorder.recorded.remote()) == ["warm-up", "waited", *range(20)]


@shoal.remote
def _raises_later(gate_path):
    from tests.utils import wait_for_file

    wait_for_file(gate_path)
    raise ValueError("argument failed")


def test_call_whose_argument_fails_does_not_hold_up_later_calls(shoal_cluster, tmp_path):
    recorder = Recorder.remote()
    shoal.get(recorder.record.remote("warm-up"))
    gate = tmp_path / "gate"
    doomed = recorder.record.remote(_raises_later.remote(str(gate)))
    later = recorder.record.remote("after")
    ready, _ = shoal.wait([later], timeout=0.3)
    assert ready == []  # waits behind the call that is still resolving
    open_gate(gate)
    with pytest.raises(ValueError, match="argument failed"):
        shoal.get(doomed, timeout=30)
    assert shoal.get(later, timeout=30) == 2
    assert shoal.get(recorder.recorded.remote()) == ["warm-up", "after"]


def test_many_sync_calls_from_threads_all_answered(shoal_cluster):
    recorder = Recorder.remote()
    shoal.get(recorder.record.remote(-1))

    def caller(k):
        return [shoal.get(recorder.record.remote((k, i)), timeout=30) for i in range(100)]

    threads_out = {}
    threads = [threading.Thread(target=lambda k=k: threads_out.setdefault(k, caller(k)))
               for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(threads_out) == [0, 1, 2, 3]
    history = shoal.get(recorder.recorded.remote())
    assert len(history) == 401
    for k in range(4):  # each thread's own calls ran in its order
        assert [i for kk, i in history[1:] if kk == k] == list(range(100))


def test_threaded_actor_with_max_concurrency_runs_calls_concurrently(shoal_cluster):
    actor = BarrierActor.options(max_concurrency=4).remote(4)
    refs = [actor.meet.remote(10) for _ in range(4)]
    assert sorted(shoal.get(refs, timeout=30)) == [0, 1, 2, 3]


def test_async_actor_runs_calls_concurrently(shoal_cluster):
    actor = AsyncActor.remote()
    waiting = actor.wait_for_signal.remote(10)
    sending = actor.send_signal.remote()
    assert shoal.get([waiting, sending], timeout=30) == ["released", "sent"]


def test_named_actor_is_found_with_get_actor(shoal_cluster):
    name = unique("named")
    counter = Counter.options(name=name).remote()
    try:
        assert shoal.get(counter.incr.remote()) == 1
        same = shoal.get_actor(name)
        assert shoal.get(same.incr.remote()) == 2
    finally:
        shoal.kill(counter)


def test_named_actor_in_namespace(shoal_cluster):
    name = unique("ns-actor")
    namespace = unique("ns")
    counter = Counter.options(name=name, namespace=namespace).remote()
    try:
        shoal.get(counter.incr.remote())
        found = shoal.get_actor(name, namespace=namespace)
        assert shoal.get(found.get.remote()) == 1
        with pytest.raises(ValueError):
            shoal.get_actor(name)  # not visible from the job's default namespace
    finally:
        shoal.kill(counter)


def test_get_if_exists_returns_the_existing_actor(shoal_cluster):
    name = unique("get-if-exists")
    first = Counter.options(name=name, get_if_exists=True).remote()
    try:
        shoal.get(first.incr.remote(3))
        second = Counter.options(name=name, get_if_exists=True).remote()
        assert shoal.get(second.get.remote()) == 3
        assert shoal.get(first.pid.remote()) == shoal.get(second.pid.remote())
    finally:
        shoal.kill(first)


def test_get_actor_with_missing_name_raises_value_error(shoal_cluster):
    with pytest.raises(ValueError):
        shoal.get_actor(unique("does-not-exist"))


def test_creating_actor_with_taken_name_raises_value_error(shoal_cluster):
    name = unique("taken")
    first = Counter.options(name=name).remote()
    try:
        shoal.get(first.incr.remote())
        with pytest.raises(ValueError):
            Counter.options(name=name).remote()
        assert shoal.get(first.get.remote()) == 1
    finally:
        shoal.kill(first)


def test_detached_lifetime_is_accepted(shoal_cluster):
    name = unique("detached")
    actor = Counter.options(name=name, lifetime="detached").remote()
    try:
        assert shoal.get(actor.incr.remote()) == 1
        assert shoal.get(shoal.get_actor(name).get.remote()) == 1
    finally:
        shoal.kill(actor)


def test_killed_actor_raises_actor_died_error(shoal_cluster):
    counter = Counter.remote()
    assert shoal.get(counter.incr.remote()) == 1
    shoal.kill(counter)
    errors = []

    def call_raises_actor_died():
        # kill() is asynchronous in Ray: a call racing it may still succeed
        try:
            shoal.get(counter.incr.remote(), timeout=30)
        except shoal.exceptions.ActorDiedError as exc:
            errors.append(exc)
            return True
        return False

    wait_for_condition(call_raises_actor_died, timeout=20)
    assert isinstance(errors[0], shoal.exceptions.RayActorError)
    with pytest.raises(shoal.exceptions.ActorDiedError):  # and it stays dead
        shoal.get(counter.get.remote(), timeout=30)


def test_killed_named_actor_frees_its_name(shoal_cluster):
    name = unique("freed")
    counter = Counter.options(name=name).remote()
    shoal.get(counter.incr.remote())
    shoal.kill(counter)
    wait_for_condition(lambda: _name_is_free(name), timeout=10)


def _name_is_free(name):
    try:
        shoal.get_actor(name)
    except ValueError:
        return True
    return False


def test_exception_in_init_surfaces_on_every_method_call(shoal_cluster):
    actor = FailingInit.remote("init-exploded-42")
    for _ in range(2):
        with pytest.raises(
            (shoal.exceptions.ActorDiedError, shoal.exceptions.TaskError)
        ) as excinfo:
            shoal.get(actor.ping.remote(), timeout=30)
        assert "init-exploded-42" in str(excinfo.value)


def test_method_exception_does_not_kill_actor(shoal_cluster):
    counter = Counter.remote()
    shoal.get(counter.incr.remote())
    with pytest.raises(ValueError) as excinfo:
        shoal.get(counter.fail.remote("method-failed"))
    assert isinstance(excinfo.value, shoal.exceptions.TaskError)
    assert "method-failed" in str(excinfo.value)
    assert shoal.get(counter.incr.remote()) == 2


def test_actor_handle_passed_to_task(shoal_cluster):
    counter = Counter.remote()
    assert shoal.get(incr_via_handle.remote(counter, 7)) == 7
    assert shoal.get(counter.get.remote()) == 7


def test_actor_handle_passed_to_other_actor(shoal_cluster):
    counter = Counter.remote()
    caller = Caller.remote()
    assert shoal.get(caller.call_incr.remote(counter, 4)) == 4
    assert shoal.get(counter.get.remote()) == 4


def test_calling_nonexistent_method_raises_attribute_error(shoal_cluster):
    counter = Counter.remote()
    with pytest.raises(AttributeError):
        counter.no_such_method.remote()


def test_method_decorator_sets_num_returns(shoal_cluster):
    actor = TwoReturns.remote()
    first, second = actor.split.remote("x", "y")
    assert shoal.get([first, second]) == ["x", "y"]


def test_actor_with_num_cpus_holds_cpu_while_alive(shoal_cluster):
    def available_cpu():
        return shoal.available_resources().get("CPU", 0)

    wait_for_condition(lambda: available_cpu() == 2, message="cluster idle (CPU=2)")
    actor = Counter.options(num_cpus=1).remote()
    assert shoal.get(actor.incr.remote()) == 1
    wait_for_condition(lambda: available_cpu() == 1, message="actor holds one CPU")
    shoal.kill(actor)
    wait_for_condition(lambda: available_cpu() == 2, message="CPU released after kill")


def test_actor_with_custom_resource_holds_it_while_alive(shoal_cluster):
    def available_slot():
        return shoal.available_resources().get("slot", 0)

    wait_for_condition(lambda: available_slot() == 1)
    actor = Counter.options(resources={"slot": 1}).remote()
    assert shoal.get(actor.incr.remote()) == 1
    wait_for_condition(lambda: available_slot() == 0, message="actor holds the slot")
    shoal.kill(actor)
    wait_for_condition(lambda: available_slot() == 1, message="slot released after kill")


@shoal.remote
def _noop_task():
    return b"ok"


@shoal.remote(num_cpus=0)
class TaskSubmitter:
    def submit_many(self, n):
        return len(shoal.get([_noop_task.remote() for _ in range(n)]))


def test_actor_killed_with_lease_requests_in_flight_leaks_no_cpu(shoal_cluster):
    """Regression: leases granted to an owner that died while the worker started were
    never returned, so the cluster's CPUs leaked and every later task hung."""
    submitters = [TaskSubmitter.remote() for _ in range(4)]
    assert shoal.get([s.submit_many.remote(300) for s in submitters]) == [300] * 4
    for submitter in submitters:
        shoal.kill(submitter)  # right away: lease requests are still being granted
    wait_for_condition(
        lambda: shoal.available_resources().get("CPU", 0) == 2,
        message="all CPUs back after the submitting actors died",
    )
    assert shoal.get([_noop_task.remote() for _ in range(4)], timeout=30) == [b"ok"] * 4


def test_actor_pool_map_returns_results_in_order(shoal_cluster):
    pool = ActorPool([Doubler.remote(), Doubler.remote()])
    results = list(pool.map(lambda actor, v: actor.double.remote(v), range(8)))
    assert [value for _, value in results] == [v * 2 for v in range(8)]
    assert len({actor_id for actor_id, _ in results}) == 2, "both actors should be used"


def test_actor_pool_map_unordered_returns_all_results(shoal_cluster):
    pool = ActorPool([Doubler.remote(), Doubler.remote()])
    results = list(pool.map_unordered(lambda actor, v: actor.double.remote(v), range(8)))
    assert sorted(value for _, value in results) == [v * 2 for v in range(8)]


def test_actor_pool_submit_and_get_next(shoal_cluster):
    pool = ActorPool([Doubler.remote(), Doubler.remote()])
    assert not pool.has_next()
    for value in (5, 6, 7):
        pool.submit(lambda actor, v: actor.double.remote(v), value)
    assert pool.has_next()
    results = [pool.get_next()[1] for _ in range(3)]
    assert results == [10, 12, 14]
    assert not pool.has_next()
