"""Pulling objects from other nodes: admission control and chunk scheduling,
without I/O.

Theory of operation
-------------------
A node agent pulls an object when a local reader needs it and the local store
has no copy.  Every pull is one :class:`Pull` record, keyed by object id, so
concurrent readers of the same object share one transfer (deduplication)::

    SIZING --size known--> QUEUED --space allocated--> ACTIVE --all bytes--> DONE
       \\                     \\                          \\--no source left--> FAILED
        \\---------------------\\--no source / too big------------------------/

* **SIZING**: the reader did not know the size (a task argument carries only
  the node id); the I/O layer asks a source for it.
* **QUEUED**: waiting for room in the local store.  :meth:`PullManager.admit`
  walks the queue in order and asks the injected ``allocate(oid, size)`` for
  space; a pull that does not fit stays queued while smaller ones behind it may
  go.  So the bytes being pulled at any time never exceed what the store can
  hold: pulls wait, they never overrun memory.
* **ACTIVE**: the object is allocated (unsealed) in the arena.  It is cut into
  chunks of ``chunk_size``; :meth:`PullManager.next_chunks` hands out at most
  ``max_in_flight`` chunks at a time over all pulls, round-robin between pulls
  so one large object does not starve a small one.  Each chunk is read from
  the pull's current source straight into the arena at its offset.
* A failed chunk is retried from the next source; when no source is left the
  pull FAILS (the I/O layer frees the allocation and tells the readers).

The I/O layer (:mod:`shoal.node.object_transfer`) calls ``admit`` after every
free, ``next_chunks`` after every state change, and ``chunk_done`` /
``chunk_failed`` as chunks land.  Nothing here touches a socket or a clock.
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Callable
from dataclasses import dataclass, field

DEFAULT_CHUNK_SIZE = 8 << 20
DEFAULT_MAX_IN_FLIGHT = 4


class PullState(enum.Enum):
    SIZING = "sizing"
    QUEUED = "queued"
    ACTIVE = "active"
    DONE = "done"
    FAILED = "failed"


@dataclass(eq=False)
class Pull:
    """One object being pulled.  ``sources`` are node ids holding a copy; the
    first one is the current source."""

    oid: bytes
    owner: str
    size: int  # -1 while unknown (SIZING)
    sources: list[str]
    state: PullState = PullState.QUEUED
    arena_offset: int = -1  # set on admission
    next_offset: int = 0  # the next byte not yet handed out as a chunk
    retry: list[tuple[int, int]] = field(default_factory=list)  # failed chunks to redo
    in_flight: int = 0
    received: int = 0
    waited: bool = False  # had to queue for space at least once
    error: str = ""
    full: bool = False  # failed for want of room (the readers get ObjectStoreFullError)

    @property
    def source(self) -> str | None:
        return self.sources[0] if self.sources else None


@dataclass(frozen=True)
class Chunk:
    pull: Pull
    source: str
    offset: int  # within the object
    length: int


class PullManager:
    """State of every pull on one node.  Mutates; event-loop thread only."""

    def __init__(self, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 max_in_flight: int = DEFAULT_MAX_IN_FLIGHT) -> None:
        if chunk_size <= 0 or max_in_flight <= 0:
            raise ValueError("chunk_size and max_in_flight must be positive")
        self.chunk_size = chunk_size
        self.max_in_flight = max_in_flight
        self.pulls: dict[bytes, Pull] = {}
        self.queue: collections.deque[Pull] = collections.deque()  # QUEUED, in order
        self.active: collections.deque[Pull] = collections.deque()  # round-robin order
        self.in_flight = 0
        self.queued_total = 0  # pulls that had to wait for space (statistics)

    # ---- requests -------------------------------------------------------------
    def request(self, oid: bytes, owner: str, size: int, sources: list[str]) -> tuple[Pull, bool]:
        """The pull of ``oid``, and True if it is new (an existing one is shared;
        new sources are added to it)."""
        pull = self.pulls.get(oid)
        if pull is not None:
            for source in sources:
                if source not in pull.sources:
                    pull.sources.append(source)
            return pull, False
        state = PullState.QUEUED if size > 0 else PullState.SIZING
        pull = Pull(oid, owner, size if size > 0 else -1, list(dict.fromkeys(sources)),
                    state=state)
        self.pulls[oid] = pull
        if state is PullState.QUEUED:
            self.queue.append(pull)
        return pull, True

    def sized(self, pull: Pull, size: int) -> None:
        """SIZING -> QUEUED once a source told us the size."""
        if pull.state is PullState.SIZING:
            pull.size = size
            pull.state = PullState.QUEUED
            self.queue.append(pull)

    def source_failed(self, pull: Pull) -> bool:
        """The current source does not have the object (or is unreachable):
        move to the next; False (and FAILED) if none is left."""
        if pull.sources:
            pull.sources.pop(0)
        if pull.sources:
            return True
        self._fail(pull, "no node that was said to hold the object has it")
        return False

    # ---- admission ------------------------------------------------------------
    def admit(self, allocate: Callable[[bytes, int], int | None]) -> list[Pull]:
        """Allocate space for queued pulls, in order; ``allocate`` returns the
        arena offset or None when there is no room now.  Returns the pulls that
        became ACTIVE."""
        admitted = []
        waiting: collections.deque[Pull] = collections.deque()
        while self.queue:
            pull = self.queue.popleft()
            if pull.state is not PullState.QUEUED:
                continue
            offset = allocate(pull.oid, pull.size)
            if offset is None:
                if not pull.waited:
                    pull.waited = True
                    self.queued_total += 1
                waiting.append(pull)
                continue
            pull.arena_offset = offset
            pull.state = PullState.ACTIVE
            self.active.append(pull)
            admitted.append(pull)
        self.queue = waiting
        return admitted

    # ---- chunks -----------------------------------------------------------------
    def next_chunks(self) -> list[Chunk]:
        """Chunks to start now (at most ``max_in_flight`` in flight in total)."""
        out = []
        while self.in_flight < self.max_in_flight and self.active:
            progressed = False
            for _ in range(len(self.active)):
                if self.in_flight >= self.max_in_flight:
                    break
                pull = self.active[0]
                self.active.rotate(-1)
                chunk = self._take_chunk(pull)
                if chunk is not None:
                    out.append(chunk)
                    progressed = True
            if not progressed:
                break
        return out

    def _take_chunk(self, pull: Pull) -> Chunk | None:
        if pull.state is not PullState.ACTIVE or pull.source is None:
            return None
        if pull.retry:
            offset, length = pull.retry.pop(0)
        elif pull.next_offset < pull.size:
            offset = pull.next_offset
            length = min(self.chunk_size, pull.size - offset)
            pull.next_offset = offset + length
        else:
            return None
        pull.in_flight += 1
        self.in_flight += 1
        return Chunk(pull, pull.source, offset, length)

    def chunk_done(self, chunk: Chunk) -> bool:
        """A chunk landed; True when its pull is complete (DONE)."""
        pull = chunk.pull
        self._landed(chunk)
        if pull.state is not PullState.ACTIVE:
            return False
        pull.received += chunk.length
        if pull.received >= pull.size and not pull.in_flight and not pull.retry:
            pull.state = PullState.DONE
            self._forget(pull)
            return True
        return False

    def chunk_failed(self, chunk: Chunk) -> bool:
        """A chunk could not be read from its source: retry it from the next
        source.  Returns False when the pull FAILED (no source left)."""
        pull = chunk.pull
        self._landed(chunk)
        if pull.state is not PullState.ACTIVE:
            return False
        pull.retry.append((chunk.offset, chunk.length))
        if pull.source == chunk.source:
            return self.source_failed(pull)
        return True

    def _landed(self, chunk: Chunk) -> None:
        chunk.pull.in_flight -= 1
        self.in_flight -= 1

    # ---- ending ------------------------------------------------------------------
    def fail(self, pull: Pull, error: str) -> None:
        self._fail(pull, error)

    def _fail(self, pull: Pull, error: str) -> None:
        if pull.state in (PullState.DONE, PullState.FAILED):
            return
        pull.state = PullState.FAILED
        pull.error = error
        self._forget(pull)

    def _forget(self, pull: Pull) -> None:
        if self.pulls.get(pull.oid) is pull:
            del self.pulls[pull.oid]
        if pull in self.active:
            self.active.remove(pull)
        if pull in self.queue:
            self.queue.remove(pull)

    def bytes_active(self) -> int:
        return sum(p.size for p in self.active)
