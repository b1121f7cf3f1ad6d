"""Which objects leave memory, and when: the spill and eviction policy (pure).

Two questions, each one function over plain data so that it is unit-tested
without a store:

* :func:`choose_window` - *make room*: a create, restore or pull of ``need``
  bytes does not fit in any free block.  Every block of the arena, in address
  order, is a :class:`Segment` of one :class:`Movability`; the answer is the
  run of adjacent segments of at least ``need`` bytes that costs least to
  empty, where cost is the bytes that must first be written to disk (then the
  bytes dropped).  Emptying a window, rather than spilling the least recently
  used objects until some block is large enough, is what makes a fragmented
  store usable: a store 55% full whose holes are each a little too small
  spills the one or two objects between two holes, not half of its contents.
* :func:`choose_batch` - *stay under the high-water mark*: when the memory in
  use (minus what is already being written out) passes ``high_water``, the
  least recently used candidates go, oldest first: copies that are also on
  disk are dropped at once; the others are written to disk in one batch (one
  fused file) of at least ``min_batch`` bytes when there are that many, so
  the disk sees large sequential writes.  *Cold* objects (their writer said
  no reader wants them soon, and none has pinned them since) go before all
  others: LRU cannot tell a shuffle's outputs, read after it ends, from its
  merged blocks, read before it ends; both are sealed and never read yet.

Secondary copies (pulled from other nodes) are only ever dropped, never
written: their primary lives elsewhere.

A third question is how far to read ahead for a reader going through the
spill order (:func:`next_window`, :func:`choose_readahead`; the bookkeeping
of who reads what is :mod:`.readahead`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass


class Movability(enum.Enum):
    FREE = "free"  # a free block
    COMING = "coming"  # being written out right now: free once the write completes
    DROP = "drop"  # can be dropped now: a secondary copy, or a restored one also on disk
    SPILL = "spill"  # a primary copy only in memory: must be written out first
    STUCK = "stuck"  # pinned by a reader, being created or restored


@dataclass(frozen=True)
class Segment:
    offset: int
    size: int
    kind: Movability
    oid: bytes = b""
    cold: bool = False  # a SPILL segment whose writer hinted no reader wants it soon


@dataclass(frozen=True)
class Window:
    segments: tuple[Segment, ...]

    def of(self, kind: Movability) -> list[Segment]:
        return [s for s in self.segments if s.kind is kind]

    @property
    def spill_bytes(self) -> int:
        return sum(s.size for s in self.of(Movability.SPILL))


def _cost(segment: Segment) -> tuple[int, int, int]:
    """(bytes to write that readers want back, cold bytes to write, bytes to drop)."""
    if segment.kind is Movability.SPILL:
        return (0, segment.size, 0) if segment.cold else (segment.size, 0, 0)
    if segment.kind is Movability.DROP:
        return 0, 0, segment.size
    return 0, 0, 0


def choose_window(segments: Iterable[Segment], need: int) -> Window | None:
    """The cheapest run of adjacent non-STUCK segments holding ``need`` bytes,
    or None if every run is too short.  ``segments`` in address order.  Cost:
    bytes to write that are not cold, then cold bytes to write (while the
    pressure lasts they go anyway), then bytes to drop, then segments."""
    best: tuple[tuple[int, int, int, int], Window] | None = None
    run: list[Segment] = []
    for segment in [*segments, Segment(-1, 0, Movability.STUCK)]:
        if segment.kind is not Movability.STUCK:
            run.append(segment)
            continue
        found = _cheapest_in_run(run, need)
        if found is not None and (best is None or found[0] < best[0]):
            best = found
        run = []
    return None if best is None else best[1]


def _cheapest_in_run(run: list[Segment], need: int
                     ) -> tuple[tuple[int, int, int, int], Window] | None:
    """Two pointers: for each right end, the shortest window ending there."""
    best = None
    total = hot = cold = drop = 0
    left = 0
    for right, segment in enumerate(run):
        total += segment.size
        h, c, d = _cost(segment)
        hot, cold, drop = hot + h, cold + c, drop + d
        while left < right and total - run[left].size >= need:
            h, c, d = _cost(run[left])
            total, hot, cold, drop = (total - run[left].size, hot - h, cold - c, drop - d)
            left += 1
        if total >= need:
            key = (hot, cold, drop, right - left)
            if best is None or key < best[0]:
                best = (key, Window(tuple(run[left:right + 1])))
    return best


@dataclass(frozen=True)
class Candidate:
    """An object that may leave memory to bring usage under the high-water mark."""

    oid: bytes
    size: int
    last_used: int  # the table's logical clock at its last seal/pin/release
    on_disk: bool  # also has a disk copy: dropping it costs nothing
    cold: bool = False  # its writer hinted it is not read soon (and no reader pinned it yet)


@dataclass(frozen=True)
class Batch:
    drop: tuple[bytes, ...]  # drop now (already on disk)
    spill: tuple[bytes, ...]  # write out, in this order, into one file


def choose_batch(candidates: Iterable[Candidate], excess: int, min_batch: int, room: int,
                 spilling: bool) -> Batch:
    """Cold first, then least recently used first: drop or spill until ``excess`` bytes are
    gone, and make the spill batch at least ``min_batch`` bytes when the
    candidates allow.  ``room``: bytes the spill directory can take now.
    ``spilling``: a batch is already being written; then a batch smaller than
    ``min_batch`` waits (the next one may fuse with more objects)."""
    drop: list[bytes] = []
    spill: list[bytes] = []
    dropped = batch = 0
    for c in sorted(candidates, key=lambda c: (not c.cold, c.last_used)):
        covered = dropped + batch >= excess
        if covered and (batch == 0 or batch >= min_batch):
            break
        if c.on_disk:
            if not covered:  # (once covered, only the batch is filled up to min_batch)
                drop.append(c.oid)
                dropped += c.size
        elif batch + c.size <= room:
            spill.append(c.oid)
            batch += c.size
    if spill and batch < min_batch and spilling:
        spill = []
    return Batch(tuple(drop), tuple(spill))


# ---- reading ahead ---------------------------------------------------------------------
#
# A reader that walks spilled objects in the order they were spilled (the
# bench's "read back in creation order", a consumer of a stream of outputs)
# gets the objects after the one it holds restored while it works on that one,
# so the disk and the reader overlap.  The window of bytes kept ahead starts at
# two objects (at least READAHEAD_MIN) on the first step in order and doubles
# with every further step, as the kernel's page-cache read-ahead does, up to
# the largest window and the memory room the table gives it.

READAHEAD_MIN = 16 << 20
# Top-ups read at least this much (or half the window, if smaller) at a time
# while the reader still has that much ahead of it.  A reader that frees each
# 1 MiB object as it goes gives back 1 MiB per step; topping up at every step
# made one 1 MiB read per object (2,116 reads for 2,300 objects), where reads
# of neighbours in a fused file can be 16 MiB.
READAHEAD_BATCH = 16 << 20


def next_window(window: int, size: int, largest: int) -> int:
    """The read-ahead window after one more step in order by a reader that
    just used an object of ``size`` bytes (``window`` 0: its first step)."""
    if largest <= 0:
        return 0
    grown = max(2 * size, READAHEAD_MIN) if window <= 0 else 2 * window
    return min(grown, largest)


@dataclass(frozen=True)
class Following:
    """An object after the reader's position, in spill order."""

    oid: bytes
    size: int  # its block, page-aligned
    spilled: bool  # only on disk: reading ahead restores it (else in memory or on its way)


@dataclass(frozen=True)
class ReadAhead:
    restore: tuple[bytes, ...]  # the spilled objects to read now, in spill order
    covered: int  # how many of ``following`` the window now covers
    ahead: int  # bytes from the reader's position to the end of what is covered


def choose_readahead(following: Iterable[Following], ahead: int, window: int,
                     room: int) -> ReadAhead:
    """Top the window up: go through ``following`` (the objects after what is
    covered already, ``ahead`` bytes of them) until ``window`` bytes after the
    reader are covered; the spilled ones among them are restored while their
    blocks fit in ``room`` bytes.  The first that does not fit ends the plan:
    restores stay in order, so the reader never waits behind an object it
    needs later.  A plan that would read less than a batch
    (:data:`READAHEAD_BATCH`) waits, covering nothing, while the reader has a
    batch ahead and more objects follow: the next steps free more room."""
    start = ahead
    restore: list[bytes] = []
    restore_bytes = covered = 0
    more = False  # objects follow beyond the plan
    for item in following:
        if ahead >= window:
            more = True
            break
        if item.spilled:
            if item.size > room:
                more = True
                break
            room -= item.size
            restore_bytes += item.size
            restore.append(item.oid)
        ahead += item.size
        covered += 1
    batch = min(READAHEAD_BATCH, window // 2)
    if more and restore_bytes < batch <= start:
        return ReadAhead((), 0, start)
    return ReadAhead(tuple(restore), covered, ahead)
