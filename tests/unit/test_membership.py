"""Unit tests for shoal.control.membership: registration, heartbeats and the
failure detector, driven with explicit clock values (no I/O, no sleeps)."""

from __future__ import annotations

import pytest

from shoal.control.membership import Membership
from shoal.rpc.protocol import VersionMismatchError, check_version


def info(node_id: str, cpus: float = 1.0) -> dict:
    return {"node_id": node_id, "address": f"127.0.0.1:{len(node_id)}",
            "resources_total": {"CPU": cpus}, "resources_available": {"CPU": cpus}}


def test_timeout_sets_heartbeat_and_check_periods():
    m = Membership(timeout_s=5.0)
    assert m.heartbeat_s == 1.0
    assert m.check_interval_s == 0.5
    with pytest.raises(ValueError, match="must be > 0"):
        Membership(timeout_s=0)


def test_silent_node_is_declared_dead_after_the_timeout_and_only_once():
    m = Membership(timeout_s=2.0)
    m.register(info("a"), conn=None, now=0.0)
    m.register(info("b"), conn=None, now=0.0)
    for t in (0.2, 0.4, 0.6, 0.8, 1.0):
        assert m.check(now=t) == []
    assert m.heartbeat("a", {"CPU": 0.0}, 0, [], now=1.0)
    checks = [m.check(now=1.0 + 0.2 * i) for i in range(1, 11)]  # up to t=3.0
    dead = [r for found in checks for r in found]
    assert [r.node_id for r in dead] == ["b"]
    assert "no heartbeat for 2.2 s" in dead[0].death_cause
    # b stays dead: heartbeats from it are ignored, and it is not reported again
    assert not m.heartbeat("b", {"CPU": 1.0}, 0, [], now=3.1)
    assert m.heartbeat("a", {"CPU": 0.0}, 0, [], now=3.1)
    assert m.check(now=3.2) == []
    assert [n.node_id for n in m.alive()] == ["a"]


def test_closed_connection_kills_at_once_and_a_dead_id_cannot_rejoin():
    m = Membership(timeout_s=5.0)
    m.register(info("a"), conn=None, now=0.0)
    record = m.connection_closed("a")
    assert record is not None and not record.alive
    assert "connection to the control store closed" in record.death_cause
    assert m.connection_closed("a") is None  # no second death
    with pytest.raises(ValueError, match="declared dead"):
        m.register(info("a"), conn=None, now=1.0)


def test_stalled_detector_resets_clocks_instead_of_killing_everyone():
    m = Membership(timeout_s=2.0)
    m.register(info("a"), conn=None, now=0.0)
    assert m.check(now=0.2) == []
    # the control store's loop was blocked for 10 s: heartbeats may be unread
    assert m.check(now=10.2) == []
    assert m.alive()
    assert m.check(now=10.4) == []
    # ...but a node that stays silent after that is still caught
    dead = [r for t in (11.0, 11.6, 12.2, 12.4) for r in m.check(now=t)]
    assert [r.node_id for r in dead] == ["a"]


def test_resources_sum_live_nodes_only_and_public_view_hides_dead_usage():
    m = Membership(timeout_s=5.0)
    m.register(info("a", 2.0), conn=None, now=0.0)
    m.register(info("b", 4.0), conn=None, now=0.0)
    m.heartbeat("a", {"CPU": 1.0}, 3, [[{"CPU": 1.0}, 3, False]], now=0.1)
    assert m.resources() == ({"CPU": 6.0}, {"CPU": 5.0})
    m.connection_closed("b")
    assert m.resources() == ({"CPU": 2.0}, {"CPU": 1.0})
    a, b = m.nodes["a"].public(), m.nodes["b"].public()
    assert a["alive"] and a["demand"] == [[{"CPU": 1.0}, 3, False]] and a["pending_leases"] == 3
    assert not b["alive"] and b["resources_available"] == {} and b["death_cause"]


def test_version_check_names_both_versions():
    import shoal

    check_version(shoal.__version__, "node x")
    with pytest.raises(VersionMismatchError) as err:
        check_version("0.0.1", "node 10.0.0.2:1234")
    message = str(err.value)
    assert "0.0.1" in message and shoal.__version__ in message and "10.0.0.2:1234" in message
    with pytest.raises(VersionMismatchError, match="unknown"):
        check_version(None, "an old node")


def test_the_heads_own_node_is_not_timed_out():
    m = Membership(timeout_s=1.0)
    m.register(info("head"), conn=None, now=0.0, monitored=False)
    m.register(info("other"), conn=None, now=0.0)
    dead = [r for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2)
            for r in m.check(now=t)]
    assert [r.node_id for r in dead] == ["other"]
    assert [n.node_id for n in m.alive()] == ["head"]


def test_an_actor_lease_counts_once_in_flight_queued_or_granted():
    """What is free for the next actor: each actor lease sent counts until a
    heartbeat says the node has seen it; from then the node's own numbers count
    it (granted: out of the free resources; queued: in ``actors_queued``).  A
    heartbeat that has not seen it yet cannot erase it."""
    m = Membership(timeout_s=5.0)
    node = m.register({**info("a", cpus=4.0), "resources_total": {"CPU": 4.0, "GPU": 2.0},
                       "resources_available": {"CPU": 4.0, "GPU": 2.0}}, conn=None, now=0.0)
    first = node.send_actor({"GPU": 1.0})
    second = node.send_actor({"GPU": 1.0})
    assert node.free_for_actors("GPU") == 0.0
    # an older heartbeat (it saw neither lease) keeps both counted
    m.heartbeat("a", {"CPU": 4.0, "GPU": 2.0}, 0, [], now=0.1, actor_leases=[0, {}])
    assert node.free_for_actors("GPU") == 0.0
    # the node granted the first and queued the second
    m.heartbeat("a", {"CPU": 4.0, "GPU": 1.0}, 1, [], now=0.2,
                actor_leases=[second, {"GPU": 1.0}])
    assert node.actors_in_flight == {}
    assert node.free_for_actors("GPU") == 0.0
    # both granted
    m.heartbeat("a", {"CPU": 4.0, "GPU": 0.0}, 0, [], now=0.3, actor_leases=[second, {}])
    assert node.free_for_actors("GPU") == 0.0
    assert first < second
