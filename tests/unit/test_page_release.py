"""Free arena pages given back to the OS (object_store/page_release.py): the
policy's choice, the allocator's reservations, and a real tmpfs arena whose
resident pages shrink while every live object keeps its bytes."""

from __future__ import annotations

import asyncio
import os
import uuid

import numpy as np
import pytest

from shoal.node.object_store.allocator import Allocator, OutOfMemory
from shoal.node.object_store.page_release import (
    PageReleaser,
    ReleasePolicy,
    age_ranges,
    choose,
    data_ranges,
)
from shoal.objects.arena import Arena

MiB = 1 << 20


def test_reserve_takes_exactly_the_range_and_free_merges_it_back():
    a = Allocator(16 * MiB)
    first = a.allocate(4 * MiB)
    a.reserve(8 * MiB, 2 * MiB)
    assert a.used == 6 * MiB
    assert [(o, s, f) for o, s, f in a.blocks()] == [
        (0, 4 * MiB, False), (4 * MiB, 4 * MiB, True), (8 * MiB, 2 * MiB, False),
        (10 * MiB, 6 * MiB, True)]
    assert a.allocate(5 * MiB) == 10 * MiB  # first fit skips the reservation
    a.free(8 * MiB)
    a.free(first)
    assert a.largest_free() == 10 * MiB
    with pytest.raises(ValueError, match="not inside a free block"):
        a.reserve(9 * MiB, 2 * MiB)
    with pytest.raises(ValueError, match="aligned"):
        a.reserve(4097, 4096)


def test_the_high_mark_follows_the_highest_block_given_out():
    a = Allocator(16 * MiB)
    low, high = a.allocate(MiB), a.allocate(MiB)
    assert a.high_mark == 2 * MiB
    a.free(high)
    assert a.high_mark == 2 * MiB  # its pages stay touched
    a.lower_high_mark()
    assert a.high_mark == MiB
    a.free(low)
    with pytest.raises(OutOfMemory):
        a.allocate(17 * MiB)


def test_choose_gives_back_the_highest_resident_ranges_first():
    free = [(0, 4 * MiB), (8 * MiB, 512 << 10), (10 * MiB, 3 * MiB), (20 * MiB, 2 * MiB)]
    assert choose(free, 4 * MiB, 64 * MiB, MiB) == [(20 * MiB, 2 * MiB), (10 * MiB, 3 * MiB)]
    # ranges under min_block are left; the budget caps what is reserved at once
    assert choose(free, 100 * MiB, 6 * MiB, MiB) == [(20 * MiB, 2 * MiB), (10 * MiB, 3 * MiB)]
    assert choose(free, 0, 64 * MiB, MiB) == []
    assert ReleasePolicy(slack=8 * MiB).excess(resident=20 * MiB, used=4 * MiB) == 8 * MiB


def test_only_ranges_free_for_min_age_are_given_back():
    seen = {(0, MiB): 10.0, (4 * MiB, MiB): 10.9}
    old, seen2, wait = age_ranges([(0, MiB), (4 * MiB, MiB), (8 * MiB, 2 * MiB)], seen,
                                  11.0, 0.5)
    assert old == [(0, MiB)]
    assert seen2 == {(0, MiB): 10.0, (4 * MiB, MiB): 10.9, (8 * MiB, 2 * MiB): 11.0}
    assert wait == pytest.approx(0.4)
    # a range that changed (here: coalesced) is new again; gone ones are forgotten
    old, seen3, wait = age_ranges([(0, 2 * MiB)], seen2, 12.0, 0.5)
    assert old == [] and seen3 == {(0, 2 * MiB): 12.0} and wait == pytest.approx(0.5)


def test_data_ranges_finds_the_pages_a_tmpfs_file_holds(tmp_path):
    path = f"/dev/shm/shoal-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.ftruncate(fd, 16 * MiB)
        os.pwrite(fd, b"x" * MiB, 2 * MiB)
        os.pwrite(fd, b"y" * (2 * MiB), 8 * MiB)
        assert data_ranges(fd, 0, 16 * MiB) == [(2 * MiB, MiB), (8 * MiB, 2 * MiB)]
        assert data_ranges(fd, 9 * MiB, 4 * MiB) == [(9 * MiB, MiB)]
        assert data_ranges(fd, 11 * MiB, 5 * MiB) == []
    finally:
        os.close(fd)
        os.unlink(path)


def test_a_fragmented_arena_gives_back_its_free_pages_and_keeps_every_object():
    path = f"/dev/shm/shoal-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    arena = Arena(path, 64 * MiB, create=True)
    try:
        alloc = Allocator(64 * MiB)
        view = np.frombuffer(arena.map, dtype=np.uint8)
        blocks = [alloc.allocate(2 * MiB) for _ in range(24)]  # 48 MiB, all touched
        for i, offset in enumerate(blocks):
            view[offset:offset + 2 * MiB] = i
        for offset in blocks[::2]:
            alloc.free(offset)  # 24 MiB free in 2 MiB holes, still resident
        freed_calls = []
        releaser = PageReleaser(arena, alloc, ReleasePolicy(slack=4 * MiB, min_age=0),
                                allowed=lambda: 64 * MiB,
                                space_freed=lambda: freed_calls.append(alloc.used))
        assert releaser.resident() >= 48 * MiB

        async def run() -> None:
            task = releaser.start_round()
            assert task is not None
            await task

        asyncio.run(run())
        assert releaser.resident() <= alloc.used + 4 * MiB + 2 * MiB
        assert releaser.released >= 18 * MiB
        assert freed_calls == [24 * MiB]  # every reservation returned
        for i, offset in enumerate(blocks):
            if i % 2:
                assert (view[offset:offset + 2 * MiB] == i).all()
        # the holes are usable again (fresh zero pages)
        again = alloc.allocate(2 * MiB)
        view[again:again + 2 * MiB] = 7
        assert (view[again:again + 2 * MiB] == 7).all()
        del view
    finally:
        arena.unlink()
