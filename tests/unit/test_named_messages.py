"""The actor, node and store messages with named fields (shoal/rpc/
actor_messages.py, node_messages.py, store_messages.py): round trips through
msgpack, defaults not sent, "no stale address" is None (it was ""), malformed
bodies refused by name."""

from __future__ import annotations

import msgpack
import pytest

from shoal.rpc.actor_messages import (
    ActorInstanceBody,
    GetActorBody,
    KillActorBody,
    WorkerDiedBody,
)
from shoal.rpc.node_messages import NodeHeartbeatBody
from shoal.rpc.store_messages import AlreadyStored, StoreCreateBody


def _through_the_wire(body: dict) -> object:
    return msgpack.unpackb(msgpack.packb(body, use_bin_type=True), raw=False)


def test_get_actor_sends_only_what_is_set_and_reads_no_stale_address_as_none():
    first = GetActorBody("a1")
    assert first.to_wire() == {"actor_id": "a1"}  # was [actor_id, ""]
    again = GetActorBody("a1", "10.0.0.1:5000", wait_restart=True, seen_restarts=0)
    for body in (first, again):
        assert GetActorBody.from_wire(_through_the_wire(body.to_wire())) == body
    assert GetActorBody.from_wire({"actor_id": "a1"}).stale_address is None


def test_kill_actor_round_trips_cause_and_exiting():
    plain = KillActorBody("a1", no_restart=False)
    assert plain.to_wire() == {"actor_id": "a1", "no_restart": False}
    exiting = KillActorBody("a1", True, cause="exit_actor() was called", exiting=True)
    for body in (plain, exiting):
        assert KillActorBody.from_wire(_through_the_wire(body.to_wire())) == body
    assert plain.cause is None


def test_worker_died_names_the_actor_and_owner_address_only_when_there():
    task_worker = WorkerDiedBody("w1", "n1", exit_code=-9)
    assert set(task_worker.to_wire()) == {"worker_id", "node_id", "exit_code"}
    actor_worker = WorkerDiedBody("w2", "n1", "a1", 1, "10.0.0.1:6000")
    for body in (task_worker, actor_worker):
        assert WorkerDiedBody.from_wire(_through_the_wire(body.to_wire())) == body


def test_bad_actor_bodies_are_refused_with_what_was_wrong():
    with pytest.raises(TypeError, match="GET_ACTOR body must be a map .* got list"):
        GetActorBody.from_wire(["a1", ""])  # the old positional form
    with pytest.raises(ValueError, match="KILL_ACTOR body lacks no_restart"):
        KillActorBody.from_wire({"actor_id": "a1"})
    with pytest.raises(ValueError, match="WORKER_DIED body lacks node_id"):
        WorkerDiedBody.from_wire({"worker_id": "w1"})


def test_an_actor_instance_carries_its_gpus_and_group_only_when_it_has_them():
    first = ActorInstanceBody("a1", b"ctor")
    assert first.to_wire() == {"actor_id": "a1", "creation": b"ctor"}
    restart = ActorInstanceBody("a1", b"ctor", 2, {"GPU": [1]}, ["ab" * 8, 0, True])
    for body in (first, restart):
        assert ActorInstanceBody.from_wire(_through_the_wire(body.to_wire())) == body
    assert (first.num_restarts, first.accelerators, first.placement) == (0, None, None)


def test_a_heartbeat_round_trips_and_its_optional_parts_default():
    beat = NodeHeartbeatBody("n1", {"CPU": 1.0}, 2, [[{"CPU": 1.0}, 2, False]],
                             {"used": 10}, {"lease_latency": {}}, [3, {"CPU": 1.0}])
    assert NodeHeartbeatBody.from_wire(_through_the_wire(beat.to_wire())) == beat
    bare = NodeHeartbeatBody.from_wire({"node_id": "n1", "available": {}, "pending": 0})
    assert (bare.demand, bare.store, bare.metrics, bare.actor_leases) == ([], None, None, None)
    with pytest.raises(ValueError, match="NODE_HEARTBEAT body lacks pending"):
        NodeHeartbeatBody.from_wire({"node_id": "n1", "available": {}})


def test_a_store_create_names_its_owner_and_an_existing_copy_is_not_a_location():
    cold = StoreCreateBody(b"o" * 20, 4096, "10.0.0.1:6000", cold=True)
    assert StoreCreateBody.from_wire(_through_the_wire(cold.to_wire())) == cold
    assert "cold" not in StoreCreateBody(b"o" * 20, 1, "a:1").to_wire()
    stored = _through_the_wire(AlreadyStored(4096).to_wire())
    assert AlreadyStored.from_reply(stored) == AlreadyStored(4096)
    for location in (128, ["/dev/shm/f", 4096, 0]):  # an arena offset, a file location
        assert AlreadyStored.from_reply(location) is None
    with pytest.raises(ValueError, match="STORE_CREATE body lacks owner"):
        StoreCreateBody.from_wire({"object_id": b"o" * 20, "size": 1})
