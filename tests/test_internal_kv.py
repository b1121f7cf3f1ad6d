"""``shoal.experimental.internal_kv`` (Ray's ``ray.experimental.internal_kv``): one
key-value table for the whole cluster, in the control store."""

from __future__ import annotations

import pytest

import shoal
from shoal.control import user_kv
from shoal.experimental import internal_kv as kv

GET_TIMEOUT = 60


def test_table_logic_by_namespace_and_prefix():
    table: dict = {("job", b"k"): "shoal's own"}
    put = [user_kv.KvOp.PUT, "", b"k", b"v", True]
    assert user_kv.apply(table, put) is False
    assert user_kv.apply(table, put) is True
    assert table[("job", b"k")] == "shoal's own"  # users' keys are kept apart
    assert user_kv.apply(table, [user_kv.KvOp.PUT, "", b"k", b"new", False]) is True
    assert user_kv.apply(table, [user_kv.KvOp.GET, "", b"k", None, False]) == b"v"
    for key in (b"ab", b"ac", b"b"):
        user_kv.apply(table, [user_kv.KvOp.PUT, "ns", key, b"x", True])
    assert sorted(user_kv.apply(table, [user_kv.KvOp.KEYS, "ns", b"a", None, False])) == [
        b"ab", b"ac"]
    assert user_kv.apply(table, [user_kv.KvOp.DELETE, "ns", b"a", None, True]) == 2
    assert user_kv.apply(table, [user_kv.KvOp.DELETE, "ns", b"b", None, False]) == 1
    assert user_kv.apply(table, [user_kv.KvOp.DELETE, "ns", b"b", None, False]) == 0


def test_values_are_shared_across_processes(shoal_cluster):
    assert kv._internal_kv_initialized()
    assert kv._internal_kv_get("greeting") is None
    assert kv._internal_kv_put("greeting", "hello") is False  # did not exist
    assert kv._internal_kv_put(b"greeting", b"hi", False) is True  # existed: kept
    assert kv._internal_kv_get("greeting") == b"hello"

    @shoal.remote
    def read_and_write():
        seen = kv._internal_kv_get("greeting")
        kv._internal_kv_put("from-task", "written", namespace="other")
        return seen

    assert shoal.get(read_and_write.remote(), timeout=GET_TIMEOUT) == b"hello"
    assert kv._internal_kv_get("from-task", namespace="other") == b"written"
    assert kv._internal_kv_get("from-task") is None  # another namespace
    assert kv._internal_kv_exists("from-task", namespace="other")
    assert kv._internal_kv_list("from", namespace="other") == [b"from-task"]
    assert kv._internal_kv_del("from", del_by_prefix=True, namespace="other") == 1
    assert kv._internal_kv_del("greeting") == 1
    assert not kv._internal_kv_exists("greeting")


def test_reserved_keys_and_bad_types_are_refused(shoal_cluster):
    with pytest.raises(shoal.exceptions.RaySystemError, match="reserved"):
        kv._internal_kv_put("@namespace_x", "v")
    with pytest.raises(TypeError, match="key must be str or bytes"):
        kv._internal_kv_get(3)
