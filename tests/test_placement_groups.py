"""Placement groups with real processes: strategies across node agents, the
two-phase commit's atomicity, tasks and actors in bundles, removal, names,
node death, and the tables that show them.

Multi-node tests first (they start their own clusters), then one shared
single-node cluster for the rest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

import shoal
from shoal.exceptions import ActorDiedError, TaskPlacementGroupRemoved
from shoal.util import (
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)
from shoal.util.scheduling_strategies import PlacementGroupSchedulingStrategy
from shoal.util.state import list_placement_groups
from tests.clusters import connected_cluster
from tests.utils import wait_for_condition

CLUSTER_INIT_KWARGS = {"num_cpus": 2, "resources": {"custom": 4}}


def in_bundle(pg, index: int = -1, capture: bool | None = None):
    return PlacementGroupSchedulingStrategy(pg, index, capture)


@shoal.remote(num_cpus=1)
def node_of() -> str:
    return shoal.get_runtime_context().get_node_id()


@shoal.remote(num_cpus=0)
class Where:
    def node(self) -> str:
        return shoal.get_runtime_context().get_node_id()

    def group(self):
        group = get_current_placement_group()
        return group.id.hex() if group else None


def state_of(pg) -> str:
    return placement_group_table(pg)["state"]


# ---- several nodes ----------------------------------------------------------------------
def test_every_strategy_across_nodes_and_work_runs_on_its_bundles_node():
    with connected_cluster({"num_cpus": 1}, a={"num_cpus": 1}):
        spread = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
        assert spread.wait(10)
        nodes = placement_group_table(spread)["bundles_to_node_id"]
        assert len(set(nodes.values())) == 2
        for index in (0, 1):
            ran_on = shoal.get(node_of.options(scheduling_strategy=in_bundle(spread, index))
                               .remote(), timeout=20)
            assert ran_on == nodes[index]
        actor = Where.options(num_cpus=1, scheduling_strategy=in_bundle(spread, 1)).remote()
        assert shoal.get(actor.node.remote(), timeout=20) == nodes[1]
        assert shoal.get(actor.group.remote(), timeout=20) == spread.id.hex()
        remove_placement_group(spread)

        # STRICT_PACK of 2 CPUs: no node has 2; PACK spans both instead
        strict = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_PACK")
        assert not strict.wait(0.5)
        assert state_of(strict) == "PENDING"
        remove_placement_group(strict)
        pack = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="PACK")
        assert pack.wait(10)
        assert len(set(placement_group_table(pack)["bundles_to_node_id"].values())) == 2
        remove_placement_group(pack)

        # SPREAD puts small bundles on distinct nodes although one node would hold both
        soft = placement_group([{"CPU": 0.5}, {"CPU": 0.5}], strategy="SPREAD")
        assert soft.wait(10)
        assert len(set(placement_group_table(soft)["bundles_to_node_id"].values())) == 2
        packed = placement_group([{"CPU": 0.25}, {"CPU": 0.25}], strategy="STRICT_PACK")
        assert packed.wait(10)
        assert len(set(placement_group_table(packed)["bundles_to_node_id"].values())) == 1


def test_a_group_that_cannot_be_placed_whole_reserves_nothing_then_waits_reschedules():
    """STRICT_SPREAD over two CPUs: node a's CPU is busy, so a's prepare fails and the
    head's is rolled back (the head's CPU stays usable); when a frees up the group is
    placed.  When a node of the group dies, its bundle is placed on a new node."""
    with connected_cluster({"num_cpus": 1, "resources": {"head": 1}},
                           a={"num_cpus": 1, "resources": {"a": 1}}) as cluster:
        flag = f"/tmp/shoal-pg-release-{os.getpid()}"
        running = flag + ".running"

        @shoal.remote(num_cpus=1, resources={"a": 1})
        def hold(path: str) -> None:
            with open(path + ".running", "w"):
                pass
            while not os.path.exists(path):
                time.sleep(0.02)

        @shoal.remote(num_cpus=1, resources={"head": 1})
        def on_head() -> str:
            return "ran"

        try:
            holding = hold.remote(flag)
            wait_for_condition(lambda: os.path.exists(running), timeout=20)
            group = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
            assert not group.wait(1.0)
            table = placement_group_table(group)
            assert table["state"] == "PENDING"
            assert table["stats"]["scheduling_attempt"] >= 2  # prepared, rolled back, retried
            # the head's CPU was not kept by the half-placed group
            assert shoal.get(on_head.remote(), timeout=20) == "ran"
            with open(flag, "w"):
                pass
            shoal.get(holding, timeout=20)
            assert group.wait(20)
        finally:
            for path in (flag, running):
                if os.path.exists(path):
                    os.unlink(path)

        # node death: the bundle on a moves to a new node, and its actor follows
        nodes = placement_group_table(group)["bundles_to_node_id"]
        node_a = next(n for n in cluster.list_all_nodes() if n.node_id in nodes.values()
                      and n is not cluster.head_node)
        index_a = next(i for i, n in nodes.items() if n == node_a.node_id)
        actor = Where.options(num_cpus=0.5, max_restarts=1,
                              scheduling_strategy=in_bundle(group, index_a)).remote()
        assert shoal.get(actor.node.remote(), timeout=20) == node_a.node_id
        half = node_of.options(num_cpus=0.5, scheduling_strategy=in_bundle(group, index_a))
        assert shoal.get(half.remote(), timeout=20) == node_a.node_id  # location now cached
        cluster.remove_node(node_a)
        wait_for_condition(lambda: state_of(group) == "RESCHEDULING", timeout=15)
        assert not group.wait(0.3)
        cluster.add_node(num_cpus=1)
        assert group.wait(20)
        moved = placement_group_table(group)["bundles_to_node_id"]
        assert node_a.node_id not in moved.values()
        assert len(set(moved.values())) == 2
        wait_for_condition(lambda: shoal.get(actor.node.remote(), timeout=20)
                           == moved[index_a], timeout=30)
        assert shoal.get(half.remote(), timeout=20) == moved[index_a]  # tasks follow too


def test_strict_spread_stays_pending_until_a_node_joins():
    with connected_cluster({"num_cpus": 1}, a={"num_cpus": 1}) as cluster:
        group = placement_group([{"CPU": 1}] * 3, strategy="STRICT_SPREAD")
        ready = group.ready()
        assert not group.wait(0.5)
        assert shoal.wait([ready], timeout=0.1)[0] == []
        cluster.add_node(num_cpus=1)
        assert shoal.get(ready, timeout=20) == group
        assert len(set(placement_group_table(group)["bundles_to_node_id"].values())) == 3


def test_detached_group_outlives_its_driver_and_others_fate_share():
    with connected_cluster({"num_cpus": 2}) as cluster:
        script = (
            "import shoal\n"
            "from shoal.util import placement_group\n"
            f"shoal.init(address={cluster.address!r}, _token={cluster.token!r})\n"
            "d = placement_group([{'CPU': 0.5}], name='kept', lifetime='detached')\n"
            "t = placement_group([{'CPU': 0.5}], name='gone')\n"
            "assert d.wait(10) and t.wait(10)\n"
        )
        subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
        kept = get_placement_group("kept")
        assert kept.wait(5) and kept.bundle_specs == [{"CPU": 0.5}]
        wait_for_condition(lambda: _missing("gone"), timeout=15)


def _died_with_group(actor) -> bool:
    try:
        shoal.get(actor.node.remote(), timeout=20)
    except ActorDiedError as exc:
        return "placement group" in str(exc)
    return False


def _missing(name: str) -> bool:
    try:
        get_placement_group(name)
    except ValueError:
        return True
    return False


# ---- one node ---------------------------------------------------------------------------------
def test_create_wait_ready_and_the_table(shoal_cluster):
    pg = placement_group([{"CPU": 1}, {"custom": 2}], name="t1")
    assert shoal.get(pg.ready(), timeout=20) == pg
    assert pg.wait(5)
    assert pg.bundle_specs == [{"CPU": 1.0}, {"custom": 2.0}] and pg.bundle_count == 2
    table = placement_group_table(pg)
    assert table["state"] == "CREATED" and table["name"] == "t1"
    assert table["strategy"] == "PACK"
    assert table["bundles"] == {0: {"CPU": 1.0}, 1: {"custom": 2.0}}
    assert set(table["bundles_to_node_id"]) == {0, 1}
    assert pg.id.hex() in placement_group_table()
    wait_for_condition(lambda: shoal.available_resources().get("custom") == 2.0)
    records = list_placement_groups(filters=[("name", "=", "t1")], detail=True)
    assert len(records) == 1
    record = records[0]
    assert record.placement_group_id == pg.id.hex() and record.state == "CREATED"
    assert record.creator_job_id == shoal.get_runtime_context().get_job_id()
    assert record.is_detached is False
    assert [b["unit_resources"] for b in record.bundles] == [{"CPU": 1.0}, {"custom": 2.0}]
    remove_placement_group(pg)
    assert state_of(pg) == "REMOVED"
    wait_for_condition(lambda: shoal.available_resources().get("custom") == 4.0)
    with pytest.raises(TaskPlacementGroupRemoved):
        shoal.get(pg.ready(), timeout=10)


def test_bad_groups_and_requests_are_refused_clearly(shoal_cluster):
    with pytest.raises(ValueError, match="non-empty"):
        placement_group([])
    with pytest.raises(ValueError, match="zero"):
        placement_group([{"CPU": 0}])
    with pytest.raises(ValueError, match="strategy"):
        placement_group([{"CPU": 1}], strategy="FOO")
    with pytest.raises(ValueError, match="lifetime"):
        placement_group([{"CPU": 1}], lifetime="forever")
    pg = placement_group([{"CPU": 1}], name="taken")
    with pytest.raises(ValueError, match="already exists"):
        placement_group([{"CPU": 1}], name="taken")
    with pytest.raises(ValueError, match="cannot fit"):
        node_of.options(num_cpus=2, scheduling_strategy=in_bundle(pg)).remote()
    with pytest.raises(ValueError, match="index 3 is invalid"):
        node_of.options(scheduling_strategy=in_bundle(pg, 3)).remote()
    remove_placement_group(pg)
    with pytest.raises(ValueError, match="Failed to look up"):
        get_placement_group("taken")


def test_tasks_and_actors_use_only_the_bundle(shoal_cluster):
    """A bundle of 1 CPU runs one 1-CPU task at a time, while the node's other CPU
    serves work outside the group."""
    pg = placement_group([{"CPU": 1}])
    assert pg.wait(10)

    @shoal.remote(num_cpus=1)
    def span(seconds: float) -> tuple[float, float]:
        start = time.time()
        time.sleep(seconds)
        return start, time.time()

    inside = [span.options(scheduling_strategy=in_bundle(pg, 0)).remote(0.3) for _ in range(2)]
    a, b = sorted(shoal.get(inside, timeout=30))
    assert b[0] >= a[1] - 0.01  # one after the other: the bundle has one CPU
    # the legacy options name the same bundle
    assert shoal.get(node_of.options(placement_group=pg, placement_group_bundle_index=0)
                     .remote(), timeout=20)
    remove_placement_group(pg)


def test_capture_child_tasks(shoal_cluster):
    pg = placement_group([{"CPU": 1}, {"CPU": 0.5}])
    assert pg.wait(10)

    @shoal.remote(num_cpus=0.5)
    def child():
        group = get_current_placement_group()
        return group.id.hex() if group else None

    @shoal.remote(num_cpus=1)
    def parent():
        mine = get_current_placement_group()
        return mine.id.hex(), shoal.get(child.remote(), timeout=20)

    captured = parent.options(scheduling_strategy=in_bundle(pg, 0, True)).remote()
    assert shoal.get(captured, timeout=30) == (pg.id.hex(), pg.id.hex())
    free = parent.options(scheduling_strategy=in_bundle(pg, 0)).remote()
    assert shoal.get(free, timeout=30) == (pg.id.hex(), None)
    assert get_current_placement_group() is None  # the driver
    remove_placement_group(pg)


def test_removal_kills_actors_and_tasks_in_it_and_frees_the_reservation(shoal_cluster):
    pg = placement_group([{"CPU": 1, "custom": 1}])
    assert pg.wait(10)
    actor = Where.options(scheduling_strategy=in_bundle(pg, 0)).remote()
    assert shoal.get(actor.group.remote(), timeout=20) == pg.id.hex()

    @shoal.remote(num_cpus=1, max_retries=0)
    def forever():
        time.sleep(60)

    running = forever.options(scheduling_strategy=in_bundle(pg, 0)).remote()
    wait_for_condition(lambda: shoal.available_resources().get("custom", 0) == 3.0)
    remove_placement_group(pg)
    wait_for_condition(lambda: _died_with_group(actor), timeout=20)
    with pytest.raises(shoal.exceptions.ShoalError):
        shoal.get(running, timeout=20)
    wait_for_condition(lambda: shoal.available_resources().get("custom") == 4.0
                       and shoal.available_resources().get("CPU") == 2.0, timeout=15)
    with pytest.raises(TaskPlacementGroupRemoved):
        shoal.get(node_of.options(scheduling_strategy=in_bundle(pg)).remote(), timeout=20)
