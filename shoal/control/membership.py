"""Cluster membership and failure detection, without I/O, clock or sockets.

Theory of operation
-------------------
Every node agent registers once (REGISTER_NODE), on its connection to the
control store, and then heartbeats (NODE_HEARTBEAT): every ``heartbeat_s``
seconds, and soon after its resources change.  The control store tells the
agent the period in its reply to REGISTER_NODE, so one setting on the head
(``timeout_s``; ``SHOAL_NODE_TIMEOUT_S``) governs the whole cluster.

A node is declared dead, once and for good, when

1. its connection to the control store closes: the agent exited or was
   killed and the kernel closed its socket.  This is detected at once.
2. no heartbeat arrived for ``timeout_s``: the agent hangs, its machine froze,
   or the link is cut, and the socket stays open.  :meth:`Membership.check`,
   called every ``check_interval_s``, finds these nodes, so a silent node is
   declared dead at most ``timeout_s + check_interval_s`` after its last
   heartbeat.

The head's own node agent lives in the control store's process and is not
timed out (``monitored=False``): if that process hangs, nobody is left to judge.

A dead node stays in the table (``shoal.nodes()`` lists it with ``Alive``
False) and never comes back under the same id.  The control store closes its
connection, and an agent that loses the control store exits, so a node that
was only cut off does not linger half-alive (fencing).  A restarted agent joins
as a new node.

Stall guard: if ``check`` runs late by more than half the timeout (the control
store's own event loop was blocked), heartbeats may be sitting unread in socket
buffers.  Then every live node's clock is restarted instead of declaring the
whole cluster dead.

::

    node agent                     control store                    "node" subscribers
      | REGISTER_NODE(info) ------>  | version checked, recorded
      | <----------- {heartbeat_s}   | -- {node_id, alive: True} -------> |
      | NODE_HEARTBEAT(...) ------>  | (every heartbeat_s, and on change)
      |   ... silence > timeout_s, or the connection closed ...
      |                              | node dead; its actors DEAD
      | <---- connection closed ---  | -- {node_id, alive: False, cause} -> |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_NODE_TIMEOUT_S = 5.0
HEARTBEATS_PER_TIMEOUT = 5  # heartbeat_s = timeout_s / 5
CHECKS_PER_TIMEOUT = 10  # check_interval_s = timeout_s / 10


@dataclass
class NodeRecord:
    """One node as the control store sees it.  ``conn`` is the agent's
    connection; ``demand`` lists ``[shape, count, infeasible]`` of the lease
    requests queued at the node that do not fit right now."""

    node_id: str
    address: str
    resources_total: dict
    resources_available: dict
    store_path: str
    conn: Any
    last_heartbeat: float
    hostname: str = ""
    version: str = ""
    data_address: str = ""  # where the agent serves object chunks (node/data_channel.py)
    alive: bool = True
    monitored: bool = True  # False for the head's own node: it shares our process
    pending_leases: int = 0
    demand: list = field(default_factory=list)
    death_cause: str = ""
    store: dict = field(default_factory=dict)  # object store usage and spilling totals
    metrics: dict = field(default_factory=dict)  # transfer bytes, lease latency (node_metrics)
    actor_leases_sent: int = 0  # the number of the last actor lease sent here
    actors_in_flight: dict = field(default_factory=dict)  # lease number -> shape, not seen yet
    actors_queued: dict = field(default_factory=dict)  # what the actor leases queued there take

    def send_actor(self, shape: dict) -> int:
        """Number an actor lease about to be sent here, and count it against this
        node until a heartbeat says the node has seen it (then the node's own
        numbers count it: granted, or queued).  Without this, actors made in a
        burst all went to the node that looked freest and waited there for
        resources other nodes had."""
        self.actor_leases_sent += 1
        self.actors_in_flight[self.actor_leases_sent] = shape
        return self.actor_leases_sent

    def free_for_actors(self, key: str) -> float:
        """``key`` free for one more actor: the heartbeat's, less the actor leases
        queued there and those on their way."""
        return (self.resources_available.get(key, 0) - self.actors_queued.get(key, 0)
                - sum(shape.get(key, 0) for shape in self.actors_in_flight.values()))

    def public(self) -> dict:
        return {
            "node_id": self.node_id,
            "address": self.address,
            "data_address": self.data_address,
            "alive": self.alive,
            "resources_total": self.resources_total,
            "resources_available": self.resources_available if self.alive else {},
            "store_path": self.store_path,
            "hostname": self.hostname,
            "pending_leases": self.pending_leases if self.alive else 0,
            "demand": self.demand if self.alive else [],
            "death_cause": self.death_cause,
            "version": self.version,
            "store": self.store,
        }


class Membership:
    """The node table and the failure detector.  Mutates; loop thread only."""

    def __init__(self, timeout_s: float = DEFAULT_NODE_TIMEOUT_S) -> None:
        if not timeout_s > 0:
            raise ValueError(f"the node timeout must be > 0 seconds, got {timeout_s!r}")
        self.timeout_s = float(timeout_s)
        self.nodes: dict[str, NodeRecord] = {}
        self._last_check: float | None = None

    @property
    def heartbeat_s(self) -> float:
        return self.timeout_s / HEARTBEATS_PER_TIMEOUT

    @property
    def check_interval_s(self) -> float:
        return max(0.01, self.timeout_s / CHECKS_PER_TIMEOUT)

    def register(self, info: dict, conn: Any, now: float, monitored: bool = True) -> NodeRecord:
        node_id = info["node_id"]
        known = self.nodes.get(node_id)
        if known is not None:
            state = "alive" if known.alive else "declared dead"
            raise ValueError(f"a node with id {node_id} is already registered ({state}); "
                             "a restarted node must join with a new id")
        record = NodeRecord(
            node_id=node_id,
            address=info["address"],
            resources_total=info["resources_total"],
            resources_available=info["resources_available"],
            store_path=info.get("store_path", ""),
            conn=conn,
            last_heartbeat=now,
            hostname=info.get("hostname", ""),
            version=info.get("version", ""),
            data_address=info.get("data_address", ""),
            monitored=monitored,
        )
        self.nodes[node_id] = record
        return record

    def heartbeat(self, node_id: str, available: dict, pending: int, demand: list,
                  now: float, store: dict | None = None, metrics: dict | None = None,
                  actor_leases: list | None = None) -> bool:
        """Record a heartbeat; False if the node is unknown or already dead."""
        record = self.nodes.get(node_id)
        if record is None or not record.alive:
            return False
        record.resources_available = available
        if actor_leases is not None:
            seen, record.actors_queued = actor_leases
            for number in [n for n in record.actors_in_flight if n <= seen]:
                del record.actors_in_flight[number]
        record.pending_leases = pending
        record.demand = demand
        if store is not None:
            record.store = store
        if metrics is not None:
            record.metrics = metrics
        record.last_heartbeat = now
        return True

    def connection_closed(self, node_id: str) -> NodeRecord | None:
        """The node's connection closed; returns the record if this killed it."""
        return self._kill(node_id, "its node agent exited (its connection to the control "
                                   "store closed)")

    def check(self, now: float) -> list[NodeRecord]:
        """Declare dead every node silent for longer than the timeout; returns them."""
        last, self._last_check = self._last_check, now
        if last is not None and now - last > self.timeout_s / 2:
            for record in self.alive():
                record.last_heartbeat = max(record.last_heartbeat, now)
            return []
        dead = []
        for record in self.alive():
            if not record.monitored:
                continue
            silent = now - record.last_heartbeat
            if silent > self.timeout_s:
                dead.append(self._kill(record.node_id, f"no heartbeat for {silent:.1f} s "
                                                       f"(timeout {self.timeout_s:g} s)"))
        return [r for r in dead if r is not None]

    def _kill(self, node_id: str, cause: str) -> NodeRecord | None:
        record = self.nodes.get(node_id)
        if record is None or not record.alive:
            return None
        record.alive = False
        record.death_cause = cause
        return record

    def alive(self) -> list[NodeRecord]:
        return [n for n in self.nodes.values() if n.alive]

    def resources(self) -> tuple[dict[str, float], dict[str, float]]:
        """(total, available) summed over the live nodes."""
        total: dict[str, float] = {}
        available: dict[str, float] = {}
        for node in self.alive():
            for k, v in node.resources_total.items():
                total[k] = total.get(k, 0) + v
            for k, v in node.resources_available.items():
                available[k] = available.get(k, 0) + v
        return total, available
