"""First-fit allocator over one shared-memory arena.

Why first-fit at the lowest address: the arena is a tmpfs file whose pages
cost ~0.5 GB/s to fault in the first time but copy at 5-7 GB/s once mapped, so
we want every new object to land on pages that earlier objects already
touched.  Lowest-address first-fit keeps the touched prefix dense and reused.

Lowest-address first-fit fragments under some workloads: a shuffle's map
outputs (16 partitions each, laid out side by side) freed column by column
leave holes of 14 partitions' size everywhere when a reduce output the size of
16 is asked for.  The allocator does not move objects; the object table
(:mod:`.table`, :func:`.policy.choose_window`) makes a hole by spilling or
evicting the few objects in the cheapest window instead.

Free blocks are kept in two structures: a sorted list of offsets (for
coalescing neighbours on free) and a dict offset -> size.  Pure data structure:
no I/O, unit-tested directly.
"""

from __future__ import annotations

import bisect

# Blocks start and end at page boundaries: spill writes and restores use O_DIRECT
# straight from and into the arena, which needs page-aligned buffers and lengths
# (objects here are > 100 KiB, the inline threshold: at most 4% is padding).
ALIGNMENT = 4096


def align(n: int, alignment: int = ALIGNMENT) -> int:
    return (n + alignment - 1) // alignment * alignment


class OutOfMemory(Exception):
    pass


class Allocator:
    def __init__(self, capacity: int, alignment: int = ALIGNMENT) -> None:
        self.alignment = alignment
        self.capacity = capacity - capacity % alignment
        self._free_offsets: list[int] = [0] if self.capacity else []
        self._free_sizes: dict[int, int] = {0: self.capacity} if self.capacity else {}
        self._allocated: dict[int, int] = {}
        self.used = 0
        # the end of the highest block ever given out since the last lower_high_mark():
        # no page above it was touched through this allocator
        self.high_mark = 0

    def allocate(self, size: int) -> int:
        """Return the offset of a block of at least ``size`` bytes."""
        size = align(max(size, 1), self.alignment)
        for index, offset in enumerate(self._free_offsets):
            block = self._free_sizes[offset]
            if block >= size:
                del self._free_offsets[index]
                del self._free_sizes[offset]
                if block > size:
                    rest = offset + size
                    self._free_offsets.insert(index, rest)
                    self._free_sizes[rest] = block - size
                self._allocated[offset] = size
                self.used += size
                self.high_mark = max(self.high_mark, offset + size)
                return offset
        raise OutOfMemory(size)

    def reserve(self, offset: int, size: int) -> None:
        """Take exactly ``[offset, offset + size)``, which must lie in one free
        block, as an allocated block (``free(offset)`` returns it)."""
        if size <= 0 or offset % self.alignment or size % self.alignment:
            raise ValueError(f"reserve({offset}, {size}): not whole aligned pages")
        index = bisect.bisect_right(self._free_offsets, offset) - 1
        start = self._free_offsets[index] if index >= 0 else -1
        block = self._free_sizes.get(start, 0)
        if start < 0 or offset + size > start + block:
            raise ValueError(f"reserve({offset}, {size}): not inside a free block")
        del self._free_offsets[index]
        del self._free_sizes[start]
        for piece_start, piece_end in ((offset + size, start + block), (start, offset)):
            if piece_end > piece_start:  # inserted in address order: the higher one first
                self._free_offsets.insert(index, piece_start)
                self._free_sizes[piece_start] = piece_end - piece_start
        self._allocated[offset] = size
        self.used += size

    def lower_high_mark(self) -> None:
        """After the pages above the highest allocated block were given back."""
        self.high_mark = max((o + s for o, s in self._allocated.items()), default=0)

    def free(self, offset: int) -> None:
        size = self._allocated.pop(offset)
        self.used -= size
        index = bisect.bisect_left(self._free_offsets, offset)
        # merge with the following block
        if index < len(self._free_offsets) and self._free_offsets[index] == offset + size:
            nxt = self._free_offsets.pop(index)
            size += self._free_sizes.pop(nxt)
        # merge with the preceding block
        if index > 0:
            prev = self._free_offsets[index - 1]
            if prev + self._free_sizes[prev] == offset:
                self._free_sizes[prev] += size
                return
        self._free_offsets.insert(index, offset)
        self._free_sizes[offset] = size

    def largest_free(self) -> int:
        return max(self._free_sizes.values(), default=0)

    def fits(self, size: int) -> bool:
        size = align(max(size, 1), self.alignment)
        return any(block >= size for block in self._free_sizes.values())

    def blocks(self) -> list[tuple[int, int, bool]]:
        """Every block in address order: ``(offset, size, is_free)``."""
        out = [(o, s, False) for o, s in self._allocated.items()]
        out += [(o, self._free_sizes[o], True) for o in self._free_offsets]
        out.sort()
        return out

    def block_size(self, offset: int) -> int:
        return self._allocated[offset]
