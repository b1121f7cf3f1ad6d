"""When freed spill files are deleted (shoal.node.object_store.deferred_deletes)."""

from __future__ import annotations

from shoal.node.object_store.deferred_deletes import DeferredDeletes


def test_an_idle_disk_deletes_everything_at_once():
    deletes = DeferredDeletes(max_lag_s=1.0)
    deletes.add("a", now=10.0)
    deletes.add("b", now=10.5)
    assert deletes.take(now=10.6, io_in_flight=False) == ["a", "b"]
    assert len(deletes) == 0 and deletes.next_due() is None


def test_while_io_runs_only_what_waited_the_lag_goes():
    deletes = DeferredDeletes(max_lag_s=1.0)
    deletes.add("a", now=10.0)
    deletes.add("b", now=10.5)
    assert deletes.take(now=10.9, io_in_flight=True) == []
    assert deletes.next_due() == 11.0
    assert deletes.take(now=11.0, io_in_flight=True) == ["a"]
    assert deletes.next_due() == 11.5
    assert deletes.take(now=11.2, io_in_flight=False) == ["b"]


def test_a_short_disk_takes_everything_whatever_runs():
    deletes = DeferredDeletes(max_lag_s=1.0)
    for i, path in enumerate(["a", "b", "c"]):
        deletes.add(path, now=float(i))
    assert deletes.take_all() == ["a", "b", "c"]
    assert deletes.take(now=100.0, io_in_flight=False) == []
