"""A node agent's view of the other nodes, and where a lease request should go.

Theory of operation
-------------------
Each agent keeps a copy of the control store's node table: addresses (RPC and
data), total resources, and the available resources the nodes last reported in
their heartbeats.  It is refreshed from GET_NODES once per heartbeat period and
at once on the ``node`` pubsub channel (a node joined or died), so it is at most
one heartbeat period stale.  Nothing here does I/O.

:meth:`ClusterView.place` decides a lease request that the local node does not
grant at once (the agent never calls it for a request that fits here and has
no strategy, so the local fast path costs nothing)::

    spilled-in request (already redirected once)  -> LOCAL (queue here)
    NodeAffinity(node, soft)
        node is us                                -> LOCAL (soft & infeasible here: DEFAULT)
        node alive elsewhere                      -> SPILL(node) (soft & infeasible there: DEFAULT)
        node dead / unknown                       -> soft: DEFAULT; hard: FAIL
    SPREAD                                        -> next feasible node, round-robin
                                                     (nodes with room now first)
    DEFAULT
        fits here now                             -> LOCAL
        another node has room now                 -> SPILL(the one with the most room)
        feasible here                             -> LOCAL (wait for room)
        feasible elsewhere only                   -> SPILL(a feasible node)
        feasible nowhere                          -> LOCAL (queued, warned; re-placed
                                                     when a node joins)

A redirected request is marked *spilled*: the node it lands on queues it and
does not spill it on arrival, so a request moves at most once (twice with
locality: owner -> the node holding its arguments -> a node with room).  A
request that has waited in a node's queue for a heartbeat period and still does
not fit there moves on to a node that reports room now
(:meth:`ClusterView.claim_room_elsewhere`): the room it came for may have gone
to an actor, which can hold it for ever.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from shoal.node.resources import to_units

SPREAD = "SPREAD"
NODE_AFFINITY = "NODE_AFFINITY"


class Decision(enum.Enum):
    LOCAL = "local"
    SPILL = "spill"
    FAIL = "fail"


@dataclass
class NodeView:
    node_id: str
    address: str
    data_address: str = ""
    total: dict[str, int] = field(default_factory=dict)  # resource units
    available: dict[str, int] = field(default_factory=dict)
    alive: bool = True

    def feasible(self, shape: Mapping[str, int]) -> bool:
        return all(self.total.get(k, 0) >= v for k, v in shape.items())

    def fits(self, shape: Mapping[str, int]) -> bool:
        return all(self.available.get(k, 0) >= v for k, v in shape.items())

    def room(self, shape: Mapping[str, int]) -> int:
        keys = list(shape) or ["CPU"]
        return min(self.available.get(k, 0) - shape.get(k, 0) for k in keys)


@dataclass(frozen=True)
class Placement:
    decision: Decision
    node: NodeView | None = None
    reason: str = ""


LOCAL = Placement(Decision.LOCAL)


class LocalNode:
    """What ``place`` needs to know about this node (NodeResources fits it)."""

    def feasible(self, shape: Mapping[str, int]) -> bool:  # pragma: no cover - protocol
        raise NotImplementedError

    def fits(self, shape: Mapping[str, int]) -> bool:  # pragma: no cover - protocol
        raise NotImplementedError


class ClusterView:
    """The node table as this agent sees it.  Mutates; loop thread only."""

    def __init__(self, local_node_id: str) -> None:
        self.local_node_id = local_node_id
        self.nodes: dict[str, NodeView] = {}
        self._spread_next = 0

    # ---- updates ---------------------------------------------------------------------
    def update(self, records: list[dict]) -> bool:
        """Replace the table with GET_NODES records; True if a node appeared."""
        appeared = False
        for record in records:
            node_id = record["node_id"]
            known = self.nodes.get(node_id)
            alive = bool(record.get("alive", True))
            if known is None:
                appeared |= alive
                known = self.nodes[node_id] = NodeView(node_id, record.get("address", ""))
            elif not known.alive:
                continue  # a dead node never comes back (a stale snapshot may say so)
            known.address = record.get("address", known.address)
            known.data_address = record.get("data_address", known.data_address)
            known.total = to_units(record.get("resources_total") or {})
            known.available = to_units(record.get("resources_available") or {})
            known.alive = alive
        return appeared

    def on_node_event(self, message: dict) -> bool:
        """A ``node`` pubsub message; True if a node joined."""
        if message.get("alive"):
            record = dict(message)
            record.setdefault("resources_available", message.get("resources_total") or {})
            return self.update([record])
        known = self.nodes.get(message.get("node_id", ""))
        if known is not None:
            known.alive = False
        return False

    # ---- queries -----------------------------------------------------------------------
    def has_peers(self) -> bool:
        return any(n.alive and n.node_id != self.local_node_id for n in self.nodes.values())

    def alive_node(self, node_id: str) -> NodeView | None:
        node = self.nodes.get(node_id)
        return node if node is not None and node.alive else None

    def _remote(self) -> list[NodeView]:
        return sorted((n for n in self.nodes.values()
                       if n.alive and n.node_id != self.local_node_id),
                      key=lambda n: n.node_id)

    def claim_room_elsewhere(self, shape: Mapping[str, int]) -> NodeView | None:
        """The other node with the most room for ``shape`` now, its room taken in
        this view (so the next request does not chase the same room), or None."""
        with_room = [n for n in self._remote() if n.fits(shape)]
        if not with_room:
            return None
        node = max(with_room, key=lambda n: n.room(shape))
        for key, units in shape.items():
            node.available[key] = node.available.get(key, 0) - units
        return node

    # ---- placement -----------------------------------------------------------------------
    def place(self, local: LocalNode, shape: Mapping[str, int], strategy: list | None,
              spilled: bool) -> Placement:
        """Where a lease request for ``shape`` should be served (see the table
        in the module docstring).  Mutates the SPREAD cursor."""
        if spilled:
            return LOCAL
        kind = strategy[0] if strategy else None
        if kind == NODE_AFFINITY:
            return self._affinity(local, shape, strategy[1], bool(strategy[2]))
        if kind == SPREAD:
            return self._spread(local, shape)
        return self._default(local, shape)

    def _affinity(self, local: LocalNode, shape, node_id: str, soft: bool) -> Placement:
        if node_id == self.local_node_id:
            if soft and not local.feasible(shape):
                return self._default(local, shape)
            return LOCAL
        node = self.alive_node(node_id)
        if node is None:
            if soft:
                return self._default(local, shape)
            return Placement(Decision.FAIL, reason=(
                f"NodeAffinitySchedulingStrategy(soft=False) names node {node_id}, "
                "which is not alive in this cluster"))
        if soft and not node.feasible(shape):
            return self._default(local, shape)
        return Placement(Decision.SPILL, node)

    def _spread(self, local: LocalNode, shape) -> Placement:
        me = NodeView(self.local_node_id, "")
        candidates: list[tuple[NodeView, bool]] = []
        if local.feasible(shape):
            candidates.append((me, local.fits(shape)))
        candidates += [(n, n.fits(shape)) for n in self._remote() if n.feasible(shape)]
        if not candidates:
            return LOCAL
        with_room = [n for n, fits in candidates if fits] or [n for n, _ in candidates]
        with_room.sort(key=lambda n: n.node_id)
        node = with_room[self._spread_next % len(with_room)]
        self._spread_next += 1
        return LOCAL if node is me else Placement(Decision.SPILL, node)

    def _default(self, local: LocalNode, shape) -> Placement:
        if local.fits(shape):
            return LOCAL
        remote = [n for n in self._remote() if n.feasible(shape)]
        with_room = [n for n in remote if n.fits(shape)]
        if with_room:
            return Placement(Decision.SPILL, max(with_room, key=lambda n: n.room(shape)))
        if local.feasible(shape) or not remote:
            return LOCAL
        return Placement(Decision.SPILL, max(remote, key=lambda n: n.room(shape)))
