"""The node agent's lease table (shoal/node/leases.py): the queue, the grant
decision, resources taken and given back, the lease states.  Pure: no sockets."""

from __future__ import annotations

import pytest

from shoal.node.leases import (
    TRANSITIONS,
    GrantStep,
    InvalidLeaseTransition,
    LeaseEvent,
    LeaseRequest,
    LeaseState,
    LeaseTable,
    next_lease_state,
)
from shoal.node.resources import NodeResources, to_units

S, E = LeaseState, LeaseEvent


def _request(cpus: float = 1, requester: object = "owner", **kw) -> LeaseRequest:
    return LeaseRequest(to_units({"CPU": cpus}), "job", "f", requester, None, **kw)


def _table(cpus: float = 2, bundle_pool: NodeResources | None = None) -> LeaseTable:
    return LeaseTable(NodeResources({"CPU": cpus}), lambda request: bundle_pool)


def _free_cpus(table: LeaseTable) -> float:
    return table.resources.available["CPU"] / to_units({"CPU": 1})["CPU"]


def test_the_lease_lifecycle_and_its_refusals():
    assert set(TRANSITIONS) == set(S)
    state = S.REQUESTED
    for event in (E.FITS, E.WORKER_FOUND, E.RETIRE, E.RETURN):
        state = next_lease_state(state, event)
    assert state is S.RETURNED
    for state, event in [(S.REQUESTED, E.WORKER_FOUND), (S.REQUESTED, E.RETURN),
                         (S.GRANTING, E.RETIRE), (S.RETIRING, E.RETIRE),
                         (S.RETURNED, E.RETURN), (S.REVOKED, E.REVOKE)]:
        with pytest.raises(InvalidLeaseTransition, match=f"{state.name} cannot take"):
            next_lease_state(state, event)
    for live in (S.REQUESTED, S.GRANTING, S.GRANTED, S.RETIRING):
        assert next_lease_state(live, E.REVOKE) is S.REVOKED


def test_requests_are_granted_in_order_while_they_fit():
    table = _table(cpus=2)
    first, big, second, third = _request(1), _request(4), _request(1), _request(1)
    for request in (first, big, second, third):
        table.add(request)
    steps = table.schedule()
    # the 4-CPU request can never fit here: reported once, and it does not hold
    # up the smaller ones behind it
    assert steps == [(GrantStep.GRANT, first), (GrantStep.WARN_INFEASIBLE, big),
                     (GrantStep.GRANT, second)]
    assert first.state is second.state is S.GRANTING
    assert table.queue == [big, third] and third.state is S.REQUESTED
    assert _free_cpus(table) == 0
    assert table.schedule() == []  # warned once only; third still does not fit


def test_return_gives_the_resources_back_and_the_next_request_fits():
    table = _table(cpus=1)
    first, second = _request(1), _request(1)
    table.add(first)
    table.add(second)
    table.schedule()
    lease = table.granted(first, worker="w1")
    assert lease.state is S.GRANTED and table.leases == {lease.lease_id: lease}
    assert table.schedule() == []
    assert table.give_back(lease.lease_id) is lease
    assert lease.state is S.RETURNED and table.leases == {}
    assert _free_cpus(table) == 1
    assert table.give_back(lease.lease_id) is None  # returned twice: nothing happens
    assert table.schedule() == [(GrantStep.GRANT, second)]


def test_a_failed_grant_and_a_revoked_lease_release_their_resources():
    table = _table(cpus=1)
    request = _request(1)
    table.add(request)
    table.schedule()
    table.grant_failed(request)  # no worker could start
    assert request.state is S.REVOKED and _free_cpus(table) == 1
    again = _request(1)
    table.add(again)
    table.schedule()
    lease = table.granted(again, worker="w")
    assert table.revoke(lease.lease_id) is lease  # its worker died
    assert lease.state is S.REVOKED and _free_cpus(table) == 1


def test_a_blocked_worker_lends_its_cpus_until_unblocked():
    table = _table(cpus=1)
    request = _request(1)
    table.add(request)
    table.schedule()
    lease = table.granted(request, worker="w")
    assert table.worker_blocked(lease, is_actor=False) and _free_cpus(table) == 1
    assert not table.worker_blocked(lease, is_actor=False)  # lent already
    other = _request(1)
    table.add(other)
    assert table.schedule() == [(GrantStep.GRANT, other)]  # ran on the lent CPU
    assert table.worker_unblocked(lease) and _free_cpus(table) == -1  # oversubscribed
    table.give_back(lease.lease_id)
    assert _free_cpus(table) == 0
    actor_lease = _table(cpus=1)
    r = _request(1)
    actor_lease.add(r)
    actor_lease.schedule()
    assert not actor_lease.worker_blocked(actor_lease.granted(r, "a"), is_actor=True)


def test_returning_a_lease_whose_cpus_are_lent_does_not_count_them_twice():
    table = _table(cpus=1)
    request = _request(1)
    table.add(request)
    table.schedule()
    lease = table.granted(request, worker="w")
    table.worker_blocked(lease, is_actor=False)
    table.give_back(lease.lease_id)
    assert _free_cpus(table) == 1


def test_cancel_drops_only_that_requesters_queued_requests():
    table = _table(cpus=0.5)
    mine, theirs = _request(1, requester="a"), _request(1, requester="b")
    table.add(mine)
    table.add(theirs)
    assert table.cancel_requests("a") == [mine]
    assert mine.state is S.REVOKED and table.queue == [theirs]


def test_a_retiring_lease_is_returned_like_any_other():
    table = _table(cpus=1)
    request = _request(1)
    table.add(request)
    table.schedule()
    lease = table.granted(request, worker="w")
    assert table.retire(lease.lease_id).state is S.RETIRING
    assert table.retire(lease.lease_id).state is S.RETIRING  # said twice: no change
    assert table.give_back(lease.lease_id).state is S.RETURNED
    assert _free_cpus(table) == 1


def test_bundle_requests_are_served_only_from_their_bundle():
    bundle = NodeResources({"CPU": 1})
    table = _table(cpus=0, bundle_pool=bundle)
    request = _request(1, bundle=("pg", 0))
    table.add(request)
    assert table.schedule() == [(GrantStep.GRANT, request)]
    assert request.pool is bundle and bundle.available_floats()["CPU"] == 0
    waiting = _table(cpus=4, bundle_pool=None)  # its bundle is not committed here yet
    pending = _request(1, bundle=("pg", 0))
    waiting.add(pending)
    assert waiting.schedule() == [] and waiting.queue == [pending]
