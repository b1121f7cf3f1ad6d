"""When freed spill files are deleted (shoal.node.object_store.deferred_deletes)."""

from __future__ import annotations

from shoal.node.object_store.deferred_deletes import DeferredDeletes

ROOM = 1 << 40  # plenty of free disk


def make() -> DeferredDeletes:
    return DeferredDeletes(idle_s=0.25, max_lag_s=30.0)


def drain(deletes: DeferredDeletes, now: float, idle_since: float | None,
          room: int = ROOM) -> list[str]:
    """What the service deletes one after another while nothing else changes."""
    out = []
    while (path := deletes.next_path(now, idle_since, room)) is not None:
        out.append(path)
    return out


def test_a_disk_quiet_for_the_idle_time_deletes_oldest_first():
    deletes = make()
    deletes.add("a", 100, now=10.0)
    deletes.add("b", 100, now=10.5)
    assert drain(deletes, now=10.6, idle_since=10.3) == ["a", "b"]
    assert len(deletes) == 0 and deletes.pending_bytes == 0
    assert deletes.next_due(idle_since=10.3) is None


def test_a_gap_between_two_reads_is_not_quiet_enough():
    """A delete started in a short gap would still run when the next read
    starts: the files wait until the disk stayed quiet for idle_s."""
    deletes = make()
    deletes.add("a", 100, now=10.0)
    assert deletes.next_path(now=10.1, idle_since=10.05, room=ROOM) is None
    assert deletes.next_due(idle_since=10.05) == 10.3
    assert deletes.next_path(now=10.3, idle_since=10.05, room=ROOM) == "a"


def test_io_that_starts_between_two_deletes_stops_the_rest():
    deletes = make()
    for path in "abc":
        deletes.add(path, 100, now=10.0)
    assert deletes.next_path(now=11.0, idle_since=10.5, room=ROOM) == "a"
    assert deletes.next_path(now=11.1, idle_since=None, room=ROOM) is None  # a read runs
    assert len(deletes) == 2


def test_while_io_runs_files_wait_until_their_lag_is_up():
    deletes = make()
    deletes.add("a", 100, now=10.0)
    deletes.add("b", 100, now=20.0)
    assert drain(deletes, now=39.9, idle_since=None) == []
    assert deletes.next_due(idle_since=None) == 40.0
    assert drain(deletes, now=40.0, idle_since=None) == ["a"]
    assert deletes.next_due(idle_since=None) == 50.0


def test_waiting_bytes_never_pass_a_quarter_of_the_free_room():
    deletes = make()
    for i, path in enumerate("abcd"):
        deletes.add(path, 100, now=10.0 + i)
    # 400 bytes wait; a free room of 1000 allows 250: the oldest two go
    assert drain(deletes, now=14.0, idle_since=None, room=1000) == ["a", "b"]
    assert deletes.pending_bytes == 200


def test_a_short_disk_takes_everything_whatever_runs():
    deletes = make()
    for i, path in enumerate(["a", "b", "c"]):
        deletes.add(path, 10, now=float(i))
    assert deletes.take_all() == ["a", "b", "c"]
    assert deletes.next_path(now=100.0, idle_since=0.0, room=ROOM) is None
