"""The pull state machine: dedup, admission against capacity, chunks, failover."""

from __future__ import annotations

from shoal.node.object_store.allocator import Allocator, OutOfMemory
from shoal.node.pull_manager import PullManager, PullState


def allocator_fn(capacity: int):
    alloc = Allocator(capacity, alignment=64)

    def allocate(oid: bytes, size: int) -> int | None:
        try:
            return alloc.allocate(size)
        except OutOfMemory:
            return None

    return alloc, allocate


def test_requests_for_one_object_share_one_pull_and_merge_sources():
    m = PullManager(chunk_size=10, max_in_flight=4)
    a, new_a = m.request(b"x", "owner", 25, ["n1"])
    b, new_b = m.request(b"x", "owner", 25, ["n2", "n1"])
    assert a is b and new_a and not new_b and a.sources == ["n1", "n2"]


def test_pulls_wait_for_space_and_never_exceed_capacity():
    alloc, allocate = allocator_fn(128)
    m = PullManager(chunk_size=64, max_in_flight=8)
    for oid in (b"a", b"b", b"c"):
        m.request(oid, "o", 64, ["n1"])
    admitted = m.admit(allocate)
    assert [p.oid for p in admitted] == [b"a", b"b"] and alloc.used == 128
    assert [p.oid for p in m.queue] == [b"c"] and m.queued_total == 1
    assert m.admit(allocate) == []  # still no room
    alloc.free(admitted[0].arena_offset)
    assert [p.oid for p in m.admit(allocate)] == [b"c"]
    assert m.queued_total == 1


def test_a_smaller_pull_may_pass_a_large_one_that_does_not_fit():
    _, allocate = allocator_fn(100)
    m = PullManager(chunk_size=64, max_in_flight=8)
    m.request(b"big", "o", 200, ["n1"])
    m.request(b"small", "o", 50, ["n1"])
    assert [p.oid for p in m.admit(allocate)] == [b"small"]


def test_chunks_are_round_robin_and_bounded_in_flight():
    _, allocate = allocator_fn(1000)
    m = PullManager(chunk_size=10, max_in_flight=3)
    m.request(b"a", "o", 30, ["n1"])
    m.request(b"b", "o", 30, ["n1"])
    m.admit(allocate)
    chunks = m.next_chunks()
    assert [(c.pull.oid, c.offset) for c in chunks] == [(b"a", 0), (b"b", 0), (b"a", 10)]
    assert m.next_chunks() == []
    done = [m.chunk_done(c) for c in chunks]
    assert done == [False, False, False]
    rest = m.next_chunks()
    assert [(c.pull.oid, c.offset, c.length) for c in rest] == [
        (b"b", 10, 10), (b"a", 20, 10), (b"b", 20, 10)]
    assert [m.chunk_done(c) for c in rest] == [False, True, True]
    assert m.pulls == {} and m.in_flight == 0


def test_a_failed_chunk_is_retried_from_the_next_source_then_the_pull_fails():
    _, allocate = allocator_fn(1000)
    m = PullManager(chunk_size=10, max_in_flight=1)
    pull, _ = m.request(b"a", "o", 10, ["n1", "n2"])
    m.admit(allocate)
    [chunk] = m.next_chunks()
    assert chunk.source == "n1"
    assert m.chunk_failed(chunk)
    [again] = m.next_chunks()
    assert (again.source, again.offset, again.length) == ("n2", 0, 10)
    assert not m.chunk_failed(again)
    assert pull.state is PullState.FAILED and pull.in_flight == 0 and m.pulls == {}


def test_unknown_size_is_sized_before_it_queues():
    _, allocate = allocator_fn(1000)
    m = PullManager(chunk_size=10, max_in_flight=1)
    pull, _ = m.request(b"a", "o", 0, ["n1"])
    assert pull.state is PullState.SIZING and m.admit(allocate) == []
    m.sized(pull, 5)
    assert m.admit(allocate) == [pull] and pull.state is PullState.ACTIVE
