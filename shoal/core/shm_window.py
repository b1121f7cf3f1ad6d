"""The shared-memory window: this process's mapping of its node's object store.

Writes: ask the agent for space (STORE_CREATE), copy straight into our own
mapping of the arena, then STORE_SEAL.  Reads: STORE_GET pins the object for
us and returns its offset; we hand out read-only views of our mapping.  A pin
is released when the last view of that read is garbage-collected: the views
all hang off one numpy "holder" array whose finalizer posts STORE_RELEASE.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

from shoal.core.serialization import Serialized, read_from
from shoal.node.object_store import Arena


class ShmWindow:
    def __init__(self, store_path: str, on_release: Callable[[bytes], None]) -> None:
        self.arena = Arena(store_path, 0, create=False)
        self._on_release = on_release

    def write(self, offset: int, data: Serialized) -> None:
        size = data.store_size()
        data.write_to(self.arena.view[offset : offset + size], offset)

    def view(self, oid: bytes, offset: int, size: int) -> Serialized:
        """A pinned, read-only view; the pin is released when it is collected."""
        import numpy as np

        holder = np.frombuffer(self.arena.map, dtype=np.uint8, count=size, offset=offset)
        holder.flags.writeable = False
        weakref.finalize(holder, self._on_release, oid)
        return read_from(memoryview(holder))

    def close(self) -> None:
        # Views handed to the user may still exist; the mapping goes with them.
        self.arena = None  # type: ignore[assignment]
