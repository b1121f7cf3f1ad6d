"""The node agent's leases: the request queue, the grant decision, resources
taken and given back.  Pure: no sockets, no loop; the agent performs.

Theory of operation
-------------------
A *lease* lends one worker process, with a resource shape taken from the node
(or from a placement-group bundle), to a requester: an owner that pushes tasks
to the worker directly, or the control store placing an actor.  Each lease goes
through :class:`LeaseState` by :data:`TRANSITIONS`; an event its state does not
allow raises :class:`InvalidLeaseTransition`::

    owner / control store        LeaseTable (pure)             agent (performer)
      | REQUEST_LEASE(shape) -->  | add: REQUESTED (queued)
      |                           | schedule(): the shape fits
      |                           |   -> GRANT, resources taken: GRANTING  -> find or start
      |                           | granted(worker): GRANTED          <- a worker
      | <------- [lease, worker addr, node, shape, GPU ids] -----------------|
      | PUSH_TASK ... to the worker (lease_dispatch.py on the owner's side)
      | RETURN_LEASE(lease) --->  | give_back: RETURNED, resources back -> worker idle
      |                           |                                       (or killed)

    REQUESTED --FITS--> GRANTING --WORKER_FOUND--> GRANTED --RETURN--> RETURNED
                                                      |  ^
                                              RETIRE  v  | (none)
                                                   RETIRING --RETURN--> RETURNED
    any live state --REVOKE--> REVOKED   (cancelled, the requester left, the
                                          worker died, no worker could start)

* REQUESTED: queued (``LeaseTable.queue``, FIFO) until its shape fits.  A shape
  this node can never hold is reported once (WARN_INFEASIBLE) and stays queued:
  a node that fits may join (then the agent spills it there).
* GRANTING: the resources are taken (``pool``, ``gpus``); the agent is finding
  an idle worker of the job (or of its runtime env) or starting one.
* GRANTED: the requester holds the worker.  A worker blocked in ``get`` lends
  the lease's CPUs back to the node (``cpu_lent``) and takes them again,
  oversubscribing if need be, when it is unblocked.
* RETIRING: the worker ran its function's ``max_calls`` tasks; it takes no more
  tasks and exits once it owns nothing that is still in scope.  Its requester
  returns the lease as it would an idle one.
* RETURNED, REVOKED: final; the resources are back in their pool.

This module keeps the tables; the agent does the I/O (answering requests,
starting and killing workers, telling the control store).
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from shoal.node.resources import NodeResources


class LeaseState(enum.Enum):
    REQUESTED = enum.auto()
    GRANTING = enum.auto()
    GRANTED = enum.auto()
    RETIRING = enum.auto()
    RETURNED = enum.auto()
    REVOKED = enum.auto()


class LeaseEvent(enum.Enum):
    FITS = enum.auto()          # the shape fits now: resources taken
    WORKER_FOUND = enum.auto()  # a worker is the requester's
    RETIRE = enum.auto()        # the worker reached max_calls
    RETURN = enum.auto()        # the requester gave it back
    REVOKE = enum.auto()        # cancelled, requester gone, worker died or never started


class InvalidLeaseTransition(RuntimeError):
    """An event that the lease's state does not allow (a bug in the caller)."""


_S, _E = LeaseState, LeaseEvent
TRANSITIONS: dict[LeaseState, dict[LeaseEvent, LeaseState]] = {
    _S.REQUESTED: {_E.FITS: _S.GRANTING, _E.REVOKE: _S.REVOKED},
    _S.GRANTING: {_E.WORKER_FOUND: _S.GRANTED, _E.REVOKE: _S.REVOKED},
    _S.GRANTED: {_E.RETIRE: _S.RETIRING, _E.RETURN: _S.RETURNED, _E.REVOKE: _S.REVOKED},
    _S.RETIRING: {_E.RETURN: _S.RETURNED, _E.REVOKE: _S.REVOKED},
    _S.RETURNED: {},
    _S.REVOKED: {},
}
HOLDS_RESOURCES = frozenset({_S.GRANTING, _S.GRANTED, _S.RETIRING})


def next_lease_state(state: LeaseState, event: LeaseEvent) -> LeaseState:
    try:
        return TRANSITIONS[state][event]
    except KeyError:
        raise InvalidLeaseTransition(
            f"a lease in state {state.name} cannot take event {event.name}") from None


@dataclass(eq=False)
class LeaseRequest:
    """One lease from its request to its end (``Lease`` once granted)."""

    shape: dict[str, int]  # resource units (resources.to_units)
    job_id: str
    label: str  # the function or actor class (worker titles, logs)
    requester: object  # the connection that asked: leases end with it
    future: asyncio.Future | None  # the requester's answer (the agent sets it)
    warned: bool = False  # told that no node can ever hold its shape
    strategy: list | None = None
    spillable: bool = False  # a task lease that was not redirected here
    runtime_env: dict | None = None  # resolved (runtime_env.spec); None: the default workers
    bundle: tuple[str, int] | None = None  # (pg_id, index): served from that bundle only
    pool: NodeResources | None = None  # GRANTING on: what it was granted from
    gpus: list = field(default_factory=list)  # [[gpu id, units]] it was granted
    queued_at: float = field(default_factory=time.monotonic)  # lease latency (metrics)
    for_actor: bool = False  # an actor's lease from the control store, not in a bundle
    makes_actor: bool = False  # an actor's lease (in a bundle too): a worker that never
    #                            ran a task hosts it (agent._waiter_for)
    state: LeaseState = LeaseState.REQUESTED

    def advance(self, event: LeaseEvent) -> LeaseState:
        self.state = next_lease_state(self.state, event)
        return self.state


@dataclass(eq=False)
class Lease:
    """A granted lease (GRANTED, RETIRING, then RETURNED or REVOKED)."""

    lease_id: int
    shape: dict[str, int]
    worker: object  # worker_pool.Worker
    requester: object
    pool: NodeResources
    gpus: list = field(default_factory=list)
    bundle: tuple[str, int] | None = None
    cpu_lent: bool = False  # its worker is blocked in get: its CPUs are the node's
    state: LeaseState = LeaseState.GRANTED

    def advance(self, event: LeaseEvent) -> LeaseState:
        self.state = next_lease_state(self.state, event)
        return self.state


class GrantStep(enum.Enum):
    GRANT = enum.auto()            # resources taken: find the request a worker
    WARN_INFEASIBLE = enum.auto()  # no node can hold it: tell its requester (once)


class LeaseTable:
    """The queue and the granted leases of one node.  ``pick_bundle(request)``:
    the pool of a placement-group request's bundle, None while it has none."""

    def __init__(self, resources: NodeResources,
                 pick_bundle: Callable[[LeaseRequest], NodeResources | None]) -> None:
        self.resources = resources
        self.pick_bundle = pick_bundle
        self.queue: list[LeaseRequest] = []  # REQUESTED, in arrival order
        self.leases: dict[int, Lease] = {}  # GRANTED and RETIRING, by lease id
        self._ids = itertools.count(1)

    def add(self, request: LeaseRequest) -> None:
        self.queue.append(request)

    def schedule(self) -> list[tuple[GrantStep, LeaseRequest]]:
        """Grant every queued request whose shape fits now, in order (a request
        that does not fit does not hold up smaller ones behind it)."""
        steps = []
        for request in list(self.queue):
            if request.future is not None and request.future.done():
                self.drop(request)  # its requester gave up
                continue
            if request.bundle is not None:  # only its placement group's bundle will do
                pool = self.pick_bundle(request)
                if pool is None:
                    continue
            elif not self.resources.feasible(request.shape):
                if not request.warned:
                    request.warned = True
                    steps.append((GrantStep.WARN_INFEASIBLE, request))
                continue
            else:
                pool = self.resources
            if pool.fits(request.shape):
                self.queue.remove(request)
                request.pool = pool
                request.gpus = pool.acquire(request.shape)
                request.advance(LeaseEvent.FITS)
                steps.append((GrantStep.GRANT, request))
        return steps

    def drop(self, request: LeaseRequest) -> None:
        """A queued request ends unanswered (cancelled, spilled elsewhere, its
        requester or its placement group gone)."""
        if request in self.queue:
            self.queue.remove(request)
        if request.state is LeaseState.REQUESTED:
            request.advance(LeaseEvent.REVOKE)

    def cancel_requests(self, requester: object) -> list[LeaseRequest]:
        """Drop the requester's queued requests; returns them (to answer None)."""
        mine = [r for r in self.queue if r.requester is requester]
        for request in mine:
            self.drop(request)
        return mine

    def grant_failed(self, request: LeaseRequest) -> None:
        """No worker for a GRANTING request (or nobody left to take it)."""
        request.pool.release(request.shape, request.gpus)
        request.advance(LeaseEvent.REVOKE)

    def granted(self, request: LeaseRequest, worker: object) -> Lease:
        request.advance(LeaseEvent.WORKER_FOUND)
        lease = Lease(next(self._ids), request.shape, worker, request.requester,
                      request.pool, request.gpus, request.bundle)
        self.leases[lease.lease_id] = lease
        return lease

    def retire(self, lease_id: int) -> Lease | None:
        lease = self.leases.get(lease_id)
        if lease is not None and lease.state is LeaseState.GRANTED:
            lease.advance(LeaseEvent.RETIRE)
        return lease

    def give_back(self, lease_id: int) -> Lease | None:
        """RETURN_LEASE: the resources go back; None if it already ended."""
        return self._end(lease_id, LeaseEvent.RETURN)

    def revoke(self, lease_id: int) -> Lease | None:
        """Its worker died or its requester left: the resources go back."""
        return self._end(lease_id, LeaseEvent.REVOKE)

    def _end(self, lease_id: int, event: LeaseEvent) -> Lease | None:
        lease = self.leases.pop(lease_id, None)
        if lease is None:
            return None
        lease.advance(event)
        shape = dict(lease.shape)
        if lease.cpu_lent:
            shape.pop("CPU", None)
        lease.pool.release(shape, lease.gpus)
        return lease

    def worker_blocked(self, lease: Lease, is_actor: bool) -> bool:
        """Lend the lease's CPUs to the node while its worker waits in ``get``; True
        if that freed any.  An actor keeps its CPUs for its lifetime (as in Ray)."""
        if lease.cpu_lent or "CPU" not in lease.shape or is_actor:
            return False
        lease.cpu_lent = True
        lease.pool.release({"CPU": lease.shape["CPU"]})
        return True

    def worker_unblocked(self, lease: Lease) -> bool:
        """Take the lent CPUs back, even if that oversubscribes the node."""
        if not lease.cpu_lent:
            return False
        lease.cpu_lent = False
        lease.pool.acquire({"CPU": lease.shape["CPU"]}, force=True)
        return True
