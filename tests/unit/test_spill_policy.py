"""Unit tests for shoal.node.object_store.policy: which objects leave memory."""

from __future__ import annotations

from shoal.node.object_store.policy import (
    Candidate,
    Movability,
    Segment,
    choose_batch,
    choose_window,
)

F, C, D, S, X = (Movability.FREE, Movability.COMING, Movability.DROP, Movability.SPILL,
                 Movability.STUCK)


def layout(*kinds_and_sizes) -> list[Segment]:
    out, offset = [], 0
    for n, (kind, size) in enumerate(kinds_and_sizes):
        out.append(Segment(offset, size, kind, bytes([n])))
        offset += size
    return out


def oids(window) -> list[int]:
    return [s.oid[0] for s in window.segments]


def test_window_prefers_the_fewest_bytes_to_write():
    segs = layout((S, 10), (F, 5), (S, 10), (X, 1), (F, 8), (D, 4), (S, 3), (F, 5))
    window = choose_window(segs, 12)
    assert oids(window) == [4, 5]  # 8 free + 4 dropped: nothing to write
    assert window.spill_bytes == 0
    window = choose_window(segs, 15)
    assert oids(window) == [4, 5, 6]  # 3 to write beats 10
    assert window.spill_bytes == 3


def test_window_never_crosses_a_stuck_segment():
    segs = layout((F, 6), (X, 1), (F, 6))
    assert choose_window(segs, 7) is None
    assert oids(choose_window(segs, 6)) in ([0], [2])


def test_window_counts_writes_in_flight_as_free_to_come():
    segs = layout((S, 10), (X, 1), (C, 6), (F, 4))
    window = choose_window(segs, 10)
    assert oids(window) == [2, 3] and window.spill_bytes == 0


def test_window_is_none_when_nothing_is_long_enough():
    assert choose_window(layout((S, 4), (X, 1), (D, 4)), 5) is None
    assert choose_window([], 1) is None


def test_window_is_the_shortest_run_that_holds_enough():
    segs = layout((S, 5), (S, 5), (S, 5), (S, 5))
    assert oids(choose_window(segs, 10)) == [0, 1]


def cand(n: int, size: int, used: int, on_disk: bool = False) -> Candidate:
    return Candidate(bytes([n]), size, used, on_disk)


def test_batch_goes_least_recently_used_first_and_drops_disk_copies_without_writing():
    batch = choose_batch([cand(1, 10, used=5), cand(2, 10, used=1, on_disk=True),
                          cand(3, 10, used=3)], excess=15, min_batch=0, room=100,
                         spilling=False)
    assert batch.drop == (bytes([2]),)
    assert batch.spill == (bytes([3]),)


def test_batch_is_filled_up_to_the_minimum_spill_size():
    many = [cand(n, 1, used=n) for n in range(10)]
    batch = choose_batch(many, excess=2, min_batch=6, room=100, spilling=False)
    assert len(batch.spill) == 6


def test_batch_smaller_than_the_minimum_waits_while_another_is_being_written():
    few = [cand(1, 1, used=1), cand(2, 1, used=2)]
    assert choose_batch(few, excess=2, min_batch=6, room=100, spilling=True).spill == ()
    assert len(choose_batch(few, excess=2, min_batch=6, room=100, spilling=False).spill) == 2


def test_batch_fits_the_room_left_on_disk():
    batch = choose_batch([cand(1, 8, used=1), cand(2, 3, used=2), cand(3, 3, used=3)],
                         excess=20, min_batch=0, room=7, spilling=False)
    assert batch.spill == (bytes([2]), bytes([3]))


def test_batch_spills_cold_objects_before_older_ones():
    """A cold object (its writer hinted no reader wants it soon: a shuffle's
    output) goes before objects used longer ago (its merged blocks, read before
    the shuffle ends)."""
    batch = choose_batch([cand(1, 10, used=1), cand(2, 10, used=2),
                          Candidate(bytes([3]), 10, 9, False, cold=True)],
                         excess=15, min_batch=0, room=100, spilling=False)
    assert batch.spill == (bytes([3]), bytes([1]))


def test_window_writes_cold_bytes_rather_than_fewer_bytes_readers_want_back():
    segs = [Segment(0, 10, F), Segment(10, 4, S, b"hot"), Segment(14, 1, X),
            Segment(15, 14, S, b"cold", cold=True), Segment(29, 1, X)]
    window = choose_window(segs, 14)
    assert [s.oid for s in window.segments] == [b"cold"]
    # among windows of cold bytes (or of hot ones), the fewest bytes still win
    segs = [Segment(0, 10, F), Segment(10, 4, S, b"a", cold=True), Segment(14, 1, X),
            Segment(15, 14, S, b"b", cold=True), Segment(29, 1, X)]
    assert [s.oid for s in choose_window(segs, 14).segments] == [b"", b"a"]
