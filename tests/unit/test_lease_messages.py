"""Lease request bodies with named fields (shoal/rpc/lease_messages.py)."""

from __future__ import annotations

import msgpack
import pytest

from shoal.rpc.lease_messages import LeaseRequestBody, ReturnLeaseBody


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
