"""Values to bytes and back: cloudpickle with pickle-5 out-of-band buffers.

A serialized value is an in-band pickle plus a list of raw buffers (numpy
arrays and anything else exporting PickleBuffer).  Small values travel inline
in messages as ``[flags, inband, [buffers]]``; large ones are written to the
shared-memory store in the layout below and read back as views, so arrays
come back zero-copy and read-only::

    u32 header_len | msgpack [flags, inband_pos, inband_len, [len...], [pos...]]
    | pad | inband | pad to 64 | buffer 0 | pad | buffer 1 | ...

Positions are from the object's start.  A large buffer is placed at the same
address modulo the page size as its source: memcpy between addresses a few
dozen bytes apart modulo 4 KiB runs at a tenth of its speed on x86 (4K
aliasing; 3.9 against 30 GB/s measured here), and readers get back the
alignment the writer's array had.

While a value is pickled, every ObjectRef inside it is collected (they are
"contained" in the new object and must stay alive as long as it does).
While a value is unpickled, refs are rebuilt attached to the process's core
worker, which then counts them as borrowed.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any

import cloudpickle

from shoal.core.serialization_context import current as _context
from shoal.exceptions import RaySystemError
from shoal.rpc.protocol import pack, unpack

ALIGN = 64
PAGE = 4096
BIG_BUFFER = 1 << 16  # buffers from this size on are placed page-congruent to their source
FLAG_ERROR = 1

_FAST_TYPES = (int, float, str, bytes, bool, type(None))


def _pad(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass(slots=True)
class Serialized:
    inband: bytes
    # Empty ones are shared tuples: a task's 3000 small returns would otherwise make
    # 6000 lists, which the cyclic GC then traverses while they live.
    buffers: list | tuple = ()  # memoryviews (cast to bytes)
    contained: list | tuple = ()  # ObjectRefs inside the value
    flags: int = 0

    @property
    def is_error(self) -> bool:
        return bool(self.flags & FLAG_ERROR)

    def data_size(self) -> int:
        return len(self.inband) + sum(b.nbytes for b in self.buffers)

    # ---- inline form -----------------------------------------------------------
    def to_inline(self) -> list:
        return [self.flags, self.inband, [bytes(b) for b in self.buffers]]

    @classmethod
    def from_inline(cls, data: list) -> Serialized:
        flags, inband, buffers = data
        return cls(inband, [memoryview(b) for b in buffers] if buffers else (), (), flags)

    # ---- shared-memory form ------------------------------------------------------
    def _header_room(self) -> int:
        # msgpack: array + 3 uints + two arrays of uints, each at most 9 bytes
        return _pad(4 + 1 + 27 + 2 * (5 + 9 * len(self.buffers)))

    def store_size(self) -> int:
        """Bytes to allocate: enough for any placement of the large buffers."""
        size = self._header_room() + _pad(len(self.inband))
        for b in self.buffers:
            size += _pad(b.nbytes) + (PAGE if b.nbytes >= BIG_BUFFER else 0)
        return size

    def write_to(self, view: memoryview, base: int = 0, copy: Any = None) -> None:
        """Write the layout into ``view``, which starts ``base`` bytes into a page-aligned
        mapping; ``copy(dst, src)`` copies each large buffer (default: one memcpy)."""
        inband_pos = pos = self._header_room()
        view[pos : pos + len(self.inband)] = self.inband
        pos = _pad(pos + len(self.inband))
        lens, positions = [], []
        for b in self.buffers:
            n = b.nbytes
            if n >= BIG_BUFFER:
                pos += (_address(b) - (base + pos)) % PAGE
                if copy is not None:
                    copy(view[pos : pos + n], b)
                else:
                    view[pos : pos + n] = b
            else:
                view[pos : pos + n] = b
            lens.append(n)
            positions.append(pos)
            pos = _pad(pos + n)
        header = pack([self.flags, inband_pos, len(self.inband), lens, positions])
        view[0:4] = len(header).to_bytes(4, "little")
        view[4 : 4 + len(header)] = header


def _address(buffer: memoryview) -> int:
    import numpy as np

    return np.frombuffer(buffer, dtype=np.uint8).__array_interface__["data"][0]


def read_layout(view: memoryview) -> tuple:
    """The shared-memory layout's header: ``(flags, (inband_pos, inband_len),
    [(pos, len) per buffer])``."""
    header_len = int.from_bytes(view[0:4], "little")
    flags, inband_pos, inband_len, lens, positions = unpack(bytes(view[4 : 4 + header_len]))
    return flags, (inband_pos, inband_len), list(zip(positions, lens, strict=True))


def read_from(view: memoryview) -> Serialized:
    """Parse the shared-memory layout; buffers are views into ``view``."""
    flags, (inband_pos, inband_len), spans = read_layout(view)
    inband = view[inband_pos : inband_pos + inband_len]
    return Serialized(inband, [view[p : p + n] for p, n in spans], (), flags)


class SerializationError(TypeError):
    pass


def serialize(value: Any, what: str = "value") -> Serialized:
    """Pickle ``value``; raises SerializationError naming it if it cannot."""
    if type(value) in _FAST_TYPES:
        return Serialized(pickle.dumps(value, protocol=5))
    buffers: list = []
    refs: list = []
    previous = _context.refs
    _context.refs = refs
    try:
        inband = cloudpickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    except Exception as exc:
        raise SerializationError(
            f"Could not serialize {what} {_describe(value)}: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        _context.refs = previous
    views = []
    for buf in buffers:
        raw = buf.raw()
        views.append(raw if raw.contiguous else memoryview(bytes(raw)))
    return Serialized(inband, views, refs)


def pickle_plain(value: Any, limit: int) -> bytes | None:
    """The pickle of an int, float, str, bool or None (no buffers, no refs) if it is
    at most ``limit`` bytes, without building a Serialized; else None.  (A task's 3000
    small returns each paid for the general path.)"""
    if type(value) in _FAST_TYPES:
        inband = pickle.dumps(value, protocol=5)
        if len(inband) <= limit:
            return inband
    return None


def serialize_error(exc: BaseException) -> Serialized:
    """An error value.  A TaskError always pickles (its cause travels in an
    envelope, see error_envelope); another unpicklable exception becomes a
    RaySystemError naming it."""
    try:
        s = serialize(exc, "error")
    except SerializationError:
        s = serialize(RaySystemError(f"{type(exc).__name__}: {exc}"), "error")
    s.flags |= FLAG_ERROR
    return s


def _describe(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:
        text = "<unrepresentable>"
    if len(text) > 200:
        text = text[:200] + "..."
    return f"{text} of type {type(value).__module__}.{type(value).__qualname__}"


def loads_detached(inband: bytes) -> Any:
    """Unpickle a value only to check that it loads (the error envelope's trial):
    the refs in it come back unattached, so nothing is counted or registered."""
    ctx = _context
    previous = ctx.rebuilt, ctx.worker, ctx.detached
    ctx.rebuilt, ctx.worker, ctx.detached = None, None, True
    try:
        return pickle.loads(inband)
    finally:
        ctx.rebuilt, ctx.worker, ctx.detached = previous


def deserialize(data: Serialized, worker: Any = None) -> Any:
    previous = _context.worker
    _context.worker = worker
    try:
        return pickle.loads(data.inband, buffers=data.buffers)
    finally:
        _context.worker = previous


def deserialize_collecting(data: Serialized, worker: Any, rebuilt: list,
                           container: bytes | None = None) -> Any:
    """Unpickle, appending the refs found to ``rebuilt`` and counting them in one
    loop command (``container``: the object whose value this is, for a get)."""
    previous = _context.rebuilt
    _context.rebuilt = rebuilt
    first = len(rebuilt)
    try:
        return deserialize(data, worker)
    except Exception as exc:
        raise _unreadable(exc, data.is_error) from exc
    finally:
        _context.rebuilt = previous
        if len(rebuilt) > first:  # a get may need registrations: wake the loop
            post = worker.post if container is not None else worker.post_lazy
            post(worker.count_rebuilt, container, rebuilt[first:])


def deserialize_values(items: list[tuple[bytes, Serialized]], worker: Any) -> list:
    """The values of a ``get`` of ``(object id, data)`` pairs, in order; raises the
    first stored error.  One unpickling context for them all; the refs rebuilt inside
    each value are counted in one loop command per value that holds any (its object
    stays in scope until their borrows are registered)."""
    ctx = _context
    previous = ctx.worker, ctx.rebuilt
    rebuilt: list = []
    ctx.worker, ctx.rebuilt = worker, rebuilt
    out = []
    counted = 0  # rebuilt[:counted] is posted
    oid = None
    loads = pickle.loads
    try:
        for oid, data in items:
            try:
                obj = loads(data.inband, buffers=data.buffers)
            except Exception as exc:
                raise _unreadable(exc, bool(data.flags & FLAG_ERROR)) from exc
            if len(rebuilt) > counted:
                worker.post(worker.count_rebuilt, oid, rebuilt[counted:])
                counted = len(rebuilt)
            if data.flags & FLAG_ERROR:
                from shoal.exceptions import TaskError

                raise obj.as_instanceof_cause() if isinstance(obj, TaskError) else obj
            out.append(obj)
        return out
    finally:
        ctx.worker, ctx.rebuilt = previous
        if len(rebuilt) > counted:  # refs of a value that failed to unpickle
            worker.post_lazy(worker.count_rebuilt, None, rebuilt[counted:])


def _unreadable(exc: Exception, is_error: bool = False) -> Exception:
    """A value that did not unpickle.  (A task's error always does: its cause
    travels in an envelope, see error_envelope; this is for values, and for
    shoal's own errors.)"""
    what = "an error" if is_error else "a value"
    return RaySystemError(f"could not deserialize {what}: {type(exc).__name__}: {exc}")


def collecting_refs() -> list | None:
    return _context.refs
