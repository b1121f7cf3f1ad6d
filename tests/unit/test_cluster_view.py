"""Where a lease request goes (shoal/node/cluster_view.py)."""

from __future__ import annotations

from shoal.node.cluster_view import ClusterView, Decision
from shoal.node.resources import NodeResources, to_units


def view(**available: dict) -> ClusterView:
    v = ClusterView("me")
    v.update([{"node_id": "me", "address": "h:1", "resources_total": {"CPU": 1},
               "resources_available": {"CPU": 1}}]
             + [{"node_id": name, "address": f"{name}:1", "alive": True,
                 "resources_total": {"CPU": 2, name: 1}, "resources_available": avail}
                for name, avail in available.items()])
    return v


def test_default_stays_local_when_it_fits_and_spills_what_is_infeasible_here():
    v = view(a={"CPU": 2, "a": 1})
    local = NodeResources({"CPU": 1})
    assert v.place(local, to_units({"CPU": 1}), None, False).decision is Decision.LOCAL
    p = v.place(local, to_units({"a": 1}), None, False)
    assert p.decision is Decision.SPILL and p.node.node_id == "a"
    # a spilled-in request is never redirected again
    assert v.place(local, to_units({"a": 1}), None, True).decision is Decision.LOCAL
    # feasible nowhere: queue here
    assert v.place(local, to_units({"zzz": 1}), None, False).decision is Decision.LOCAL


def test_default_spills_to_a_node_with_room_when_busy_here():
    v = view(a={"CPU": 0}, b={"CPU": 2})
    local = NodeResources({"CPU": 1})
    local.acquire(to_units({"CPU": 1}))
    p = v.place(local, to_units({"CPU": 1}), None, False)
    assert p.decision is Decision.SPILL and p.node.node_id == "b"
    v.update([{"node_id": "b", "address": "b:1", "resources_total": {"CPU": 2},
               "resources_available": {"CPU": 0}}])
    assert v.place(local, to_units({"CPU": 1}), None, False).decision is Decision.LOCAL


def test_spread_round_robins_over_feasible_nodes():
    v = view(a={"CPU": 2}, b={"CPU": 2})
    local = NodeResources({"CPU": 1})
    picks = [v.place(local, to_units({"CPU": 1}), ["SPREAD"], False) for _ in range(6)]
    names = ["me" if p.decision is Decision.LOCAL else p.node.node_id for p in picks]
    assert sorted(names) == ["a", "a", "b", "b", "me", "me"]


def test_node_affinity_hard_and_soft():
    v = view(a={"CPU": 2})
    local = NodeResources({"CPU": 1})
    cpu = to_units({"CPU": 1})
    p = v.place(local, cpu, ["NODE_AFFINITY", "a", False], False)
    assert p.decision is Decision.SPILL and p.node.node_id == "a"
    assert v.place(local, cpu, ["NODE_AFFINITY", "me", False], False).decision is \
        Decision.LOCAL
    assert v.place(local, cpu, ["NODE_AFFINITY", "gone", False], False).decision is \
        Decision.FAIL
    assert v.place(local, cpu, ["NODE_AFFINITY", "gone", True], False).decision is \
        Decision.LOCAL
    # soft affinity to a node that lacks the resource gives way
    p = v.place(local, to_units({"a": 1}), ["NODE_AFFINITY", "me", True], False)
    assert p.decision is Decision.SPILL and p.node.node_id == "a"


def test_a_dead_node_is_not_a_target_and_a_join_is_reported():
    v = view(a={"CPU": 2})
    v.on_node_event({"node_id": "a", "alive": False})
    assert not v.has_peers()
    assert v.on_node_event({"node_id": "c", "alive": True, "address": "c:1",
                            "resources_total": {"CPU": 1}})
    assert v.alive_node("c").available == to_units({"CPU": 1})
    # a snapshot taken before the death (GET_NODES in flight) does not revive it
    v.update([{"node_id": "a", "address": "a:1", "alive": True,
               "resources_total": {"CPU": 2}, "resources_available": {"CPU": 2}}])
    assert v.alive_node("a") is None
