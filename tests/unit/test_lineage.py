"""The lineage table alone (shoal/core/lineage.py): what is kept, for how long,
and what is released, without processes."""

from __future__ import annotations

from dataclasses import dataclass, field

from shoal.core.lineage import ENTRY_OVERHEAD, Lineage


@dataclass
class Spec:
    task_id: bytes
    args: list = field(default_factory=list)


@dataclass
class Task:
    spec: Spec
    return_ids: list
    held: list
    retries_left: int = 3


def task(name: str, held=(), args=(), retries: int = 3, returns: int = 1) -> Task:
    tid = name.encode().ljust(16, b"_")
    return Task(Spec(tid, list(args)), [tid + bytes([0, 0, 0, i + 1]) for i in range(returns)],
                list(held), retries)


def test_keeps_a_retryable_task_with_shared_memory_returns_and_its_args():
    lineage = Lineage(budget=1 << 20)
    t = task("a", held=[b"arg"])
    added, released = lineage.task_finished(t, True, t.return_ids)
    assert added and released == []
    assert lineage.entry_for(t.return_ids[0]).task is t


def test_does_not_keep_failed_inline_only_or_unretryable_tasks():
    lineage = Lineage(budget=1 << 20)
    failed, inline, once = task("f"), task("i"), task("o", retries=0)
    assert lineage.task_finished(failed, False, failed.return_ids) == (False, [])
    assert lineage.task_finished(inline, True, []) == (False, [])
    assert lineage.task_finished(once, True, once.return_ids) == (False, [])
    assert len(lineage) == 0


def test_entry_goes_with_its_last_return_and_releases_the_args():
    lineage = Lineage(budget=1 << 20)
    t = task("a", held=[b"x", b"y"], returns=2)
    lineage.task_finished(t, True, t.return_ids)
    assert lineage.object_forgotten(t.return_ids[0]) is None
    assert lineage.object_forgotten(t.return_ids[1]) == [b"x", b"y"]
    assert len(lineage) == 0 and lineage.total == 0
    assert lineage.object_forgotten(t.return_ids[1]) is None  # only once


def test_rebuild_is_started_once_and_survives_its_returns_being_freed_meanwhile():
    lineage = Lineage(budget=1 << 20)
    t = task("a", held=[b"x"])
    lineage.task_finished(t, True, t.return_ids)
    entry = lineage.start_rebuild(t.return_ids[0])
    assert entry is not None and lineage.start_rebuild(t.return_ids[0]) is None
    assert lineage.rebuilds == 1
    assert lineage.object_forgotten(t.return_ids[0]) is None  # the rebuild still runs
    assert lineage.task_finished(t, True, []) == (False, [[b"x"]])  # nobody needs it now
    assert len(lineage) == 0


def test_rebuild_finished_with_live_returns_keeps_the_entry():
    lineage = Lineage(budget=1 << 20)
    t = task("a", held=[b"x"])
    lineage.task_finished(t, True, t.return_ids)
    lineage.start_rebuild(t.return_ids[0])
    assert lineage.task_finished(t, True, t.return_ids) == (False, [])  # counted already
    assert lineage.start_rebuild(t.return_ids[0]) is not None  # can be lost again


def test_failed_rebuild_drops_the_entry():
    lineage = Lineage(budget=1 << 20)
    t = task("a", held=[b"x"])
    lineage.task_finished(t, True, t.return_ids)
    lineage.start_rebuild(t.return_ids[0])
    assert lineage.task_finished(t, False, []) == (False, [[b"x"]])
    assert lineage.entry_for(t.return_ids[0]) is None


def test_budget_evicts_oldest_first_and_remembers_why():
    inline_arg = [0, [0, b"z" * 1000, []]]
    size = ENTRY_OVERHEAD + 1000
    lineage = Lineage(budget=2 * size)
    tasks = [task(f"t{i}", held=[f"h{i}".encode()], args=[inline_arg]) for i in range(3)]
    assert lineage.task_finished(tasks[0], True, tasks[0].return_ids) == (True, [])
    assert lineage.task_finished(tasks[1], True, tasks[1].return_ids) == (True, [])
    added, released = lineage.task_finished(tasks[2], True, tasks[2].return_ids)
    assert added and released == [[b"h0"]]
    assert lineage.entry_for(tasks[0].return_ids[0]) is None
    assert lineage.was_evicted(tasks[0].spec.task_id)
    assert lineage.total == 2 * size


def test_entries_being_rebuilt_are_not_evicted():
    lineage = Lineage(budget=ENTRY_OVERHEAD)
    a, b = task("a", held=[b"ha"]), task("b", held=[b"hb"])
    lineage.task_finished(a, True, a.return_ids)
    lineage.start_rebuild(a.return_ids[0])
    added, released = lineage.task_finished(b, True, b.return_ids)
    assert added and released == [[b"hb"]]  # b went instead of the rebuilding a
    assert lineage.entry_for(a.return_ids[0]) is not None
