"""Placement plans and the two-phase commit of placement groups, without sockets."""

from __future__ import annotations

import pytest

from shoal.control.placement_state import (
    Cancel,
    Commit,
    Created,
    NodeCapacity,
    PgState,
    PlacementGroupRecord,
    PlacementTable,
    Prepare,
    Removed,
    plan,
)

CPU = 10_000  # one CPU in resource units


def nodes(**cpus: float) -> list[NodeCapacity]:
    return [NodeCapacity(n, {"CPU": int(c * CPU)}) for n, c in cpus.items()]


def bundles(*cpus: float) -> list[dict]:
    return [{"CPU": int(c * CPU)} for c in cpus]


# ---- plans -------------------------------------------------------------------------------
def test_strict_pack_needs_one_node_for_all():
    assert plan(bundles(1, 1), [0, 1], "STRICT_PACK", nodes(a=1, b=1)) is None
    assert plan(bundles(1, 1), [0, 1], "STRICT_PACK", nodes(a=1, b=2)) == {0: "b", 1: "b"}


def test_pack_prefers_one_node_then_spans():
    assert set(plan(bundles(1, 1), [0, 1], "PACK", nodes(a=2, b=2)).values()) == {"a"}
    spanning = plan(bundles(1, 1, 1), [0, 1, 2], "PACK", nodes(a=2, b=1))
    assert sorted(spanning.values()) == ["a", "a", "b"]
    assert plan(bundles(2, 2), [0, 1], "PACK", nodes(a=1, b=1)) is None


def test_strict_spread_needs_distinct_nodes():
    assert plan(bundles(1, 1, 1), [0, 1, 2], "STRICT_SPREAD", nodes(a=4, b=4)) is None
    placed = plan(bundles(1, 1, 1), [0, 1, 2], "STRICT_SPREAD", nodes(a=1, b=1, c=1))
    assert sorted(placed.values()) == ["a", "b", "c"]


def test_strict_spread_matching_finds_the_assignment_greedy_misses():
    # bundle 0 fits a or b, bundle 1 only a: greedy 0->a would fail
    caps = [NodeCapacity("a", {"CPU": 2 * CPU}, room=5), NodeCapacity("b", {"CPU": CPU})]
    assert plan(bundles(1, 2), [0, 1], "STRICT_SPREAD", caps) == {0: "b", 1: "a"}


def test_strict_spread_reschedule_avoids_the_nodes_of_placed_bundles():
    got = plan(bundles(1, 1), [1], "STRICT_SPREAD", nodes(a=1, b=1), placed={0: "a"})
    assert got == {1: "b"}


def test_spread_uses_distinct_nodes_when_it_can_and_shares_otherwise():
    assert sorted(plan(bundles(1, 1), [0, 1], "SPREAD", nodes(a=2, b=2)).values()) == ["a", "b"]
    assert list(plan(bundles(1, 1), [0, 1], "SPREAD", nodes(a=2)).values()) == ["a", "a"]


def test_custom_resources_a_node_lacks_are_infeasible_there():
    caps = [NodeCapacity("a", {"CPU": CPU}), NodeCapacity("b", {"CPU": CPU, "disk": 5})]
    assert plan([{"disk": 5}], [0], "PACK", caps) == {0: "b"}


# ---- two-phase commit ----------------------------------------------------------------------
def table_with(*records: PlacementGroupRecord) -> PlacementTable:
    table = PlacementTable()
    for record in records:
        table.add(record)
    return table


def totals(**cpus: float) -> dict:
    return {n: {"CPU": int(c * CPU)} for n, c in cpus.items()}


def test_prepare_then_commit_creates_the_group():
    table = table_with(PlacementGroupRecord("g", bundles(1, 1), "STRICT_SPREAD"))
    actions = table.schedule("g", table.capacities(totals(a=1, b=1)))
    assert sorted(a.node_id for a in actions) == ["a", "b"]
    assert all(isinstance(a, Prepare) for a in actions)
    assert table.groups["g"].state is PgState.PENDING
    assert table.prepared("g", 1, "a", True) == []
    commits = table.prepared("g", 1, "b", True)
    assert sorted(c.node_id for c in commits) == ["a", "b"]
    assert all(isinstance(c, Commit) for c in commits)
    assert table.groups["g"].state is PgState.PREPARED
    assert table.committed("g", 1, "a", True) == []
    assert table.committed("g", 1, "b", True) == [Created("g")]
    assert table.groups["g"].state is PgState.CREATED
    assert sorted(table.groups["g"].nodes) == ["a", "b"]


def test_a_failed_prepare_rolls_back_the_others_and_reserves_nothing():
    table = table_with(PlacementGroupRecord("g", bundles(1, 1), "STRICT_SPREAD"))
    table.schedule("g", table.capacities(totals(a=1, b=1)))
    assert table.prepared("g", 1, "a", True) == []
    actions = table.prepared("g", 1, "b", False)
    assert [(type(a), a.node_id, a.removed) for a in actions] == [(Cancel, "a", False)]
    assert table.reserved == {}
    record = table.groups["g"]
    assert record.state is PgState.PENDING and record.round is None and record.waiting()
    # a retry is a new round; a late reply from the old one is ignored
    assert len(table.schedule("g", table.capacities(totals(a=1, b=1)))) == 2
    assert table.prepared("g", 1, "a", True) == []
    assert record.round.attempt == 2


def test_a_late_ok_after_a_failure_is_cancelled():
    table = table_with(PlacementGroupRecord("g", bundles(1, 1), "STRICT_SPREAD"))
    table.schedule("g", table.capacities(totals(a=1, b=1)))
    assert table.prepared("g", 1, "b", False) == []
    assert len(table.prepared("g", 1, "a", True)) == 1  # the Cancel to a
    assert table.reserved == {} and table.groups["g"].round is None


def test_reservations_count_against_later_plans():
    table = table_with(PlacementGroupRecord("g1", bundles(1)),
                       PlacementGroupRecord("g2", bundles(1)))
    caps = table.capacities(totals(a=1))
    assert len(table.schedule("g1", caps)) == 1
    assert table.schedule("g2", caps) == []  # same pass: the first took the CPU
    assert table.schedule("g2", table.capacities(totals(a=1))) == []
    table.remove("g1")
    assert len(table.schedule("g2", table.capacities(totals(a=1)))) == 1


def test_remove_cancels_prepared_and_committed_bundles():
    table = table_with(PlacementGroupRecord("g", bundles(1, 1), "SPREAD", name="n"))
    table.schedule("g", table.capacities(totals(a=1, b=1)))
    table.prepared("g", 1, "a", True)
    table.prepared("g", 1, "b", True)
    table.committed("g", 1, "a", True)
    actions = table.remove("g")
    assert Removed("g") in actions
    assert sorted((a.node_id, a.removed) for a in actions if isinstance(a, Cancel)) == [
        ("a", True), ("b", True)]
    assert table.reserved == {} and table.groups["g"].state is PgState.REMOVED
    assert table.names == {}
    assert table.committed("g", 1, "b", True) == []  # stale
    table.add(PlacementGroupRecord("g2", bundles(1), name="n"))  # the name is free again


def test_duplicate_names_are_refused():
    table = table_with(PlacementGroupRecord("g", bundles(1), name="n"))
    with pytest.raises(ValueError, match="already exists"):
        table.add(PlacementGroupRecord("h", bundles(1), name="n"))


def created(table: PlacementTable, pg_id: str, tot: dict) -> None:
    """Schedule (unless a round is out) and answer every PREPARE and COMMIT with ok."""
    table.schedule(pg_id, table.capacities(tot))
    for answer in (table.prepared, table.committed):
        rnd = table.groups[pg_id].round
        for node in list(rnd.waiting):
            answer(pg_id, rnd.attempt, node, True)
    assert table.groups[pg_id].state is PgState.CREATED


def test_node_death_reschedules_only_the_lost_bundles():
    table = table_with(PlacementGroupRecord("g", bundles(1, 1), "STRICT_SPREAD"))
    created(table, "g", totals(a=1, b=1))
    lost_node = table.groups["g"].nodes[0]
    kept = table.groups["g"].nodes[1]
    assert table.node_died(lost_node) == []
    record = table.groups["g"]
    assert record.state is PgState.RESCHEDULING and record.nodes == ["", kept]
    assert table.schedule("g", table.capacities({kept: {"CPU": CPU}})) == []  # strict: not on b
    actions = table.schedule("g", table.capacities({kept: {"CPU": CPU}, "c": {"CPU": CPU}}))
    assert actions == [Prepare("c", "g", 2, ((0, {"CPU": CPU}),))]
    created(table, "g", {})
    assert table.groups["g"].nodes == ["c", kept]


def test_node_death_during_prepare_abandons_the_round():
    table = table_with(PlacementGroupRecord("g", bundles(1, 1), "STRICT_SPREAD"))
    table.schedule("g", table.capacities(totals(a=1, b=1)))
    table.prepared("g", 1, "a", True)
    actions = table.node_died("b")
    assert [(type(a), a.node_id, a.removed) for a in actions] == [(Cancel, "a", False)]
    assert table.reserved == {} and table.groups["g"].waiting()


def test_node_death_during_commit_keeps_the_other_commits():
    table = table_with(PlacementGroupRecord("g", bundles(1, 1), "STRICT_SPREAD"))
    table.schedule("g", table.capacities(totals(a=1, b=1)))
    table.prepared("g", 1, "a", True)
    table.prepared("g", 1, "b", True)
    table.committed("g", 1, "a", True)
    table.node_died("b")
    record = table.groups["g"]
    assert record.round is None and record.state is PgState.PENDING
    assert "a" in record.nodes and "" in record.nodes
    assert table.reserved == {"a": {"CPU": CPU}}
