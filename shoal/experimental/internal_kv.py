"""Ray's ``ray.experimental.internal_kv``: a small cluster-wide key-value store (the
control store's table) for libraries that need to share a few bytes between
processes of one cluster.  Keys and values are bytes (str is UTF-8 encoded);
``namespace`` separates users; keys starting with ``@namespace_`` are reserved."""

from __future__ import annotations

from shoal import exceptions
from shoal.control.user_kv import KvOp
from shoal.rpc.messages import Method

RESERVED_PREFIX = b"@namespace_"
TIMEOUT_S = 30


def _bytes(value: str | bytes, what: str) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes):
        return value
    raise TypeError(f"internal_kv {what} must be str or bytes, got {type(value).__name__}")


def _call(op: KvOp, key: str | bytes, namespace: str | bytes | None,
          value: bytes | None = None, flag: bool = False):
    from shoal.api.runtime import ensure_worker

    key = _bytes(key, "key")
    if key.startswith(RESERVED_PREFIX):
        raise exceptions.RaySystemError(
            f"internal_kv key {key!r}: keys starting with {RESERVED_PREFIX!r} are reserved")
    space = "" if namespace is None else _bytes(namespace, "namespace").decode(
        "utf-8", "surrogateescape")
    return ensure_worker().control_call(Method.KV_USER, [int(op), space, key, value, flag],
                                        timeout=TIMEOUT_S)


def _internal_kv_initialized() -> bool:
    import shoal

    return shoal.is_initialized()


def _internal_kv_get(key: str | bytes, *, namespace: str | bytes | None = None) -> bytes | None:
    return _call(KvOp.GET, key, namespace)


def _internal_kv_exists(key: str | bytes, *, namespace: str | bytes | None = None) -> bool:
    return _call(KvOp.EXISTS, key, namespace)


def _internal_kv_put(key: str | bytes, value: str | bytes, overwrite: bool = True, *,
                     namespace: str | bytes | None = None) -> bool:
    """Store ``value``; returns True if the key already existed (then it is replaced
    only with ``overwrite``)."""
    return _call(KvOp.PUT, key, namespace, _bytes(value, "value"), bool(overwrite))


def _internal_kv_del(key: str | bytes, *, del_by_prefix: bool = False,
                     namespace: str | bytes | None = None) -> int:
    """Delete ``key`` (or every key starting with it); returns how many went."""
    return _call(KvOp.DELETE, key, namespace, None, bool(del_by_prefix))


def _internal_kv_list(prefix: str | bytes, *,
                      namespace: str | bytes | None = None) -> list[bytes]:
    return _call(KvOp.KEYS, prefix, namespace)
