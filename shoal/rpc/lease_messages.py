"""The lease messages between an owner (or the control store) and a node
agent, with named fields (they were positional lists with ``""`` placeholders).

On the wire each is a msgpack map; a field left at its default is not sent.
``from_wire`` refuses a body that is not a map or lacks a required field,
naming what was wrong.  REQUEST_LEASE is answered by a :class:`LeaseGrant`, a
:class:`LeaseSpill` (ask that node instead) or None (the request was
cancelled): :func:`lease_reply_from_wire` tells them apart.  A lease is asked
for once per worker and then reused, so these maps are off the per-task path.
"""

from __future__ import annotations

from dataclasses import dataclass


def body_map(body: object, what: str, required: tuple[str, ...]) -> dict:
    """``body`` as a map with ``required`` fields, else an error naming ``what``
    and what was wrong (shared by the messages with named fields)."""
    if not isinstance(body, dict):
        raise TypeError(f"{what} body must be a map of named fields, got "
                        f"{type(body).__name__}")
    missing = [name for name in required if name not in body]
    if missing:
        raise ValueError(f"{what} body lacks {', '.join(missing)}")
    return body


@dataclass(frozen=True)
class LeaseRequestBody:
    """REQUEST_LEASE: lend me a worker with this shape."""

    job_id: str
    shape: dict  # resource name -> amount (floats, as the user wrote them)
    label: str = ""  # what the worker will run (its title); owners leave it empty
    strategy: list | None = None  # task_spec.strategy_to_wire form
    spilled: bool = False  # queue it here, never redirect it (already redirected, or PG)
    runtime_env: dict | None = None  # resolved (runtime_env.spec); None: default workers

    def to_wire(self) -> dict:
        wire: dict = {"job_id": self.job_id, "shape": self.shape}
        if self.label:
            wire["label"] = self.label
        if self.strategy is not None:
            wire["strategy"] = self.strategy
        if self.spilled:
            wire["spilled"] = True
        if self.runtime_env:
            wire["runtime_env"] = self.runtime_env
        return wire

    @classmethod
    def from_wire(cls, body: object) -> LeaseRequestBody:
        w = body_map(body, "REQUEST_LEASE", ("job_id", "shape"))
        return cls(w["job_id"], w["shape"], w.get("label", ""), w.get("strategy"),
                   bool(w.get("spilled", False)), w.get("runtime_env") or None)


@dataclass(frozen=True)
class ReturnLeaseBody:
    """RETURN_LEASE: the owner is done with the lease."""

    lease_id: int
    kill: bool = False  # end the worker (the owner could not reach it)
    retire: bool = False  # the worker ran its max_calls: it leaves (core/retire.py)

    def to_wire(self) -> dict:
        wire: dict = {"lease_id": self.lease_id}
        if self.kill:
            wire["kill"] = True
        if self.retire:
            wire["retire"] = True
        return wire

    @classmethod
    def from_wire(cls, body: object) -> ReturnLeaseBody:
        w = body_map(body, "RETURN_LEASE", ("lease_id",))
        return cls(w["lease_id"], bool(w.get("kill", False)), bool(w.get("retire", False)))


@dataclass(frozen=True)
class LeaseGrant:
    """REQUEST_LEASE's answer: this worker is yours until you return the lease."""

    lease_id: int
    worker_id: str
    worker_address: str
    node_id: str
    shape: dict  # the resources granted (floats)
    accelerators: dict | None = None  # {"GPU": [ids]} it holds; None: none

    def to_wire(self) -> dict:
        wire: dict = {"lease_id": self.lease_id, "worker_id": self.worker_id,
                      "worker_address": self.worker_address, "node_id": self.node_id,
                      "shape": self.shape}
        if self.accelerators:
            wire["accelerators"] = self.accelerators
        return wire

    @classmethod
    def from_wire(cls, body: object) -> LeaseGrant:
        w = body_map(body, "lease grant",
                 ("lease_id", "worker_id", "worker_address", "node_id", "shape"))
        return cls(w["lease_id"], w["worker_id"], w["worker_address"], w["node_id"],
                   w["shape"], w.get("accelerators") or None)


@dataclass(frozen=True)
class LeaseSpill:
    """REQUEST_LEASE's answer: this node will not queue it; ask that node."""

    node_id: str
    address: str  # that node's agent

    def to_wire(self) -> dict:
        return {"spill_node_id": self.node_id, "spill_address": self.address}

    @classmethod
    def from_wire(cls, body: object) -> LeaseSpill:
        w = body_map(body, "lease spill", ("spill_node_id", "spill_address"))
        return cls(w["spill_node_id"], w["spill_address"])


def lease_reply_from_wire(body: object) -> LeaseGrant | LeaseSpill | None:
    """REQUEST_LEASE's reply: a grant, a redirect, or None (cancelled)."""
    if body is None:
        return None
    if isinstance(body, dict) and "spill_node_id" in body:
        return LeaseSpill.from_wire(body)
    return LeaseGrant.from_wire(body)


@dataclass(frozen=True)
class ActorLeaseBody:
    """LEASE_ACTOR_WORKER (control store -> agent): lease a dedicated worker and
    run the actor's constructor there."""

    actor_id: str
    job_id: str
    shape: dict  # resource name -> amount (floats)
    label: str  # the actor's class name (the worker's title)
    creation: bytes  # the pickled constructor call
    num_restarts: int = 0  # > 0: a restart (the actor sees it in its runtime context)
    strategy: list | None = None  # task_spec.strategy_to_wire form
    runtime_env: dict | None = None  # resolved; None: default workers
    lease_number: int = 0  # the control store's number for it (heartbeats echo the last)

    def to_wire(self) -> dict:
        wire: dict = {"actor_id": self.actor_id, "job_id": self.job_id, "shape": self.shape,
                      "label": self.label, "creation": self.creation}
        if self.num_restarts:
            wire["num_restarts"] = self.num_restarts
        if self.strategy is not None:
            wire["strategy"] = self.strategy
        if self.runtime_env:
            wire["runtime_env"] = self.runtime_env
        if self.lease_number:
            wire["lease_number"] = self.lease_number
        return wire

    @classmethod
    def from_wire(cls, body: object) -> ActorLeaseBody:
        w = body_map(body, "LEASE_ACTOR_WORKER",
                 ("actor_id", "job_id", "shape", "label", "creation"))
        return cls(w["actor_id"], w["job_id"], w["shape"], w["label"], w["creation"],
                   w.get("num_restarts", 0), w.get("strategy"), w.get("runtime_env") or None,
                   w.get("lease_number", 0))


@dataclass(frozen=True)
class KillWorkerBody:
    """KILL_WORKER (control store -> agent): end this worker, or the worker
    running this actor (named by actor when the store does not know the worker
    yet: its constructor may still run)."""

    worker_id: str | None = None
    actor_id: str | None = None

    def to_wire(self) -> dict:
        wire: dict = {}
        if self.worker_id is not None:
            wire["worker_id"] = self.worker_id
        if self.actor_id is not None:
            wire["actor_id"] = self.actor_id
        return wire

    @classmethod
    def from_wire(cls, body: object) -> KillWorkerBody:
        w = body_map(body, "KILL_WORKER", ())
        if "worker_id" not in w and "actor_id" not in w:
            raise ValueError("KILL_WORKER body names neither a worker_id nor an actor_id")
        return cls(w.get("worker_id"), w.get("actor_id"))
