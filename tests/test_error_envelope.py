"""A task's exception reaches ``get`` whole, whatever its class (issue 14, part 2).

Real workers raise; the driver reads.  Every error is a TaskError naming the task
with the remote traceback, and an instance of the user's class when that class
can be rebuilt; otherwise an UnserializableException naming the class."""

from __future__ import annotations

import errno
import os
import sys

import numpy as np
import pytest

import shoal
from shoal.exceptions import (
    ActorDiedError,
    ObjectStoreFullError,
    RaySystemError,
    TaskError,
    UnserializableException,
)
from tests.error_shapes import (
    BrokenReduce,
    Halt,
    KeywordOnlyInit,
    MyKeyError,
    MyMemoryError,
    MyOSError,
    PositionalInit,
    WithLock,
)

pytestmark = pytest.mark.timeout(90)
MiB = 1 << 20


def _poisoned(code):
    raise PositionalInit(code, "while unpickling an argument")


class Poison:
    """Pickles fine on the driver; unpickling it on the worker raises."""

    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return _poisoned, (self.code,)


def make(kind: str) -> BaseException:
    return {
        "positional": lambda: PositionalInit(7, "boom-positional"),
        "keyword_only": lambda: KeywordOnlyInit(code=8, msg="boom-keyword"),
        "memory": lambda: MyMemoryError(1234),
        "os": lambda: MyOSError("/forbidden"),
        "key": lambda: MyKeyError("missing-key", where="cache"),
        "halt": lambda: Halt("halted", hard=True),
        "lock": lambda: WithLock("boom-locked"),
        "broken_reduce": lambda: BrokenReduce("boom-broken"),
    }[kind]()


@shoal.remote(max_retries=0)
def fail(kind):
    raise make(kind)


@shoal.remote
def consume(value):
    return value


@shoal.remote(max_retries=0)
def fail_chained():
    try:
        raise MyKeyError("inner-key", where="db")
    except KeyError as inner:
        raise PositionalInit(3, "outer") from inner


@shoal.remote(max_retries=0)
def fail_group():
    raise ExceptionGroup("several", [PositionalInit(1, "first"), MyOSError("/second")])


@shoal.remote(max_retries=0)
def fail_with_class_only_here(folder):
    """Raise an exception whose class's module this worker can import and the
    driver cannot."""
    with open(os.path.join(folder, "only_on_worker_mod.py"), "w") as f:
        f.write("class WorkerOnly(Exception):\n"
                "    def __init__(self, a, b):\n"
                "        super().__init__(f'{a}+{b}')\n")
    sys.path.insert(0, folder)
    import only_on_worker_mod

    raise only_on_worker_mod.WorkerOnly("left", "right")


@shoal.remote(max_retries=0)
def fail_holding(refs):
    exc = PositionalInit(5, "holds a ref")
    exc.ref = refs[0]
    raise exc


@shoal.remote(max_retries=0)
def takes(arg):
    return arg


@shoal.remote
def big_array(n):
    return np.zeros(n, dtype=np.uint8)


@shoal.remote
def fail_then_succeed(marker):
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write("attempt")
        raise PositionalInit(9, "first attempt")
    return "second attempt"


@shoal.remote
class Raiser:
    def fail(self, kind):
        raise make(kind)

    async def fail_async(self, kind):
        raise make(kind)


@shoal.remote
class FailsInInit:
    def __init__(self, kind):
        raise make(kind)

    def ping(self):
        return "pong"


# --------------------------------------------------------------------- its own small store first


def test_return_value_larger_than_the_store_is_a_readable_object_store_full_error(
        shutdown_only, tiny_disk):
    # larger than the store, so it would go to a disk-backed file: the spill disk is
    # a 24 MiB tmpfs, so it fits nowhere
    shoal.init(num_cpus=1, object_store_memory=32 * MiB, object_spilling_directory=tiny_disk)
    with pytest.raises(ObjectStoreFullError) as info:
        shoal.get(big_array.remote(48 * MiB), timeout=60)
    err = info.value
    assert isinstance(err, TaskError) and isinstance(err, MemoryError)
    assert err.function_name.endswith("big_array")
    assert "so is its spill directory" in str(err.cause)
    assert not str(err.cause).startswith("ObjectStoreFullError")  # said once, not twice
    assert "big_array" in str(err)


# ------------------------------------------------------------------------- the shared cluster


def assert_whole(err: BaseException, cls: type, message: str) -> None:
    assert isinstance(err, TaskError) and isinstance(err, cls)
    assert type(err.cause) is cls
    assert message in str(err.cause)
    assert "fail" in err.function_name and "fail" in str(err)
    assert ", in fail\n" in err.traceback_str  # the remote traceback
    assert "executor.py" not in err.traceback_str  # ... from the task's own code


@pytest.mark.parametrize("kind, cls, message", [
    ("positional", PositionalInit, "7: boom-positional"),
    ("keyword_only", KeywordOnlyInit, "boom-keyword"),
    ("memory", MyMemoryError, "needed 1234 bytes"),
    ("os", MyOSError, "not allowed"),
    ("key", MyKeyError, "missing-key"),
    ("halt", Halt, "halted"),
])
def test_task_exception_of_any_class_reaches_get(shoal_cluster, kind, cls, message):
    with pytest.raises(cls) as info:
        shoal.get(fail.remote(kind), timeout=30)
    assert_whole(info.value, cls, message)


def test_attributes_and_builtin_fields_arrive(shoal_cluster):
    with pytest.raises(PositionalInit) as info:
        shoal.get(fail.remote("positional"), timeout=30)
    assert info.value.code == 7 and info.value.cause.code == 7
    with pytest.raises(MyOSError) as info:
        shoal.get(fail.remote("os"), timeout=30)
    assert (info.value.errno, info.value.filename) == (errno.EACCES, "/forbidden")
    with pytest.raises(Halt) as info:
        shoal.get(fail.remote("halt"), timeout=30)
    assert info.value.hard is True


def test_dependent_task_gets_the_same_error(shoal_cluster):
    with pytest.raises(MyMemoryError) as info:
        shoal.get(consume.remote(consume.remote(fail.remote("memory"))), timeout=30)
    assert_whole(info.value, MyMemoryError, "needed 1234 bytes")
    assert info.value.needed == 1234


def test_chained_cause_survives(shoal_cluster):
    with pytest.raises(PositionalInit) as info:
        shoal.get(fail_chained.remote(), timeout=30)
    err = info.value
    for exc in (err, err.cause):
        assert type(exc.__cause__) is MyKeyError
        assert exc.__cause__.where == "db" and exc.__cause__.args == ("inner-key",)
    assert "The above exception was the direct cause" in err.traceback_str


def test_exception_group_survives(shoal_cluster):
    with pytest.raises(ExceptionGroup) as info:
        shoal.get(fail_group.remote(), timeout=30)
    err = info.value
    assert isinstance(err, TaskError) and err.message == "several"
    first, second = err.exceptions
    assert type(first) is PositionalInit and first.code == 1
    assert type(second) is MyOSError and second.filename == "/second"


@pytest.mark.parametrize("kind, why", [("lock", "lock"), ("broken_reduce", "reduce exploded")])
def test_unpicklable_exception_becomes_unserializable_exception(shoal_cluster, kind, why):
    cls = type(make(kind))
    with pytest.raises(UnserializableException) as info:
        shoal.get(fail.remote(kind), timeout=30)
    err = info.value
    assert isinstance(err, TaskError) and not isinstance(err, cls)
    cause = err.cause
    assert cause.class_name == f"{cls.__module__}.{cls.__qualname__}"
    assert cause.message == str(make(kind))
    assert ", in fail\n" in cause.original_stack_trace
    assert why in cause.reason
    assert cls.__qualname__ in str(err) and "fail" in str(err)


def test_class_only_the_worker_can_import_becomes_unserializable_here(shoal_cluster, tmp_path):
    with pytest.raises(UnserializableException) as info:
        shoal.get(fail_with_class_only_here.remote(str(tmp_path)), timeout=30)
    cause = info.value.cause
    assert cause.class_name == "only_on_worker_mod.WorkerOnly"
    assert cause.message == "left+right"
    assert "could not be unpickled here" in cause.reason and "only_on_worker_mod" in cause.reason
    assert "WorkerOnly" in cause.original_stack_trace


def test_argument_that_fails_to_unpickle_names_the_task_and_keeps_the_cause(shoal_cluster):
    with pytest.raises(RaySystemError) as info:
        shoal.get(takes.remote(Poison(11)), timeout=30)
    err = info.value
    assert isinstance(err, TaskError) and "takes" in err.function_name
    assert "could not deserialize" in str(err.cause)
    inner = err.cause.__cause__
    assert type(inner) is PositionalInit and inner.code == 11
    assert "while unpickling an argument" in str(err)


def test_object_ref_inside_the_exception_stays_usable(shoal_cluster):
    value = shoal.put("held")
    with pytest.raises(PositionalInit) as info:
        shoal.get(fail_holding.remote([value]), timeout=30)
    assert shoal.get(info.value.cause.ref, timeout=30) == "held"
    assert shoal.get(info.value.ref, timeout=30) == "held"


def test_retry_exceptions_matches_a_class_with_custom_init(shoal_cluster, tmp_path):
    ref = fail_then_succeed.options(max_retries=1, retry_exceptions=[PositionalInit]).remote(
        str(tmp_path / "marker"))
    assert shoal.get(ref, timeout=30) == "second attempt"


def test_streaming_generator_error_with_custom_init(shoal_cluster):
    @shoal.remote(num_returns="streaming")
    def one_then_fail():
        yield 1
        raise MyKeyError("gen-key", where="stream")

    values = []
    with pytest.raises(MyKeyError) as info:
        for ref in one_then_fail.remote():
            values.append(shoal.get(ref, timeout=30))
    assert values == [1] and info.value.where == "stream"
    assert isinstance(info.value, TaskError)


@pytest.mark.parametrize("method", ["fail", "fail_async"])
def test_actor_method_exception_reaches_get(shoal_cluster, method):
    actor = Raiser.remote()
    with pytest.raises(MyMemoryError) as info:
        shoal.get(getattr(actor, method).remote("memory"), timeout=30)
    err = info.value
    assert isinstance(err, TaskError) and err.needed == 1234
    assert "Raiser" in err.actor_repr and "Raiser" in str(err)
    with pytest.raises(UnserializableException) as info:
        shoal.get(getattr(actor, method).remote("lock"), timeout=30)
    assert info.value.cause.message == "boom-locked"


@pytest.mark.parametrize("kind, cls, message", [
    ("positional", "PositionalInit", "7: boom-positional"),
    ("memory", "MyMemoryError", "needed 1234 bytes"),
    ("lock", "WithLock", "boom-locked"),
])
def test_actor_constructor_exception_is_named_by_every_call(shoal_cluster, kind, cls, message):
    actor = FailsInInit.remote(kind)
    for _ in range(2):
        with pytest.raises(ActorDiedError) as info:
            shoal.get(actor.ping.remote(), timeout=30)
        text = str(info.value)
        assert "FailsInInit.__init__() (pid=" in text
        assert f"raised {cls}: {message}" in text
        assert ", in __init__\n" in text and "executor.py" not in text


class TwoFields(Exception):
    def __init__(self, one, two):
        super().__init__(one, two)
        self.one, self.two = one, two

    def __reduce__(self):
        return self.__class__, (self.one, self.two)


@shoal.remote(max_retries=0)
def raise_two_fields():
    raise TwoFields("test 1", "test 2")


@shoal.remote
def inspect_error(err):
    return (isinstance(err, shoal.exceptions.TaskError), isinstance(err, TwoFields),
            err.one, err.two)


def test_an_error_that_is_also_its_cause_stays_so_when_sent_on(shoal_cluster):
    """The error ``get`` raises is both a TaskError and the cause's class; passed to
    another task (pickled) it is still both, with the cause's fields (Ray's
    make_dual_exception_instance is the same copy)."""
    with pytest.raises(TwoFields) as info:
        shoal.get(raise_two_fields.remote(), timeout=30)
    err = info.value
    assert shoal.get(inspect_error.remote(err), timeout=30) == (True, True, "test 1", "test 2")
    made = shoal.exceptions.TaskError("f", "tb", TwoFields("a", "b")).make_dual_exception_instance()
    assert isinstance(made, TwoFields) and made.one == "a"
