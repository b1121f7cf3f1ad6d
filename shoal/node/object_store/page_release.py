"""Giving the pages of free arena blocks back to the OS.

Why: the arena is a tmpfs file, and a page stays resident once any process
has touched it, free or not.  Lowest-address first-fit reuses those pages, but
a shuffle fragments them: its reduce outputs find no hole among the maps'
freed pieces large enough and go above everything, so a 4 GB random_shuffle
on a 6 GB store ended with 5.0 GB of arena resident for 4.0 GB of objects.
Every process mapping the arena counts those pages in its PSS; the job does
not use them.

Policy (pure, :func:`choose`): keep at most ``slack`` bytes of resident free
pages for reuse; past that, give back free blocks from the highest address
down (first-fit places new objects low, on pages that stay resident), each at
least ``min_block`` long, clipped at the allocator's high mark (nothing above
it was ever touched) and to the ranges that hold pages (``SEEK_DATA``).  A
range is reserved in the allocator while its pages go
(``madvise(MADV_REMOVE)``, on a thread: 1 GB takes ~0.2 s here), so no object
is placed in it meanwhile.  Resident bytes are measured
(``st_blocks`` of the arena file), not tracked, so a round that finds
nothing more to give stops.

A range must have stayed free for ``min_age`` (0.5 s): a loop that puts and
frees an object reuses its block at once and keeps its pages.

Off once the store has spilled: it runs near its capacity from then on, the
agent maps every page for the restores (``Arena.prefault``), and the memory
bound there is the capacity itself.  Cost: a page given back costs a fresh
page fault when an object lands on it again (~1.2 GB/s here, against
~7 GB/s for a resident page), paid only by stores that hold more free
resident pages than the slack.
"""

from __future__ import annotations

import asyncio
import logging
import mmap
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)

MADV_REMOVE = getattr(mmap, "MADV_REMOVE", 9)
MiB = 1 << 20
DEBOUNCE = 0.25  # seconds between a freed block and the round that looks at the pages


def default_slack(capacity: int) -> int:
    """Resident free bytes kept for reuse: 1/64 of the store, 32-256 MiB."""
    return min(256 * MiB, max(32 * MiB, capacity // 64))


@dataclass(frozen=True)
class ReleasePolicy:
    slack: int
    min_block: int = 256 << 10  # a shuffle's freed pieces are ~1 MB each
    # seconds a range must have stayed free: a put/free loop reuses its block at
    # once and must keep its pages (a fresh page costs 6x a resident one)
    min_age: float = 0.5

    def excess(self, resident: int, used: int) -> int:
        """Resident free bytes beyond the slack (0 if none)."""
        return max(0, resident - used - self.slack)


def choose(resident_free: Iterable[tuple[int, int]], excess: int, budget: int,
           min_block: int) -> list[tuple[int, int]]:
    """Resident ranges of free blocks, ``(offset, size)``, to give back: highest
    first, each at least ``min_block``, until they cover ``excess`` bytes or
    reserving more would pass ``budget`` bytes."""
    chosen: list[tuple[int, int]] = []
    covered = 0
    for offset, size in sorted(resident_free, reverse=True):
        if covered >= excess:
            break
        if size < min_block or covered + size > budget:
            continue
        chosen.append((offset, size))
        covered += size
    return chosen


def age_ranges(ranges: Iterable[tuple[int, int]], seen: dict[tuple[int, int], float],
               now: float, min_age: float
               ) -> tuple[list[tuple[int, int]], dict[tuple[int, int], float], float | None]:
    """(the ranges free for at least ``min_age`` seconds, when each range was first
    seen free, seconds until the next one comes of age or None).  A range that
    changed (coalesced, partly reused) starts again."""
    first_seen = {r: seen.get(r, now) for r in ranges}
    old = [r for r, t in first_seen.items() if now - t >= min_age]
    waits = [min_age - (now - t) for t in first_seen.values() if now - t < min_age]
    return old, first_seen, (min(waits) if waits else None)


def data_ranges(fd: int, offset: int, length: int) -> list[tuple[int, int]]:
    """The ranges of ``[offset, offset + length)`` of a tmpfs file that hold pages
    (``SEEK_DATA``/``SEEK_HOLE``): a block given back earlier and not reused
    since holds none."""
    ranges = []
    end = offset + length
    while offset < end:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError:  # ENXIO: no data after offset
            break
        if start >= end:
            break
        stop = min(os.lseek(fd, start, os.SEEK_HOLE), end)
        ranges.append((start, stop - start))
        offset = stop
    return ranges


class PageReleaser:
    """Performs the policy for one store: rounds on the agent's loop, the
    ``madvise`` calls on a worker thread."""

    def __init__(self, arena, allocator, policy: ReleasePolicy,
                 allowed: Callable[[], int], space_freed: Callable[[], None]) -> None:
        self.arena = arena  # its agent-side map and path
        self.allocator = allocator
        self.policy = policy
        self.allowed = allowed  # bytes a round may hold reserved now (0: not now)
        self.space_freed = space_freed  # the reserved blocks are free again
        self.released = 0  # bytes given back, total
        self._pending: asyncio.TimerHandle | None = None
        # the round giving pages back now (held: the loop keeps only a weak reference)
        self._round: asyncio.Task | None = None
        self._seen: dict[tuple[int, int], float] = {}  # free range -> first seen free

    def resident(self) -> int:
        try:
            return os.stat(self.arena.path).st_blocks * 512
        except OSError:
            return 0

    def _resident_free(self) -> list[tuple[int, int]]:
        """The resident ranges of the free blocks below the high mark (nothing
        above it was touched)."""
        high = self.allocator.high_mark
        try:
            fd = os.open(self.arena.path, os.O_RDONLY)
        except OSError:
            return []
        try:
            return [r for o, s, is_free in self.allocator.blocks() if is_free and o < high
                    for r in data_ranges(fd, o, min(o + s, high) - o)]
        finally:
            os.close(fd)

    def block_freed(self, delay: float = DEBOUNCE) -> None:
        """A block was freed: look at the pages soon (once for a burst of frees)."""
        if self._pending is None and self._round is None:
            loop = asyncio.get_running_loop()
            self._pending = loop.call_later(delay, self.start_round)

    def start_round(self) -> asyncio.Task | None:
        """Reserve what the policy chooses and give it back (the task), or None."""
        self._pending = None
        budget = self.allowed()
        if budget <= 0 or self._round is not None or self.arena.map is None:
            return None
        excess = self.policy.excess(self.resident(), self.allocator.used)
        if excess < self.policy.min_block:
            return None
        resident_free, self._seen, wait = age_ranges(
            self._resident_free(), self._seen, time.monotonic(), self.policy.min_age)
        blocks = choose(resident_free, excess, budget, self.policy.min_block)
        if wait is not None and not blocks:
            self.block_freed(max(wait, DEBOUNCE))  # look again when the next comes of age
        log.debug("page release: excess %d, budget %d, %d free ranges of age, %d chosen",
                  excess, budget, len(resident_free), len(blocks))
        if not blocks:
            return None
        for offset, length in blocks:
            self.allocator.reserve(offset, length)
        self._round = asyncio.get_running_loop().create_task(self._give_back(blocks))
        return self._round

    async def _give_back(self, blocks: list[tuple[int, int]]) -> None:
        before = self.resident()
        try:
            await asyncio.to_thread(self._remove, blocks)
        finally:
            gained = max(0, before - self.resident())
            self.released += gained
            top = max(offset + length for offset, length in blocks)
            for offset, _ in blocks:
                self.allocator.free(offset)
            if top >= self.allocator.high_mark:  # the highest block went: nothing above
                self.allocator.lower_high_mark()
            self.space_freed()  # (its own block_freed() is ignored: still running)
            self._round = None
        if gained >= self.policy.min_block:
            self.block_freed()  # more may be resident: another round soon

    def _remove(self, blocks: list[tuple[int, int]]) -> None:
        for offset, length in blocks:
            try:
                self.arena.map.madvise(MADV_REMOVE, offset, length)
            except (OSError, ValueError) as exc:  # best effort: the pages stay
                log.debug("giving back %d bytes at %d failed: %s", length, offset, exc)
