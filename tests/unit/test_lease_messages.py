"""Lease messages with named fields (shoal/rpc/lease_messages.py): requests,
grants and redirects, the control store's actor leases and kills."""

from __future__ import annotations

import msgpack
import pytest

from shoal.rpc.lease_messages import (
    ActorLeaseBody,
    KillWorkerBody,
    LeaseGrant,
    LeaseRequestBody,
    LeaseSpill,
    ReturnLeaseBody,
    lease_reply_from_wire,
)


def _through_the_wire(body: dict) -> object:
    return msgpack.unpackb(msgpack.packb(body), raw=False)


def test_a_lease_request_round_trips_and_sends_only_what_is_set():
    plain = LeaseRequestBody("01000000", {"CPU": 1.0})
    assert plain.to_wire() == {"job_id": "01000000", "shape": {"CPU": 1.0}}
    full = LeaseRequestBody("01000000", {"CPU": 0.5, "GPU": 1.0}, strategy=["PG", "ab", 0, True],
                            spilled=True, runtime_env={"env_vars": {"A": "1"}})
    for body in (plain, full):
        assert LeaseRequestBody.from_wire(_through_the_wire(body.to_wire())) == body


def test_a_return_names_kill_and_retire():
    assert ReturnLeaseBody(7).to_wire() == {"lease_id": 7}
    retire = ReturnLeaseBody(7, retire=True)
    assert retire.to_wire() == {"lease_id": 7, "retire": True}
    assert ReturnLeaseBody.from_wire(_through_the_wire(retire.to_wire())) == retire
    assert ReturnLeaseBody.from_wire({"lease_id": 3, "kill": True}).kill


def test_bad_bodies_are_refused_with_what_was_wrong():
    with pytest.raises(TypeError, match="RETURN_LEASE body must be a map .* got list"):
        ReturnLeaseBody.from_wire([7, False])  # the old positional form
    with pytest.raises(ValueError, match="REQUEST_LEASE body lacks shape"):
        LeaseRequestBody.from_wire({"job_id": "01000000"})


def test_a_grant_round_trips_and_names_no_accelerators_as_none():
    plain = LeaseGrant(4, "w1", "127.0.0.1:5000", "n1", {"CPU": 1.0})
    assert "accelerators" not in plain.to_wire()
    with_gpus = LeaseGrant(5, "w2", "127.0.0.1:5001", "n1", {"GPU": 1.0}, {"GPU": [0]})
    for grant in (plain, with_gpus):
        assert lease_reply_from_wire(_through_the_wire(grant.to_wire())) == grant
    assert lease_reply_from_wire(_through_the_wire(plain.to_wire())).accelerators is None


def test_a_lease_reply_tells_a_grant_from_a_redirect_from_a_cancel():
    spill = LeaseSpill("n2", "10.0.0.2:7000")
    assert lease_reply_from_wire(_through_the_wire(spill.to_wire())) == spill
    assert lease_reply_from_wire(None) is None
    with pytest.raises(TypeError, match="lease grant body must be a map .* got list"):
        lease_reply_from_wire([4, "w1", "127.0.0.1:5000", "n1", {}, None])  # the old form
    with pytest.raises(ValueError, match="lease grant body lacks worker_address"):
        lease_reply_from_wire({"lease_id": 4, "worker_id": "w1", "node_id": "n1",
                               "shape": {}})


def test_an_actor_lease_sends_its_optional_fields_only_when_set():
    first = ActorLeaseBody("a1", "j1", {"CPU": 1.0}, "Counter", b"ctor")
    assert set(first.to_wire()) == {"actor_id", "job_id", "shape", "label", "creation"}
    restart = ActorLeaseBody("a1", "j1", {}, "Counter", b"ctor", num_restarts=2,
                             strategy=["PG", "ab", 0, True], runtime_env={"pip": ["x"]},
                             lease_number=9)
    for body in (first, restart):
        assert ActorLeaseBody.from_wire(_through_the_wire(body.to_wire())) == body
    assert (first.num_restarts, first.strategy, first.runtime_env) == (0, None, None)


def test_a_kill_names_a_worker_or_an_actor_never_a_placeholder():
    by_worker, by_actor = KillWorkerBody("w1"), KillWorkerBody(actor_id="a1")
    assert by_actor.to_wire() == {"actor_id": "a1"}  # was ["", actor_id]
    for body in (by_worker, by_actor):
        assert KillWorkerBody.from_wire(_through_the_wire(body.to_wire())) == body
    assert KillWorkerBody.from_wire({"actor_id": "a1"}).worker_id is None
    with pytest.raises(ValueError, match="names neither a worker_id nor an actor_id"):
        KillWorkerBody.from_wire({})
