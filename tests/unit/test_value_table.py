"""Unit tests for shoal.core.value_table: batch puts and deletes."""

from __future__ import annotations

from shoal.core.serialization import Serialized
from shoal.core.value_table import StoredValue, ValuesWaiter, ValueTable


def value(n: int) -> StoredValue:
    return StoredValue(Serialized(bytes([n])))


def test_put_many_wakes_each_waiter_once_with_its_value():
    store = ValueTable()
    seen = []
    store.add_waiter(b"a", lambda oid, v: seen.append((oid, v)))
    store.add_waiters([b"b", b"c"], lambda oid, v: seen.append((oid, v)))
    values = [value(1), value(2), value(3)]
    assert store.put_many(list(zip([b"a", b"b", b"x"], values, strict=True))) == []
    assert seen == [(b"a", values[0]), (b"b", values[1])]
    store.put_many([(b"c", values[2])])
    assert seen[-1] == (b"c", values[2])
    assert store.get(b"x") is values[2]


def test_put_many_returns_the_values_it_replaced():
    store = ValueTable()
    old, new = value(1), value(2)
    store.put(b"a", old)
    assert store.put_many([(b"a", new), (b"b", old)]) == [(b"a", old, new)]
    assert store.get(b"a") is new


def test_put_many_completes_a_get_waiting_for_all_of_them():
    store = ValueTable()
    ready: dict = {}
    waiter = ValuesWaiter(ready, 2)
    assert store.add_waiters([b"a", b"b"], waiter) == {}
    store.put_many([(b"a", value(1)), (b"b", value(2))])
    assert waiter.wait(0) and set(ready) == {b"a", b"b"}


def test_put_many_calls_plain_callbacks_once_per_value():
    store = ValueTable()
    seen = []
    store.add_waiters([b"a", b"b"], lambda oid, v: seen.append(oid))
    store.put_many([(b"a", value(1)), (b"c", value(3)), (b"b", value(2))])
    assert seen == [b"a", b"b"]


def test_delete_many_returns_what_was_there():
    store = ValueTable()
    v = value(1)
    store.put(b"a", v)
    assert store.delete_many([b"a", b"missing"]) == [(b"a", v)]
    assert len(store) == 0
