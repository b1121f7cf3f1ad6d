"""The control store's key-value table as users reach it (``ray.experimental.
internal_kv``): put/get/exists/delete/list by key prefix in a namespace of their
own, kept apart from the namespaces shoal itself uses in the same table."""

from __future__ import annotations

import enum
from typing import Any

USER_PREFIX = "user:"  # shoal's own namespaces ("job", runtime envs) never start so


class KvOp(enum.IntEnum):
    PUT = 0  # -> whether the key existed before
    GET = 1  # -> the value or None
    EXISTS = 2  # -> bool
    DELETE = 3  # flag: by prefix -> how many keys went
    KEYS = 4  # -> the keys that start with ``key``


def apply(kv: dict, body: list) -> Any:
    """Run one request ``[op, namespace, key, value, flag]`` against ``kv``."""
    op, namespace, key, value, flag = body
    space = USER_PREFIX + namespace
    op = KvOp(op)
    if op is KvOp.PUT:
        existed = (space, key) in kv
        if flag or not existed:  # flag: overwrite
            kv[(space, key)] = value
        return existed
    if op is KvOp.GET:
        return kv.get((space, key))
    if op is KvOp.EXISTS:
        return (space, key) in kv
    if op is KvOp.DELETE:
        if not flag:
            return 1 if kv.pop((space, key), None) is not None else 0
        doomed = _keys(kv, space, key)
        for k in doomed:
            del kv[(space, k)]
        return len(doomed)
    return _keys(kv, space, key)


def _keys(kv: dict, space: str, prefix: bytes) -> list[bytes]:
    return [k for s, k in kv if s == space and isinstance(k, bytes) and k.startswith(prefix)]
