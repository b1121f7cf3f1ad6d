"""NODE_HEARTBEAT (node agent -> control store), with named fields (it was a
list whose later fields were read only if the list was long enough).

A map of named fields, as the other messages of ``lease_messages`` and
``actor_messages``: one per node per heartbeat, off the per-task path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shoal.rpc.lease_messages import body_map


@dataclass(frozen=True)
class NodeHeartbeatBody:
    """What a node reports each heartbeat: free resources, the demand queued
    there, its store's usage, its counters, and the actor leases it has seen."""

    node_id: str
    available: dict  # free resources (floats), the store's memory included
    pending: int  # lease requests queued
    demand: list = field(default_factory=list)  # [shape, count, infeasible] per shape
    store: dict | None = None  # the object store's summary (``shoal status``)
    metrics: dict | None = None  # node_metrics' wire form (``/metrics``)
    # [the last actor lease number seen, what the queued actor leases will take]
    actor_leases: list | None = None

    def to_wire(self) -> dict:
        wire: dict = {"node_id": self.node_id, "available": self.available,
                      "pending": self.pending}
        if self.demand:
            wire["demand"] = self.demand
        if self.store is not None:
            wire["store"] = self.store
        if self.metrics is not None:
            wire["metrics"] = self.metrics
        if self.actor_leases is not None:
            wire["actor_leases"] = self.actor_leases
        return wire

    @classmethod
    def from_wire(cls, body: object) -> NodeHeartbeatBody:
        w = body_map(body, "NODE_HEARTBEAT", ("node_id", "available", "pending"))
        return cls(w["node_id"], w["available"], w["pending"], w.get("demand") or [],
                   w.get("store"), w.get("metrics"), w.get("actor_leases"))
