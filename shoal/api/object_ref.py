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

from shoal.core import context
from shoal.core.serialization_context import current as _pickling


class ObjectRef:
    __slots__ = ("object_id", "owner_address", "_worker", "__weakref__")

    def __class_getitem__(cls, item: Any) -> type:
        return cls  # ObjectRef[int] in annotations (Ray's ObjectRef is generic)

    def __init__(self, object_id: bytes, owner: str, worker: Any = None) -> None:
        self.object_id = object_id
        self.owner_address = owner
        self._worker = worker
        if worker is not None:
            worker.ref_created(object_id, owner)

    @classmethod
    def uncounted(cls, object_id: bytes, owner: str, worker: Any) -> ObjectRef:
        """A ref whose creation the caller counts itself (in a batch)."""
        ref = cls.__new__(cls)
        ref.object_id = object_id
        ref.owner_address = owner
        ref._worker = worker  # noqa: SLF001 (its own class)
        return ref

    def __del__(self) -> None:
        worker = self._worker
        if worker is not None:
            try:
                worker.ref_deleted(self.object_id)
            except Exception:
                pass

    def binary(self) -> bytes:
        return self.object_id

    def hex(self) -> str:
        return self.object_id.hex()

    def job_id(self) -> Any:
        """The job whose process made it (Ray's ``JobID``; its id names it)."""
        from shoal.api.id_types import JobID
        from shoal.core.ids import job_of

        return JobID(job_of(self.object_id))

    def task_id(self) -> str:
        """The hex id of the task that made it (a str that also answers Ray's
        ``hex()``/``binary()``, as ``TaskID`` does)."""
        from shoal.api.id_types import HexId

        return HexId(self.object_id[:16].hex())

    def __hash__(self) -> int:
        return hash(self.object_id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other.object_id == self.object_id

    def __repr__(self) -> str:
        return f"ObjectRef({self.object_id.hex()})"

    def __reduce__(self):
        if _pickling.refs is not None:
            _pickling.refs.append(self)  # the new object contains it: it must outlive
        return (_rebuild_object_ref, (self.object_id, self.owner_address))

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


_new_ref = ObjectRef.__new__


def _rebuild_object_ref(object_id: bytes, owner: str) -> ObjectRef:
    rebuilt = _pickling.rebuilt
    worker = _pickling.worker
    if rebuilt is not None and worker is not None:
        # Counted in one batch by whoever collects ``rebuilt`` (it keeps them alive
        # until then, so no drop can be counted before its creation).
        # ObjectRef.uncounted, inlined: this runs once per ref of a 10k-ref get.
        ref = _new_ref(ObjectRef)
        ref.object_id = object_id
        ref.owner_address = owner
        ref._worker = worker  # noqa: SLF001 (its own class)
        rebuilt.append(ref)
        return ref
    if _pickling.detached:
        return ObjectRef.uncounted(object_id, owner, None)
    ref = ObjectRef(object_id, owner, worker or context.current_worker_or_none())
    if rebuilt is not None:
        rebuilt.append(ref)
    return ref
