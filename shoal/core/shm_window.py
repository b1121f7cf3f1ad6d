"""The shared-memory window: this process's mapping of its node's object store.

Writes: ask the agent for space (STORE_CREATE), copy straight into our own
mapping of the arena, then STORE_SEAL.  Reads: STORE_GET pins the object for
us and returns its offset; we hand out read-only views of our mapping.  A pin
is released when the last view of that read is garbage-collected: the views
all hang off one numpy "holder" array whose finalizer posts STORE_RELEASE.

An object larger than the whole store lives in a file of its own (the agent
answers with its path instead of an offset, see :mod:`shoal.objects.arena`):
we map that file for the write, and for each read.
"""

from __future__ import annotations

import mmap
import weakref
from collections.abc import Callable

from shoal.core.serialization import Serialized, read_from
from shoal.objects.arena import Arena


class ShmWindow:
    def __init__(self, store_path: str, on_release: Callable[[bytes], None]) -> None:
        self.arena = Arena(store_path, 0, create=False)
        self._on_release = on_release

    def write(self, where: int | list, data: Serialized) -> None:
        """``where``: the arena offset, or a file location ``[path, size, 0]``."""
        size = data.store_size()
        if isinstance(where, int):
            data.write_to(self.arena.view[where : where + size], where)
            return
        mapping = Arena(where[0], 0, create=False)
        view = mapping.view[:size]
        try:
            data.write_to(view, 0)
        finally:
            view.release()
            mapping.view.release()
            try:
                mapping.map.close()
            except BufferError:
                pass  # a view is still alive somewhere: the mapping goes with it

    def view(self, oid: bytes, where: int | str, size: int, file_offset: int = 0) -> Serialized:
        """A pinned, read-only view of ``size`` bytes at arena offset ``where``
        (or at ``file_offset`` of the file ``where``: a location's fields in
        order); the pin is released when it is collected."""
        import numpy as np

        if isinstance(where, str):
            with open(where, "rb") as f:
                source = mmap.mmap(f.fileno(), size, mmap.MAP_SHARED, mmap.PROT_READ,
                                   offset=file_offset)
            where = 0
        else:
            source = self.arena.map
        holder = np.frombuffer(source, dtype=np.uint8, count=size, offset=where)
        holder.flags.writeable = False
        weakref.finalize(holder, self._on_release, oid)
        return read_from(memoryview(holder))

    def close(self) -> None:
        # Views handed to the user may still exist; the mapping goes with them.
        self.arena = None  # type: ignore[assignment]
