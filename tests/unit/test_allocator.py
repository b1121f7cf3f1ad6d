"""Unit tests for shoal.node.allocator: lowest-address first-fit with coalescing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.node.object_store.allocator import ALIGNMENT, Allocator, OutOfMemory, align

A = ALIGNMENT


def free_blocks(alloc: Allocator) -> list[tuple[int, int]]:
    return [(off, alloc._free_sizes[off]) for off in alloc._free_offsets]


def check_invariants(alloc: Allocator) -> None:
    """Structural invariants that must hold after every operation."""
    frees = free_blocks(alloc)
    assert set(alloc._free_offsets) == set(alloc._free_sizes)
    assert alloc._free_offsets == sorted(alloc._free_offsets)
    used = sorted(alloc._allocated.items())
    assert alloc.used == sum(size for _, size in used)
    assert alloc.used + sum(size for _, size in frees) == alloc.capacity
    # Free blocks and allocated blocks tile [0, capacity) without overlap.
    blocks = sorted([(o, s, "free") for o, s in frees] + [(o, s, "used") for o, s in used])
    pos = 0
    for offset, size, _ in blocks:
        assert offset == pos, f"gap or overlap at {offset} (expected {pos})"
        assert size > 0 and size % A == 0 and offset % A == 0
        pos += size
    assert pos == alloc.capacity
    # Fully coalesced: no two free blocks touch.
    for (o1, s1), (o2, _) in zip(frees, frees[1:], strict=False):
        assert o1 + s1 < o2


# ---- align ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, expected", [(0, 0), (1, ALIGNMENT), (ALIGNMENT - 1, ALIGNMENT), (ALIGNMENT, ALIGNMENT),
                    (ALIGNMENT + 1, 2 * ALIGNMENT), (10 * ALIGNMENT - 5, 10 * ALIGNMENT)]
)
def test_align(n, expected):
    assert align(n) == expected


def test_align_custom_alignment():
    assert align(5, 8) == 8
    assert align(16, 8) == 16


# ---- construction --------------------------------------------------------------------


def test_capacity_rounded_down_to_alignment():
    alloc = Allocator(15 * A + 1000)
    assert alloc.capacity == 15 * A
    assert alloc.largest_free() == 15 * A
    assert alloc.used == 0
    check_invariants(alloc)


@pytest.mark.parametrize("capacity", [0, 1, ALIGNMENT - 1])
def test_capacity_below_alignment_has_no_space(capacity):
    alloc = Allocator(capacity)
    assert alloc.capacity == 0
    assert alloc.largest_free() == 0
    with pytest.raises(OutOfMemory):
        alloc.allocate(1)


# ---- allocate ------------------------------------------------------------------------


def test_blocks_are_aligned_and_rounded_up():
    alloc = Allocator(64 * A)
    a = alloc.allocate(1)
    b = alloc.allocate(A + 1)
    c = alloc.allocate(0)  # zero-size still gets a distinct block
    assert (a, b, c) == (0, A, 3 * A)
    assert alloc.block_size(a) == A
    assert alloc.block_size(b) == 2 * A
    assert alloc.block_size(c) == A
    assert alloc.used == 4 * A
    check_invariants(alloc)


def test_allocations_are_packed_from_lowest_address():
    alloc = Allocator(16 * A)
    offsets = [alloc.allocate(A) for _ in range(16)]
    assert offsets == [i * A for i in range(16)]
    assert alloc.used == alloc.capacity
    assert alloc.largest_free() == 0
    check_invariants(alloc)


def test_whole_capacity_in_one_block():
    alloc = Allocator(8 * A)
    assert alloc.allocate(8 * A) == 0
    with pytest.raises(OutOfMemory):
        alloc.allocate(1)


def test_out_of_memory_reports_aligned_size_and_changes_nothing():
    alloc = Allocator(4 * A)
    alloc.allocate(A)
    before = (free_blocks(alloc), dict(alloc._allocated), alloc.used)
    with pytest.raises(OutOfMemory) as info:
        alloc.allocate(3 * A + 1)
    assert info.value.args == (4 * A,)
    assert (free_blocks(alloc), dict(alloc._allocated), alloc.used) == before


def test_out_of_memory_when_free_space_is_fragmented():
    alloc = Allocator(4 * A)
    blocks = [alloc.allocate(A) for _ in range(4)]
    alloc.free(blocks[0])
    alloc.free(blocks[2])
    assert alloc.capacity - alloc.used == 2 * A
    assert alloc.largest_free() == A
    with pytest.raises(OutOfMemory):
        alloc.allocate(2 * A)
    check_invariants(alloc)


# ---- first fit, lowest address ---------------------------------------------------------


def test_freed_low_block_is_reused_before_higher_space():
    alloc = Allocator(100 * A)
    a = alloc.allocate(A)
    alloc.allocate(A)
    alloc.free(a)
    # Plenty of never-touched space above, but the hole at 0 comes first.
    assert alloc.allocate(A) == a == 0


def test_first_fit_not_best_fit():
    alloc = Allocator(10 * A)
    blocks = [alloc.allocate(2 * A), alloc.allocate(A), alloc.allocate(A), alloc.allocate(A)]
    # holes: [0, 2A) of size 2A, then [3A, 4A) of size A (an exact fit)
    alloc.free(blocks[0])
    alloc.free(blocks[2])
    assert free_blocks(alloc) == [(0, 2 * A), (3 * A, A), (5 * A, 5 * A)]
    # Lowest address wins even though the hole at 3A would be an exact fit.
    assert alloc.allocate(A) == 0
    assert free_blocks(alloc) == [(A, A), (3 * A, A), (5 * A, 5 * A)]
    check_invariants(alloc)


def test_hole_too_small_is_skipped():
    alloc = Allocator(10 * A)
    a = alloc.allocate(A)
    alloc.allocate(A)
    alloc.free(a)
    assert alloc.allocate(2 * A) == 2 * A  # the A-sized hole at 0 is too small
    assert alloc.allocate(A) == 0  # ...but is used by the next small request
    check_invariants(alloc)


def test_split_remainder_stays_in_address_order():
    alloc = Allocator(10 * A)
    a = alloc.allocate(4 * A)
    alloc.allocate(A)
    alloc.free(a)
    assert alloc.allocate(A) == 0
    assert alloc.allocate(A) == A  # the remainder of the split hole, before higher space
    check_invariants(alloc)


# ---- free and coalescing ---------------------------------------------------------------


def test_free_coalesces_with_following_block():
    alloc = Allocator(4 * A)
    a = alloc.allocate(A)
    b = alloc.allocate(A)
    alloc.free(b)  # merges with the tail [2A, 4A)
    assert free_blocks(alloc) == [(A, 3 * A)]
    alloc.free(a)
    assert free_blocks(alloc) == [(0, 4 * A)]
    check_invariants(alloc)


def test_free_coalesces_with_preceding_block():
    alloc = Allocator(3 * A)
    a, b, c = (alloc.allocate(A) for _ in range(3))
    alloc.free(a)
    alloc.free(b)
    assert free_blocks(alloc) == [(0, 2 * A)]
    assert alloc.largest_free() == 2 * A
    alloc.free(c)
    assert free_blocks(alloc) == [(0, 3 * A)]


def test_free_coalesces_both_neighbours_at_once():
    alloc = Allocator(5 * A)
    blocks = [alloc.allocate(A) for _ in range(5)]
    alloc.free(blocks[1])
    alloc.free(blocks[3])
    assert free_blocks(alloc) == [(A, A), (3 * A, A)]
    alloc.free(blocks[2])
    assert free_blocks(alloc) == [(A, 3 * A)]
    assert alloc.allocate(3 * A) == A
    check_invariants(alloc)


def test_free_without_neighbours_creates_separate_hole():
    alloc = Allocator(5 * A)
    blocks = [alloc.allocate(A) for _ in range(5)]
    alloc.free(blocks[2])
    assert free_blocks(alloc) == [(2 * A, A)]
    alloc.free(blocks[0])
    assert free_blocks(alloc) == [(0, A), (2 * A, A)]
    alloc.free(blocks[4])
    assert free_blocks(alloc) == [(0, A), (2 * A, A), (4 * A, A)]
    check_invariants(alloc)


def test_free_everything_returns_one_block_of_full_capacity():
    alloc = Allocator(10 * A + 5)
    blocks = [alloc.allocate(n) for n in (1, 100, 64, 200, 3)]
    for off in reversed(blocks):
        alloc.free(off)
    assert alloc.used == 0
    assert free_blocks(alloc) == [(0, alloc.capacity)]


def test_free_unknown_or_twice_raises_key_error():
    alloc = Allocator(4 * A)
    a = alloc.allocate(A)
    with pytest.raises(KeyError):
        alloc.free(A)  # never allocated
    with pytest.raises(KeyError):
        alloc.free(a + 1)  # inside a block, not its start
    alloc.free(a)
    with pytest.raises(KeyError):
        alloc.free(a)
    assert alloc.used == 0
    check_invariants(alloc)


def test_block_size_of_unknown_offset_raises():
    alloc = Allocator(4 * A)
    with pytest.raises(KeyError):
        alloc.block_size(0)


# ---- property test -------------------------------------------------------------------

_ops = st.lists(
    st.one_of(
        st.tuples(st.just("alloc"), st.integers(0, 5 * A)),
        st.tuples(st.just("free"), st.integers(0, 10_000)),
    ),
    max_size=60,
)


@settings(max_examples=120, deadline=None, database=None)
@given(capacity=st.integers(0, 40 * A), ops=_ops, free_order=st.randoms(use_true_random=False))
def test_never_overlaps_and_used_returns_to_zero(capacity, ops, free_order):
    alloc = Allocator(capacity)
    live: dict[int, int] = {}  # offset -> requested size
    for op, arg in ops:
        if op == "alloc":
            fits = any(size >= align(max(arg, 1)) for size in alloc._free_sizes.values())
            try:
                offset = alloc.allocate(arg)
            except OutOfMemory:
                assert not fits, "OutOfMemory although a large enough free block exists"
                continue
            assert fits
            assert offset % A == 0
            assert 0 <= offset and offset + arg <= alloc.capacity
            assert alloc.block_size(offset) == align(max(arg, 1))
            # First fit at the lowest address: no lower free block was big enough.
            for hole, size in free_blocks(alloc):
                if hole < offset:
                    assert size < alloc.block_size(offset), "a lower free block was big enough"
            for other in live:
                assert (
                    offset + alloc.block_size(offset) <= other
                    or other + alloc.block_size(other) <= offset
                )
            live[offset] = arg
        elif live:
            offset = sorted(live)[arg % len(live)]
            alloc.free(offset)
            del live[offset]
        check_invariants(alloc)

    remaining = sorted(live)
    free_order.shuffle(remaining)
    for offset in remaining:
        alloc.free(offset)
        check_invariants(alloc)
    assert alloc.used == 0
    assert free_blocks(alloc) == ([(0, alloc.capacity)] if alloc.capacity else [])
    assert alloc.largest_free() == alloc.capacity
