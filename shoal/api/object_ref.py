"""ObjectRef: a distributed future.

A ref knows its id and its owner's address, nothing else.  Creating and
dropping refs is counted by the process's core worker (``_worker``), which is
how the owner learns an object is out of scope.  Counting is posted, not
done inline, because ``__del__`` may run inside the garbage collector at any
point of any thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any


class ObjectRef:
    __slots__ = ("_id", "_owner", "_worker", "__weakref__")

    def __class_getitem__(cls, item: Any) -> type:
        return cls  # ObjectRef[int] in annotations (Ray's ObjectRef is generic)

    def __init__(self, object_id: bytes, owner: str, worker: Any = None) -> None:
        self._id = object_id
        self._owner = owner
        self._worker = worker
        if worker is not None:
            worker.ref_created(object_id, owner)

    @classmethod
    def uncounted(cls, object_id: bytes, owner: str, worker: Any) -> ObjectRef:
        """A ref whose creation the caller counts itself (in a batch)."""
        ref = cls.__new__(cls)
        ref._id = object_id
        ref._owner = owner
        ref._worker = worker
        return ref

    def __del__(self) -> None:
        worker = self._worker
        if worker is not None:
            try:
                worker.ref_deleted(self._id)
            except Exception:
                pass

    def binary(self) -> bytes:
        return self._id

    def hex(self) -> str:
        return self._id.hex()

    def task_id(self) -> str:
        """The hex id of the task that made it (a str that also answers Ray's
        ``hex()``/``binary()``, as ``TaskID`` does)."""
        from shoal.api.id_types import HexId

        return HexId(self._id[:16].hex())

    @property
    def owner_address(self) -> str:
        return self._owner

    def __hash__(self) -> int:
        return hash(self._id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other._id == self._id

    def __repr__(self) -> str:
        return f"ObjectRef({self._id.hex()})"

    def __reduce__(self):
        from shoal.core.serialization import reduce_object_ref

        return reduce_object_ref(self)

    def future(self) -> concurrent.futures.Future:
        """A concurrent.futures.Future that completes with the value."""
        if self._worker is None:
            raise RuntimeError("this ObjectRef is not attached to a running shoal worker")
        from shoal.core.ref_futures import future

        return future(self._worker, self)

    def as_future(self, _internal: bool = False) -> asyncio.Future:
        """An asyncio future of the value (of the running event loop)."""
        return asyncio.wrap_future(self.future())

    def _on_completed(self, callback: Any) -> None:
        """Call ``callback(value)`` (the exception, if the object is an error) on a
        shoal thread once the object is ready."""
        if self._worker is None:
            raise RuntimeError("this ObjectRef is not attached to a running shoal worker")
        from shoal.core.ref_futures import on_completed

        on_completed(self._worker, self, callback)

    def __await__(self):
        return asyncio.wrap_future(self.future()).__await__()
