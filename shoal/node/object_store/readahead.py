"""Who is reading spilled objects in order: the bookkeeping of read-ahead (pure).

Theory of operation
-------------------
Every object with a disk copy has a *spill sequence number*: its batch's
number, then its place in the batch, so numbers follow the order in which
objects were sent to disk, across files (``seq``).  :class:`SpillOrder`
keeps the live ones sorted; ``successor(s)`` is the next live one after
``s``, skipping objects freed since.

A *stream* is a reader going through that order.  A reader *uses* an object
when it pins it or its restore is asked for.  A use continues a stream if the
object is the successor of the stream's last object and the stream moved at
most ``SEQUENTIAL_TICKS`` table events ago; otherwise it starts a new stream
(the oldest of ``MAX_STREAMS`` is forgotten).  From the second step in a row
on, each step grows the stream's window (:func:`.policy.next_window`); the
table then tops up the objects after ``frontier`` until ``window`` bytes
after the reader are in memory or on their way
(:func:`.policy.choose_readahead`).  When free memory is short, the
stream first recycles the blocks of objects it passed that nobody pins (a
reader that keeps its refs would otherwise fill memory with copies it is done
with, and stop its own read-ahead), as the kernel recycles a sequential
reader's pages::

    spill order:  ...  [last] [ahead .......... frontier] [not yet] ...
                          ^ the reader        ^ read ahead up to here

A shuffle's reduce reads one partition of each map's output: partition j of
map m is followed, in spill order, by partition j+1 of map m (still live, it
is the next reduce's), not by partition j of map m+1, so the reduce never
steps in order and reads nothing ahead that later reduces need.  Two reduces
that read the same map's file at the same time (j and j+1) make one step each
time before they jump; read-ahead waits for a second step in a row, so they do
not start it either.  The last reduce steps in order (every other partition is
gone) and gets read-ahead, of exactly what it reads next.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field

from shoal.node.object_store.policy import next_window

# A use continues a stream only if the stream moved at most this many table
# events (seal, pin, release) ago: a reader that stopped, or one whose uses
# are far apart among other work, starts over with a small window.
SEQUENTIAL_TICKS = 8
MAX_STREAMS = 4
PASSED = 4096  # objects a stream remembers having passed (to recycle their blocks)


def spill_seq(batch_id: int, index: int) -> int:
    """The sequence number of the ``index``-th object of spill batch ``batch_id``."""
    return (batch_id << 32) | index


class SpillOrder:
    """The live objects with a disk copy, by sequence number."""

    def __init__(self) -> None:
        self._seqs: list[int] = []  # sorted
        self.oid: dict[int, bytes] = {}

    def add(self, seq: int, oid: bytes) -> None:
        if seq not in self.oid:
            bisect.insort(self._seqs, seq)
        self.oid[seq] = oid

    def discard(self, seq: int) -> None:
        if self.oid.pop(seq, None) is not None:
            del self._seqs[bisect.bisect_left(self._seqs, seq)]

    def successor(self, seq: int) -> int | None:
        index = bisect.bisect_right(self._seqs, seq)
        return self._seqs[index] if index < len(self._seqs) else None

    def after(self, seq: int):
        """``(seq, oid)`` of every live object after ``seq``, in order (lazily)."""
        index = bisect.bisect_right(self._seqs, seq)
        while index < len(self._seqs):
            nxt = self._seqs[index]
            yield nxt, self.oid[nxt]
            index = bisect.bisect_right(self._seqs, nxt)  # the list may change meanwhile

    def __len__(self) -> int:
        return len(self._seqs)


@dataclass
class Stream:
    """A reader going through the spill order."""

    last: int  # seq of the object it used last
    tick: int  # the table's clock then
    steps: int = 0  # steps in order in a row
    window: int = 0  # bytes to keep in memory after ``last`` (0: none yet)
    frontier: int = -1  # seq of the last object the window covers (>= last)
    ahead: int = 0  # bytes of the covered objects after ``last``
    passed: deque = field(default_factory=lambda: deque(maxlen=PASSED))  # seqs used, oldest first


class Streams:
    """The readers going through the spill order, most recent last."""

    def __init__(self, largest: int) -> None:
        self.largest = largest  # the largest window; 0: no read-ahead
        self.streams: list[Stream] = []

    def use(self, order: SpillOrder, seq: int, size: int, clock: int) -> Stream | None:
        """A reader used the object ``seq`` (a block of ``size`` bytes): the
        stream it moved one step in order (its window grown from the second
        step in a row), or None."""
        for stream in self.streams:
            if stream.last == seq:  # the same object again (its restore, then its pin)
                stream.tick = clock
                return None
        for stream in reversed(self.streams):
            if clock - stream.tick <= SEQUENTIAL_TICKS and order.successor(stream.last) == seq:
                self._step(stream, seq, size, clock)
                return stream
        self.streams.append(Stream(seq, clock, frontier=seq))
        self.streams[-1].passed.append(seq)
        del self.streams[:-MAX_STREAMS]
        return None

    def _step(self, stream: Stream, seq: int, size: int, clock: int) -> None:
        if seq <= stream.frontier:
            stream.ahead = max(0, stream.ahead - size)
        else:  # past what was covered: cover from here
            stream.frontier, stream.ahead = seq, 0
        stream.last, stream.tick = seq, clock
        stream.passed.append(seq)
        stream.steps += 1
        if stream.steps >= 2:
            stream.window = next_window(stream.window, size, self.largest)
        self.streams.remove(stream)
        self.streams.append(stream)
