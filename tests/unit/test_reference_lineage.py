"""Unit tests for shoal.core.reference_table's lineage clause on rows that contain
refs: a task's argument whose value is a list of refs keeps that value and the
rows of the refs when it leaves scope, so that a rebuild of the task can read
them (docs/design.md section 20)."""

from __future__ import annotations

from shoal.core.reference_table import Action, ActionKind, ReferenceTable

OWNER = "10.0.0.1:7000"


def oid(name: str, index: int = 1) -> bytes:
    """A task's return (index 1...); index 0 is a put's id."""
    return name.encode().ljust(16, b"\0") + index.to_bytes(4, "big")


def FREE(name: str) -> Action:
    return Action(ActionKind.FREE, oid(name))


def FREE_VALUE(name: str) -> Action:
    return Action(ActionKind.FREE_VALUE, oid(name))


def REMOVE(name: str, count: int) -> Action:
    return Action(ActionKind.REMOVE_BORROWER, oid(name), OWNER, count)


def argument_of_refs(table: ReferenceTable, *, borrowed: str = "") -> bytes:
    """Blocks a, b (ours, one local ref each), and an argument s (ours) whose value
    contains them (and ``borrowed``, registered for us), held by a finished task's
    lineage entry; then the blocks' local refs are dropped."""
    for name in "ab":
        table.add_owned(oid(name))
        table.inc_local(oid(name), "")
    table.add_owned(oid("s"))
    table.inc_local(oid("s"), "")
    inner = [(oid("a"), ""), (oid("b"), "")]
    if borrowed:
        inner.append((oid(borrowed), OWNER))
    table.add_contained(oid("s"), inner)
    table.inc_lineage([oid("s")])  # the task that read s finished; lineage kept
    table.dec_local_many([oid("a"), oid("b")])
    assert table.take_actions() == []  # s contains them
    return oid("s")


def test_container_with_lineage_keeps_its_value_and_its_refs_rows():
    table = ReferenceTable()
    s = argument_of_refs(table)
    table.dec_local(s)
    # s keeps its value (no action for it); a and b lose their values, keep rows
    assert table.take_actions() == [FREE_VALUE("a"), FREE_VALUE("b")]
    row = table.refs[s]
    assert row.contains == () and row.lineage_contains == [oid("a"), oid("b")]
    for name in "ab":
        assert table.refs[oid(name)].contained_in == 0
        assert table.refs[oid(name)].lineage == 1
        assert table.value_was_freed(oid(name))
    assert not table.value_was_freed(s)


def test_container_leaving_scope_again_still_keeps_its_value():
    """A rebuild submits the task again (s in scope) and finishes (out again)."""
    table = ReferenceTable()
    s = argument_of_refs(table)
    table.dec_local(s)
    table.take_actions()
    table.inc_submitted([s])
    table.dec_submitted([s])
    assert table.take_actions() == []
    assert table.refs[s].lineage_contains == [oid("a"), oid("b")]


def test_container_row_going_releases_the_lineage_of_its_refs():
    table = ReferenceTable()
    s = argument_of_refs(table)
    table.dec_local(s)
    table.take_actions()
    table.dec_lineage([s])  # the task's entry is dropped: nothing can rebuild it now
    assert table.take_actions() == [FREE("s"), FREE("a"), FREE("b")]
    assert table.refs == {} and table.values_freed == set()


def test_container_back_in_scope_freed_by_dec_local_many_releases_its_refs():
    """The fast path of dec_local_many must not skip lineage_contains."""
    table = ReferenceTable()
    s = argument_of_refs(table)
    table.dec_local(s)
    table.take_actions()
    table.inc_local(s, "")  # its ref deserialized here again
    table.dec_lineage([s])
    assert table.take_actions() == []
    table.dec_local_many([s])
    assert table.take_actions() == [FREE("s"), FREE("a"), FREE("b")]
    assert table.refs == {}


def test_contained_ref_still_in_scope_keeps_its_value():
    table = ReferenceTable()
    s = argument_of_refs(table)
    table.inc_local(oid("a"), "")  # the driver holds a again
    table.dec_local(s)
    assert table.take_actions() == [FREE_VALUE("b")]
    assert table.refs[oid("a")].lineage == 1 and not table.value_was_freed(oid("a"))
    table.dec_local(oid("a"))
    assert table.take_actions() == [FREE_VALUE("a")]


def test_borrowed_contained_ref_is_only_released():
    table = ReferenceTable()
    s = argument_of_refs(table, borrowed="x")
    table.dec_local(s)
    assert table.take_actions() == [FREE_VALUE("a"), FREE_VALUE("b"), REMOVE("x", 1)]
    assert oid("x") not in table.refs
    assert table.refs[s].lineage_contains == [oid("a"), oid("b")]


def test_container_of_only_borrowed_refs_frees_its_value():
    """Nothing of ours to rebuild through it: it is a plain lineage row."""
    table = ReferenceTable()
    table.add_owned(oid("s"))
    table.inc_local(oid("s"), "")
    table.add_contained(oid("s"), [(oid("x"), OWNER)])
    table.inc_lineage([oid("s")])
    table.dec_local(oid("s"))
    assert table.take_actions() == [REMOVE("x", 1), FREE_VALUE("s")]
    assert table.value_was_freed(oid("s"))


def test_values_freed_is_cleared_when_a_value_is_stored_again():
    table = ReferenceTable()
    s = argument_of_refs(table)
    table.dec_local(s)
    table.take_actions()
    table.value_stored([oid("a")])
    assert not table.value_was_freed(oid("a")) and table.value_was_freed(oid("b"))


def test_row_without_refs_and_with_lineage_loses_its_value_as_before():
    table = ReferenceTable()
    table.add_owned(oid("y"))
    table.inc_local(oid("y"), "")
    table.inc_lineage([oid("y")])
    table.dec_local(oid("y"))
    assert table.take_actions() == [FREE_VALUE("y")]
    assert table.value_was_freed(oid("y"))
    table.dec_lineage([oid("y")])
    assert table.take_actions() == [FREE("y")]
    assert table.values_freed == set()


def test_a_put_argument_keeps_its_value_while_lineage_needs_it():
    """A put (or a large argument stored by value) cannot be rebuilt: a re-run of
    the task it was an argument of reads this very value, so lineage keeps it."""
    table = ReferenceTable()
    put = oid("p", index=0)
    table.add_owned(put)
    table.inc_local(put, "")
    table.inc_lineage([put])
    table.dec_local(put)
    assert table.take_actions() == []
    assert not table.value_was_freed(put)
    table.dec_lineage([put])
    assert table.take_actions() == [Action(ActionKind.FREE, put)]
