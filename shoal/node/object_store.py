"""The node's shared-memory object store: one arena file, an object table, pins.

Theory of operation
-------------------
The arena is a single file in ``/dev/shm`` of ``capacity`` bytes, created
sparse and mapped by the node agent and by every driver/worker on the node.
Objects are immutable once sealed.  Life of an object::

    create(oid, size) -> offset     writer copies its bytes into its own mapping
    seal(oid)                        readers may now see it
    (a copy pulled from another node is *secondary*: a cache that
    evict_secondary may drop once nobody has it pinned)
    get(oid, client) -> (off, size)  pins it for that client (zero-copy views)
    release(oid, client)             the client's views are gone
    free(oid)                        the owner dropped it: memory returns when
                                     the last pin is released

A client that disconnects loses all its pins and its unsealed creates.  This
module is pure bookkeeping (no sockets); waiting for space or for a seal is done
by the agent around it.
"""

from __future__ import annotations

import mmap
import os
from collections import Counter
from dataclasses import dataclass, field

from shoal.node.allocator import Allocator, OutOfMemory, align

SHM_DIR = "/dev/shm"
SHM_PREFIX = "shoal-"


class ObjectStoreFullError(Exception):
    pass


@dataclass
class StoredObject:
    offset: int
    size: int
    creator: object
    owner: str = ""  # address of the owner's core worker ("" unknown)
    sealed: bool = False
    freed: bool = False
    secondary: bool = False  # a copy pulled from another node: evictable when unpinned
    pins: Counter = field(default_factory=Counter)

    @property
    def pinned(self) -> bool:
        return sum(self.pins.values()) > 0


class ObjectTable:
    """Object bookkeeping over an :class:`Allocator`; no I/O."""

    def __init__(self, capacity: int) -> None:
        self.allocator = Allocator(capacity)
        self.objects: dict[bytes, StoredObject] = {}

    @property
    def capacity(self) -> int:
        return self.allocator.capacity

    @property
    def used(self) -> int:
        return self.allocator.used

    def create(self, oid: bytes, size: int, creator: object, owner: str = "") -> int:
        existing = self.objects.get(oid)
        if existing is not None:
            raise FileExistsError(oid.hex())
        if size > self.capacity:
            raise ObjectStoreFullError(
                f"object of {size} bytes is larger than the object store "
                f"({self.capacity} bytes); start shoal with a larger object_store_memory"
            )
        offset = self.allocator.allocate(size)  # may raise OutOfMemory
        self.objects[oid] = StoredObject(offset, size, creator, owner)
        return offset

    def seal(self, oid: bytes) -> StoredObject:
        obj = self.objects[oid]
        obj.sealed = True
        return obj

    def pin(self, oid: bytes, client: object) -> StoredObject | None:
        obj = self.objects.get(oid)
        if obj is None or not obj.sealed or obj.freed:
            return None
        obj.pins[client] += 1
        return obj

    def release(self, oid: bytes, client: object) -> bool:
        """Drop one pin; returns True if memory was returned."""
        obj = self.objects.get(oid)
        if obj is None or obj.pins[client] <= 0:
            return False
        obj.pins[client] -= 1
        if obj.pins[client] == 0:
            del obj.pins[client]
        return self._maybe_delete(oid, obj)

    def free(self, oid: bytes) -> bool:
        obj = self.objects.get(oid)
        if obj is None:
            return False
        obj.freed = True
        return self._maybe_delete(oid, obj)

    def evict_secondary(self, size: int) -> list[bytes]:
        """Drop unpinned secondary copies, oldest first, until a block of ``size``
        bytes is free (or none is left); returns the evicted ids.  Their owners
        still free them later, which is then a no-op."""
        evicted = []
        for oid, obj in list(self.objects.items()):
            if self.allocator.largest_free() >= align(max(size, 1)):
                break
            if obj.secondary and obj.sealed and not obj.freed and not obj.pinned:
                obj.freed = True
                self._maybe_delete(oid, obj)
                evicted.append(oid)
        return evicted

    def client_gone(self, client: object) -> bool:
        returned = False
        for oid, obj in list(self.objects.items()):
            if client in obj.pins:
                del obj.pins[client]
                returned |= self._maybe_delete(oid, obj)
            if not obj.sealed and obj.creator is client:
                obj.freed = True
                returned |= self._maybe_delete(oid, obj)
        return returned

    def _maybe_delete(self, oid: bytes, obj: StoredObject) -> bool:
        if obj.freed and not obj.pinned:
            del self.objects[oid]
            self.allocator.free(obj.offset)
            return True
        return False


def arena_path(session: str, node_id: str) -> str:
    """Named after the agent's pid so a later agent can tell a leaked arena
    (its agent was SIGKILLed) from a live one."""
    return os.path.join(SHM_DIR, f"{SHM_PREFIX}{os.getpid()}-{node_id[:12]}")


def remove_stale_arenas() -> list[str]:
    """Unlink arenas whose agent process no longer exists."""
    removed = []
    try:
        names = os.listdir(SHM_DIR)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(SHM_PREFIX):
            continue
        pid_text = name[len(SHM_PREFIX):].split("-", 1)[0]
        if not pid_text.isdigit():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            try:
                os.unlink(os.path.join(SHM_DIR, name))
                removed.append(name)
            except OSError:
                pass
        except PermissionError:
            pass
    return removed


class Arena:
    """The mapped arena file.  Used by the agent (create/unlink) and clients."""

    def __init__(self, path: str, capacity: int, create: bool) -> None:
        self.path = path
        flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
        fd = os.open(path, flags, 0o600)
        try:
            if create:
                os.ftruncate(fd, capacity)
            else:
                capacity = os.fstat(fd).st_size
            self.capacity = capacity
            self.map = mmap.mmap(fd, capacity, mmap.MAP_SHARED) if capacity else None
        finally:
            os.close(fd)
        self.view = memoryview(self.map) if self.map is not None else memoryview(b"")

    def unlink(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


__all__ = ["Arena", "ObjectTable", "ObjectStoreFullError", "OutOfMemory", "arena_path"]
