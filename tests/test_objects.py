"""Objects: put/get, wait, object refs as arguments, numpy zero-copy, memory release."""

from __future__ import annotations

import gc
import os
import threading
import time

import numpy as np
import pytest

import shoal
from tests.utils import open_gate, wait_for_condition, wait_for_file

pytestmark = pytest.mark.timeout(60)

MiB = 1024 * 1024


class Point:
    """A user-defined class living in the test module."""

    def __init__(self, x, y):
        self.x = x
        self.y = y

    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    def __repr__(self):
        return f"Point({self.x}, {self.y})"


@shoal.remote
def identity(x):
    return x


@shoal.remote
def square(x):
    return x * x


@shoal.remote
def make_point(x, y):
    return Point(x, y)


@shoal.remote
def blocked_until(gate_path, value=None):
    wait_for_file(gate_path)
    return value


@shoal.remote
def describe_argument(x):
    return type(x).__name__, x


@shoal.remote
def inspect_nested_ref(items):
    inner = items[0]
    return isinstance(inner, shoal.ObjectRef), shoal.get(inner)


@shoal.remote
def return_put_ref(value):
    return shoal.put(value)


@shoal.remote
def return_task_ref(value):
    return square.remote(value)


@shoal.remote
def numpy_task(n):
    return np.arange(n, dtype=np.float64) * 2.0


@shoal.remote
def return_lock():
    return threading.Lock()


# --------------------------------------------------------------------------- put / get


@pytest.mark.parametrize(
    "value",
    [
        0,
        -17,
        2**70,
        3.25,
        True,
        None,
        "hello wörld",
        "",
        b"\x00\x01binary\xff",
        b"",
        [1, "two", 3.0, None],
        (1, (2, 3)),
        {"a": [1, 2], "b": {"c": None}},
        {1, 2, 3},
        frozenset({"x"}),
    ],
    ids=repr,
)
def test_put_get_roundtrips_python_values(shoal_cluster, value):
    result = shoal.get(shoal.put(value))
    assert result == value
    assert type(result) is type(value)


def test_put_get_roundtrips_custom_class_instance(shoal_cluster):
    assert shoal.get(shoal.put(Point(1, 2))) == Point(1, 2)


def test_task_returns_custom_class_instance(shoal_cluster):
    assert shoal.get(make_point.remote(3, 4)) == Point(3, 4)


def test_put_get_roundtrips_large_bytes(shoal_cluster):
    payload = os.urandom(3 * MiB + 123)
    assert shoal.get(shoal.put(payload)) == payload


def test_task_roundtrips_large_bytes_argument(shoal_cluster):
    payload = os.urandom(2 * MiB)
    assert shoal.get(identity.remote(payload)) == payload


def test_put_returns_object_ref(shoal_cluster):
    assert isinstance(shoal.put(1), shoal.ObjectRef)


def test_get_list_returns_values_in_input_order(shoal_cluster):
    refs = [square.remote(i) for i in range(20)]
    refs.reverse()
    assert shoal.get(refs) == [i * i for i in reversed(range(20))]


def test_get_of_a_pending_ref_listed_twice_returns_it_twice(shoal_cluster, tmp_path):
    """Regression: a duplicate counted as two missing objects and get waited forever."""
    gate = tmp_path / "gate"
    ref = blocked_until.remote(str(gate), "v")
    opener = threading.Timer(0.2, open_gate, [gate])  # opens while get is (usually) blocked
    opener.start()
    try:
        assert shoal.get([ref, ref], timeout=30) == ["v", "v"]
    finally:
        opener.cancel()
        open_gate(gate)


def test_get_empty_list_returns_empty_list(shoal_cluster):
    assert shoal.get([]) == []


def test_get_timeout_on_unfinished_task_raises_get_timeout_error(shoal_cluster, tmp_path):
    gate = tmp_path / "gate"
    ref = blocked_until.remote(str(gate), "done")
    try:
        start = time.monotonic()
        with pytest.raises(shoal.exceptions.GetTimeoutError):
            shoal.get(ref, timeout=0.1)
        assert time.monotonic() - start < 5
        with pytest.raises(TimeoutError):  # GetTimeoutError is a TimeoutError
            shoal.get([ref], timeout=0.1)
    finally:
        open_gate(gate)
    assert shoal.get(ref) == "done"


def test_get_timeout_error_subclasses_timeout_error():
    assert issubclass(shoal.exceptions.GetTimeoutError, TimeoutError)


@pytest.mark.parametrize("not_a_ref", [1, "ref", None, [1, 2]], ids=repr)
def test_get_on_non_ref_raises_naming_object_ref(shoal_cluster, not_a_ref):
    with pytest.raises((TypeError, ValueError)) as excinfo:
        shoal.get(not_a_ref)
    assert "objectref" in str(excinfo.value).lower()


# --------------------------------------------------------------------------- numpy


def test_large_numpy_array_roundtrips_read_only_and_zero_copy(shoal_cluster):
    original = np.arange(MiB, dtype=np.float64)  # 8 MiB
    ref = shoal.put(original)
    first = shoal.get(ref)
    second = shoal.get(ref)
    assert isinstance(first, np.ndarray)
    assert first.dtype == original.dtype and first.shape == original.shape
    np.testing.assert_array_equal(first, original)
    assert first.flags.writeable is False
    with pytest.raises(ValueError):
        first[0] = 1.0
    assert np.shares_memory(first, second), "two gets of one ref should share memory"
    assert not np.shares_memory(first, original), "put must copy into the object store"


def test_numpy_array_returned_from_task_is_correct(shoal_cluster):
    n = 1_000_000
    result = shoal.get(numpy_task.remote(n))
    np.testing.assert_array_equal(result, np.arange(n, dtype=np.float64) * 2.0)


def test_numpy_array_passed_to_task_arrives_intact(shoal_cluster):
    @shoal.remote
    def checksum(arr):
        return float(arr.sum()), arr.shape, str(arr.dtype)

    arr = np.random.default_rng(0).random((512, 1024))
    total, shape, dtype = shoal.get(checksum.remote(arr))
    assert total == pytest.approx(float(arr.sum()))
    assert tuple(shape) == arr.shape and dtype == "float64"


# --------------------------------------------------------------------------- wait


def test_wait_ready_list_preserves_input_order(shoal_cluster, tmp_path):
    gate = tmp_path / "gate"
    blocked = blocked_until.remote(str(gate))
    try:
        done = [shoal.put(i) for i in range(4)]
        refs = [done[0], blocked, done[1], done[2], done[3]]
        ready, not_ready = shoal.wait(refs, num_returns=4, timeout=10)
        assert ready == done
        assert not_ready == [blocked]
    finally:
        open_gate(gate)
    shoal.get(blocked)


def test_wait_default_num_returns_is_one(shoal_cluster):
    refs = [shoal.put(i) for i in range(3)]
    ready, not_ready = shoal.wait(refs)
    assert len(ready) == 1 and len(not_ready) == 2
    # which ready ref is picked is unspecified (as in Ray), but none is lost or duplicated
    assert set(ready + not_ready) == set(refs)
    assert not_ready == [r for r in refs if r not in ready], "not_ready keeps input order"


def test_wait_all_ready_returns_all(shoal_cluster):
    refs = [square.remote(i) for i in range(5)]
    ready, not_ready = shoal.wait(refs, num_returns=5, timeout=30)
    assert ready == refs and not_ready == []


def test_wait_num_returns_greater_than_len_raises_value_error(shoal_cluster):
    refs = [shoal.put(1), shoal.put(2)]
    with pytest.raises(ValueError):
        shoal.wait(refs, num_returns=3)


def test_wait_duplicate_refs_raises_value_error(shoal_cluster):
    ref = shoal.put(1)
    with pytest.raises(ValueError):
        shoal.wait([ref, ref], num_returns=1)


def test_wait_non_list_raises_type_error(shoal_cluster):
    with pytest.raises(TypeError):
        shoal.wait(shoal.put(1))


def test_wait_timeout_zero_returns_immediately(shoal_cluster, tmp_path):
    gate = tmp_path / "gate"
    blocked = blocked_until.remote(str(gate))
    try:
        start = time.monotonic()
        ready, not_ready = shoal.wait([blocked], num_returns=1, timeout=0)
        elapsed = time.monotonic() - start
        assert ready == [] and not_ready == [blocked]
        assert elapsed < 1.0, f"wait(timeout=0) took {elapsed:.2f} s"
    finally:
        open_gate(gate)
    shoal.get(blocked)


def test_wait_returns_fast_task_before_slow_task(shoal_cluster, tmp_path):
    gate = tmp_path / "gate"
    slow = blocked_until.remote(str(gate), "slow")
    try:
        fast = square.remote(3)
        ready, not_ready = shoal.wait([slow, fast], num_returns=1, timeout=30)
        assert ready == [fast]
        assert not_ready == [slow]
    finally:
        open_gate(gate)
    assert shoal.get([slow, fast]) == ["slow", 9]


@pytest.mark.parametrize("fetch_local", [True, False])
def test_wait_accepts_fetch_local(shoal_cluster, fetch_local):
    refs = [square.remote(i) for i in range(3)]
    ready, not_ready = shoal.wait(refs, num_returns=3, timeout=30, fetch_local=fetch_local)
    assert ready == refs and not_ready == []


# --------------------------------------------------------------------------- refs as values


def test_top_level_ref_argument_is_resolved_before_task_runs(shoal_cluster):
    type_name, value = shoal.get(describe_argument.remote(shoal.put(5)))
    assert (type_name, value) == ("int", 5)


def test_top_level_task_output_argument_is_resolved(shoal_cluster):
    type_name, value = shoal.get(describe_argument.remote(square.remote(6)))
    assert (type_name, value) == ("int", 36)


def test_ref_nested_in_list_argument_stays_a_ref(shoal_cluster):
    is_ref, value = shoal.get(inspect_nested_ref.remote([shoal.put("inner")]))
    assert is_ref is True
    assert value == "inner"


def test_chain_of_dependent_tasks(shoal_cluster):
    assert shoal.get(square.remote(square.remote(square.remote(2)))) == 256


def test_task_can_return_ref_from_put(shoal_cluster):
    outer = shoal.get(return_put_ref.remote("made in a task"))
    assert isinstance(outer, shoal.ObjectRef)
    assert shoal.get(outer) == "made in a task"


def test_task_can_return_ref_of_submitted_task(shoal_cluster):
    outer = shoal.get(return_task_ref.remote(9))
    assert isinstance(outer, shoal.ObjectRef)
    assert shoal.get(outer) == 81


def test_ref_inside_put_object_survives_dropping_the_original_handle(shoal_cluster):
    inner = shoal.put({"payload": 7})
    outer = shoal.put({"inner": [inner]})
    del inner
    gc.collect()
    container = shoal.get(outer)
    nested = container["inner"][0]
    assert isinstance(nested, shoal.ObjectRef)
    assert shoal.get(nested) == {"payload": 7}


def test_object_ref_is_hashable_and_comparable(shoal_cluster):
    a = shoal.put(1)
    b = shoal.put(1)
    assert a != b
    assert len({a, b, a}) == 2
    assert isinstance(a.hex(), str)


# --------------------------------------------------------------------------- memory


def test_object_store_memory_returns_to_start_after_dropping_refs(shoal_cluster):
    def available_store():
        return shoal.available_resources()["object_store_memory"]

    gc.collect()
    start = available_store()
    chunk = np.ones(4 * MiB // 8, dtype=np.float64)  # 4 MiB

    held = shoal.put(chunk)
    wait_for_condition(
        lambda: available_store() <= start - 3 * MiB,
        message="object_store_memory should drop while a 4 MiB object is held",
    )
    del held

    for i in range(50):
        chunk[0] = i
        ref = shoal.put(chunk)
        value = shoal.get(ref)
        assert value[0] == i
        del value, ref

    gc.collect()
    wait_for_condition(
        lambda: available_store() >= start,
        timeout=20,
        message=f"object_store_memory should return to its start value {start}",
    )


# --------------------------------------------------------------------------- serialization errors


def test_unpicklable_argument_raises_naming_the_type(shoal_cluster):
    lock = threading.Lock()
    with pytest.raises(Exception) as excinfo:  # noqa: B017 - checked below
        shoal.get(identity.remote(lock), timeout=30)
    exc = excinfo.value
    assert isinstance(exc, TypeError) or type(exc).__module__.startswith("shoal"), repr(exc)
    assert "lock" in str(exc).lower()


def test_unpicklable_put_raises_naming_the_type(shoal_cluster):
    with pytest.raises(Exception) as excinfo:  # noqa: B017 - checked below
        shoal.put(threading.Lock())
    assert "lock" in str(excinfo.value).lower()


def test_unpicklable_return_value_raises_on_get(shoal_cluster):
    with pytest.raises(Exception) as excinfo:  # noqa: B017 - checked below
        shoal.get(return_lock.remote(), timeout=30)
    assert not isinstance(excinfo.value, shoal.exceptions.GetTimeoutError)
    assert "lock" in str(excinfo.value).lower()
    # the cluster keeps working
    assert shoal.get(square.remote(4)) == 16
