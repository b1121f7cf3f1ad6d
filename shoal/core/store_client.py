"""A process's window onto its node's shared-memory store.

Writes: ask the agent for space (STORE_CREATE), copy straight into our own
mapping of the arena, then STORE_SEAL.  Reads: STORE_GET pins the object for
us and returns its offset; we hand out read-only views of our mapping.  A pin
is released when the last view of that read is garbage-collected: the views
all hang off one numpy "holder" array whose finalizer posts STORE_RELEASE.

Reading again what we already map
---------------------------------
While a holder is alive its pin keeps the object's bytes in place, and they
never change (sealed objects are immutable).  So a second ``get`` of the same
object needs no pin of its own: ``cached_view`` hands out fresh views of the
live holder (a dict lookup and a weak-reference call, no round trip to the
agent).  The record of a holder (``_Mapped``) holds it weakly, so it never
delays the release; it goes when the holder is collected, or when the owner
frees the object (``forget``).  A record also names the ``StoredValue`` it was
read for: a value that was replaced since (a rebuilt object) misses the cache
and is pinned afresh.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from shoal.core.serialization import Serialized, read_layout
from shoal.node.object_store import Arena

PARALLEL_COPY_MIN = 8 << 20  # below this a second thread costs more than it saves
COPY_CHUNK_ALIGN = 1 << 16  # chunks start on page (and huge-ish) boundaries


class ParallelCopy:
    """Copies a large buffer with the calling thread and helper threads.

    One core's memcpy does not reach the memory's bandwidth: on the 2-CPU
    development VM one thread copies 12 GB/s and two copy 21 GB/s.  numpy's
    copy releases the GIL, so the helpers run truly in parallel.  The pool is
    made on first use (forked workers start without threads).
    """

    def __init__(self, helpers: int | None = None) -> None:
        if helpers is None:
            helpers = min(3, len(os.sched_getaffinity(0)) - 1)
        self.helpers = max(0, helpers)
        self._pool: ThreadPoolExecutor | None = None

    def __call__(self, dst: memoryview, src: memoryview) -> None:
        n = src.nbytes
        if self.helpers == 0 or n < PARALLEL_COPY_MIN:
            dst[:] = src
            return
        import numpy as np  # not at import time: workers start faster without it

        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.helpers, thread_name_prefix="shoal-copy")
        d = np.frombuffer(dst, dtype=np.uint8)
        s = np.frombuffer(src, dtype=np.uint8)
        parts = self.helpers + 1
        chunk = -(-n // parts)  # parts * chunk >= n
        chunk = -(-chunk // COPY_CHUNK_ALIGN) * COPY_CHUNK_ALIGN
        futures = [self._pool.submit(np.copyto, d[i * chunk:(i + 1) * chunk],
                                     s[i * chunk:(i + 1) * chunk])
                   for i in range(1, parts) if i * chunk < n]
        np.copyto(d[:chunk], s[:chunk])
        for future in futures:
            future.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None


@dataclass(slots=True, eq=False)
class _Mapped:
    """A live holder of one pinned object, and the parsed layout of its bytes."""

    holder: weakref.ref  # the pinned numpy array every view of this read hangs off
    layout: tuple  # read_layout's (flags, (inband_pos, inband_len), [(pos, len), ...])
    value: object  # the StoredValue this read was for


class StoreClient:
    def __init__(self, store_path: str, on_release: Callable[[bytes], None]) -> None:
        self.arena = Arena(store_path, 0, create=False)
        self._on_release = on_release
        self._mapped: dict[bytes, _Mapped] = {}
        self._copy = ParallelCopy()

    def write(self, offset: int, data: Serialized) -> None:
        size = data.store_size()
        data.write_to(self.arena.view[offset : offset + size], offset, self._copy)

    def view(self, oid: bytes, offset: int, size: int, value: object = None) -> Serialized:
        """A read-only view of an object the agent pinned for us; the pin is released
        when its last view is collected.  With ``value`` (the StoredValue it was read
        for), later reads of that value reuse the pin (``cached_view``)."""
        import numpy as np

        holder = np.frombuffer(self.arena.map, dtype=np.uint8, count=size, offset=offset)
        holder.flags.writeable = False
        view = memoryview(holder)
        layout = read_layout(view)
        entry = None
        if value is not None:
            entry = _Mapped(weakref.ref(holder), layout, value)
            self._mapped[oid] = entry
        weakref.finalize(holder, self._collected, oid, entry)
        return _views(view, layout)

    def cached_view(self, oid: bytes, value: object) -> Serialized | None:
        """Fresh views of ``value``'s object if this process still maps it, else None.
        Safe from any thread: the weak reference either yields the holder (which
        then stays alive with the new views) or nothing."""
        entry = self._mapped.get(oid)
        if entry is None or entry.value is not value:
            return None
        holder = entry.holder()
        if holder is None:
            return None
        return _views(memoryview(holder), entry.layout)

    def forget(self, oids) -> None:
        """The owner freed these objects: no later read may reuse their pins."""
        mapped = self._mapped
        if mapped:
            for oid in oids:
                mapped.pop(oid, None)

    @property
    def mapped_count(self) -> int:
        """Objects this process reads through a live holder (for tests)."""
        return len(self._mapped)

    def _collected(self, oid: bytes, entry: _Mapped | None) -> None:
        if entry is not None and self._mapped.get(oid) is entry:
            self._mapped.pop(oid, None)  # a racing newer read only loses its cache slot
        self._on_release(oid)

    def close(self) -> None:
        # Views handed to the user may still exist; the mapping goes with them.
        self._mapped.clear()
        self._copy.close()
        self.arena = None  # type: ignore[assignment]


def _views(view: memoryview, layout: tuple) -> Serialized:
    flags, (inband_pos, inband_len), spans = layout
    return Serialized(view[inband_pos : inband_pos + inband_len],
                      [view[p : p + n] for p, n in spans], (), flags)
