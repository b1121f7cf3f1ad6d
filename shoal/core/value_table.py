"""The value table: this process's record of object values, readable from any thread.

(Ray calls it the in-memory store; here "store" is kept for the node's object store.)

For each object this process has a value *for* (owned objects, and borrowed
ones whose value it has fetched), it keeps either the small value itself
(inline, serialized) or where the shared-memory copy lives.  Writers are the
event-loop thread; readers are user threads calling ``get`` and the loop.
Waiters are callbacks run (on the writer's thread) when a value arrives, so
they must be thread-safe and quick: set an Event, or call_soon_threadsafe.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shoal.core.serialization import Serialized


@dataclass(slots=True)
class StoredValue:
    inline: Serialized | None = None  # small values and errors
    node_id: str = ""  # shared-memory copy: primary node
    size: int = 0
    # every node with a copy (shared-memory values only; inline ones share an empty one)
    locations: set | frozenset = frozenset()

    @property
    def in_plasma(self) -> bool:
        return self.inline is None

    @property
    def is_error(self) -> bool:
        return self.inline is not None and self.inline.is_error


class ValueTable:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[bytes, StoredValue] = {}
        self._waiters: dict[bytes, list[Callable[[bytes, StoredValue], None]]] = {}

    def put(self, oid: bytes, value: StoredValue) -> None:
        with self._lock:
            self._values[oid] = value
            waiters = self._waiters.pop(oid, ())
        for callback in waiters:
            callback(oid, value)

    def put_many(self, items: list[tuple[bytes, StoredValue]]) -> list[tuple]:
        """``put`` for many values under one lock (a task's returns); returns
        ``(oid, old, new)`` for each value that replaced another."""
        values, waiting = self._values, self._waiters
        replaced, wake = [], {}  # callback -> [(oid, value)]
        with self._lock:
            for oid, value in items:
                old = values.get(oid)
                values[oid] = value
                if old is not None:
                    replaced.append((oid, old, value))
                if waiting and oid in waiting:
                    for callback in waiting.pop(oid):
                        wake.setdefault(callback, []).append((oid, value))
        for callback, arrived in wake.items():
            many = getattr(callback, "arrived_many", None)
            if many is not None:  # a get waiting for many of them: one call
                many(arrived)
            else:
                for oid, value in arrived:
                    callback(oid, value)
        return replaced

    def get(self, oid: bytes) -> StoredValue | None:
        return self._values.get(oid)

    def contains(self, oid: bytes) -> bool:
        return oid in self._values

    def add_waiter(
        self, oid: bytes, callback: Callable[[bytes, StoredValue], None]
    ) -> StoredValue | None:
        """Return the value if present; otherwise call ``callback`` when it is."""
        with self._lock:
            value = self._values.get(oid)
            if value is None:
                self._waiters.setdefault(oid, []).append(callback)
            return value

    @property
    def values(self) -> dict[bytes, StoredValue]:
        """The live mapping, for lock-free lookups from any thread (never mutate it)."""
        return self._values

    def add_waiters(
        self, oids: list[bytes], callback: Callable[[bytes, StoredValue], None]
    ) -> dict[bytes, StoredValue]:
        """``add_waiter`` for many objects under one lock; returns those already here."""
        present = {}
        with self._lock:
            for oid in oids:
                value = self._values.get(oid)
                if value is None:
                    self._waiters.setdefault(oid, []).append(callback)
                else:
                    present[oid] = value
        return present

    def remove_waiters(self, oids: list[bytes], callback) -> None:
        with self._lock:
            for oid in oids:
                waiters = self._waiters.get(oid)
                if waiters and callback in waiters:
                    waiters.remove(callback)
                    if not waiters:
                        del self._waiters[oid]

    def remove_waiter(self, oid: bytes, callback) -> None:
        self.remove_waiters([oid], callback)

    def delete(self, oid: bytes) -> StoredValue | None:
        with self._lock:
            return self._values.pop(oid, None)

    def delete_many(self, oids: list[bytes]) -> list[tuple[bytes, StoredValue]]:
        """``delete`` under one lock; returns the ``(oid, value)`` pairs that were here."""
        values, gone = self._values, []
        with self._lock:
            for oid in oids:
                value = values.pop(oid, None)
                if value is not None:
                    gone.append((oid, value))
        return gone

    def __len__(self) -> int:
        return len(self._values)


class ValuesWaiter:
    """Wakes a blocked get/wait once ``num`` values are in ``ready`` (called from the
    loop thread; a bare lock is the cheapest thing to block a thread on)."""

    __slots__ = ("ready", "num", "lock", "_gate", "done", "fail_fast")

    def __init__(self, ready: dict, num: int, fail_fast: bool = False) -> None:
        self.ready = ready
        self.num = num
        # get(): an error ends the wait, as Ray's get raises the first error that
        # arrives without waiting for the other objects
        self.fail_fast = fail_fast
        self.lock = threading.Lock()
        self._gate = threading.Lock()
        self._gate.acquire()
        self.done = len(ready) >= num

    def __call__(self, oid: bytes, value: StoredValue) -> None:
        with self.lock:
            self.ready[oid] = value
            if not self.done and (len(self.ready) >= self.num
                                  or (self.fail_fast and value.is_error)):
                self.done = True
                self._gate.release()

    def arrived_many(self, arrived: list[tuple[bytes, StoredValue]]) -> None:
        """ValueTable.put_many's batch form (a task's 3000 returns: one lock)."""
        with self.lock:
            self.ready.update(arrived)
            if not self.done and (len(self.ready) >= self.num or (
                    self.fail_fast and any(v.is_error for _, v in arrived))):
                self.done = True
                self._gate.release()

    def wait(self, timeout: float | None) -> bool:
        if self.done:
            return True
        return self._gate.acquire(timeout=-1 if timeout is None else timeout) or self.done


def first_error(refs: list, values: dict) -> Any:
    """The first of ``refs`` (in order) whose value is a stored error, else None."""
    for ref in refs:
        value = values.get(ref.object_id)
        if value is not None and value.is_error:
            return ref
    return None


def set_result_once(fut: Any, value: Any) -> None:
    """A waiter's callback, run on the loop: the future may have been cancelled or
    answered meanwhile."""
    if not fut.done():
        fut.set_result(value)
