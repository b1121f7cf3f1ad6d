"""The shared-memory window: this process's mapping of its node's object store.

Writes: ask the agent for space (STORE_CREATE), copy straight into our own
mapping of the arena, then STORE_SEAL.  Reads: STORE_GET pins the object for
us and returns its offset; we hand out read-only views of our mapping.  A pin
is released when the last view of that read is garbage-collected: the views
all hang off one numpy "holder" array whose finalizer posts STORE_RELEASE.

An object larger than the whole store lives in a file of its own (the agent
answers with its path instead of an offset, see :mod:`shoal.objects.arena`):
we map that file for the write, and for each read (never reused).

Reading again what we already map
---------------------------------
While we hold a pin the object's bytes stay in place, and they never change
(sealed objects are immutable).  So a second ``get`` of an object we own needs
no pin of its own: ``cached_view`` hands out fresh views of the live holder (a
dict lookup and a weak-reference call, no round trip to the agent).  The record
of a holder (``_Mapped``) holds it weakly, so it never keeps views alive.  When
the holder is collected its pin is kept ``IDLE_PIN_S`` longer (``_idle``), so a
loop that gets and drops the same object reuses it too; then the loop gives it
back.  The owner freeing the object (``forget``) drops both at once.  A pin
also names the ``StoredValue`` it was read for: a value replaced since (a
rebuilt object) misses and is pinned afresh.  Only objects this process owns
are reused: it alone learns when they are freed.

    get -> STORE_GET: pin, holder H1 -------- views of H1 ---------+
    get again, H1 alive: views of H1 (no request)                  |
    H1 collected: pin idle ----------------------------------------+
    get within IDLE_PIN_S: new holder H2 on the same pin           |
    no get for IDLE_PIN_S, or the owner frees it: STORE_RELEASE <--+
"""

from __future__ import annotations

import mmap
import os
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from shoal.core.serialization import Serialized, read_layout
from shoal.objects.arena import Arena

PARALLEL_COPY_MIN = 8 << 20  # below this a second thread costs more than it saves
COPY_CHUNK_ALIGN = 1 << 16  # chunks start on page (and huge-ish) boundaries
IDLE_PIN_S = 0.05  # a pin whose views are all gone is kept this long for a next get


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
class _Pin:
    """One pin the agent holds for us on an object we own, and how to read it."""

    offset: int
    size: int
    layout: tuple  # read_layout's (flags, (inband_pos, inband_len), [(pos, len), ...])
    value: object  # the StoredValue it was read for: a replaced value misses


@dataclass(slots=True, eq=False)
class _Mapped:
    """A pin with a live holder (the numpy array every view of the read hangs off)."""

    holder: weakref.ref
    pin: _Pin


class ShmWindow:
    def __init__(self, store_path: str, on_release: Callable[[bytes], None],
                 later: Callable[..., None] | None = None) -> None:
        """``on_release(oid)`` gives one pin back to the agent; ``later(delay, fn,
        *args)`` runs ``fn(*args)`` on the io loop after ``delay`` seconds (without
        it, pins go back at once when their views do)."""
        self.arena = Arena(store_path, 0, create=False)
        self._on_release = on_release
        self._later = later
        self._mapped: dict[bytes, _Mapped] = {}  # pins with live views
        self._idle: dict[bytes, _Pin] = {}  # pins whose views are gone, kept IDLE_PIN_S
        self._copy = ParallelCopy()

    def write(self, where: int | list, data: Serialized) -> None:
        """``where``: the arena offset, or a file location ``[path, size, 0]``."""
        size = data.store_size()
        if isinstance(where, int):
            data.write_to(self.arena.view[where : where + size], where, self._copy)
            return
        mapping = Arena(where[0], 0, create=False)
        view = mapping.view[:size]
        try:
            data.write_to(view, 0, self._copy)
        finally:
            view.release()
            mapping.view.release()
            try:
                mapping.map.close()
            except BufferError:
                pass  # a view is still alive somewhere: the mapping goes with it

    def view(self, oid: bytes, where: int | str, size: int, file_offset: int = 0,
             value: object = None, sparse: bool = False) -> Serialized:
        """A read-only view of ``size`` bytes the agent pinned for us, at arena offset
        ``where`` (or at ``file_offset`` of the file ``where``: a location's fields in
        order); the pin is released when its last view is collected.  With ``value``
        (the StoredValue of an object we own, in the arena), later reads of that value
        reuse the pin (``cached_view``).  ``sparse``: the reader touches little of
        a file location, so the kernel reads only the pages touched (MADV_RANDOM;
        its read-ahead took 50-58 MB of a 62.5 MB object for a 64-row sample)."""
        import numpy as np

        if isinstance(where, str):
            with open(where, "rb") as f:
                source = mmap.mmap(f.fileno(), size, mmap.MAP_SHARED, mmap.PROT_READ,
                                   offset=file_offset)
            if sparse:
                source.madvise(mmap.MADV_RANDOM)
            where, value = 0, None
        else:
            source = self.arena.map
        holder = np.frombuffer(source, dtype=np.uint8, count=size, offset=where)
        view = memoryview(holder)
        layout = read_layout(view)
        pin = None if value is None else _Pin(where, size, layout, value)
        return self._hold(oid, holder, layout, pin)

    def cached_view(self, oid: bytes, value: object) -> Serialized | None:
        """Fresh views of ``value``'s object if we still hold a pin on it, else None.
        Safe from any thread: the weak reference yields the holder (which then stays
        alive with the new views) or nothing, and an idle pin is taken by whoever
        pops it first (the reader, or the loop giving it back)."""
        entry = self._mapped.get(oid)
        if entry is not None and entry.pin.value is value:
            holder = entry.holder()
            if holder is not None:
                return _views(memoryview(holder), entry.pin.layout)
        pin = self._idle.get(oid)
        if pin is None or pin.value is not value:
            return None
        taken = self._idle.pop(oid, None)
        if taken is not pin:  # the loop gave it back just now (or a newer one came)
            if taken is not None:
                self._idle[oid] = taken
            return None
        import numpy as np

        holder = np.frombuffer(self.arena.map, dtype=np.uint8, count=pin.size,
                               offset=pin.offset)
        return self._hold(oid, holder, pin.layout, pin)

    def forget(self, oids) -> None:
        """The owner freed these objects: no later read may reuse their pins, and the
        idle ones go back now."""
        mapped, idle = self._mapped, self._idle
        if not (mapped or idle):
            return
        for oid in oids:
            mapped.pop(oid, None)
            if idle.pop(oid, None) is not None:
                self._on_release(oid)

    @property
    def mapped_count(self) -> int:
        """Objects whose pins this process keeps for reuse (for tests)."""
        return len(self._mapped) + len(self._idle)

    def _hold(self, oid: bytes, holder, layout: tuple, pin: _Pin | None) -> Serialized:
        """Views of a newly made ``holder``; its collection hands the pin on."""
        holder.flags.writeable = False
        entry = None
        if pin is not None:
            entry = self._mapped[oid] = _Mapped(weakref.ref(holder), pin)
        weakref.finalize(holder, self._collected, oid, entry)
        return _views(memoryview(holder), layout)

    def _collected(self, oid: bytes, entry: _Mapped | None) -> None:
        """A holder's last view is gone (any thread, maybe inside the GC)."""
        if entry is not None and self._mapped.get(oid) is entry:
            self._mapped.pop(oid, None)  # a racing newer read only loses its cache slot
        if entry is None or self._later is None or self.arena is None:
            self._on_release(oid)
            return
        # Keep the pin a moment: a get of the same object soon after (a loop that
        # drops each result) reuses it instead of a round trip to the agent.
        older = self._idle.pop(oid, None)
        if older is not None:
            self._on_release(oid)  # two reads' pins: one is enough to keep
        self._idle[oid] = entry.pin
        self._later(IDLE_PIN_S, self._expire, oid, entry.pin)

    def _expire(self, oid: bytes, pin: _Pin) -> None:
        """Loop thread: give back ``pin`` unless a reader took it meanwhile."""
        taken = self._idle.pop(oid, None)
        if taken is pin:
            self._on_release(oid)
        elif taken is not None:
            self._idle[oid] = taken  # a newer idle pin: its own expiry gives it back

    def close(self) -> None:
        # Views handed to the user may still exist; the mapping goes with them.  Our
        # pins, idle ones included, go with the connection to the agent.
        self._mapped.clear()
        self._idle.clear()
        self._copy.close()
        self.arena = None  # type: ignore[assignment]


def _views(view: memoryview, layout: tuple) -> Serialized:
    flags, (inband_pos, inband_len), spans = layout
    return Serialized(view[inband_pos : inband_pos + inband_len],
                      [view[p : p + n] for p, n in spans], (), flags)
