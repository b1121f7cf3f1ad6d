"""Placement groups as the control store sees them: where bundles go, and the
two-phase commit that reserves them.  Pure: no sockets, no clock, no tasks.

Theory of operation
-------------------
A placement group is a list of *bundles* (resource shapes) reserved together,
atomically, across the cluster.  The control store picks a node for every
bundle that has none (:func:`plan`, by the group's strategy), and then runs one
*round* of two-phase commit over the chosen nodes::

    control store                         node agent (every chosen node)
      | PREPARE(pg, round, bundles) ----->  reserve them, all or none (not usable yet)
      | <----------------------- ok/fail
      |   all ok:   COMMIT(pg, round) ->  the reservation becomes usable by leases
      |   any fail: CANCEL(pg, bundles) -> to those that prepared; retry later
      | <------------------------- ok     group CREATED when every commit is in

A group that cannot be placed now (not enough free resources, too few nodes
for STRICT_SPREAD, a prepare refused because tasks hold the resources) reserves
nothing and stays PENDING; the performer calls :meth:`PlacementTable.schedule`
again when that may have changed (a node joined, a group was removed, a
timer).  Infeasible groups stay pending as in Ray.

States (Ray's names, as ``placement_group_table`` shows them)::

             plan found, PREPAREs out      every prepare ok        every commit ok
    PENDING ----------------------------> (PENDING) ----------> PREPARED ---------> CREATED
       ^    a prepare failed: CANCEL the prepared ones  |                              |
       +------------------------------------------------+       a node with bundles    |
                                                                 died                  v
    REMOVED (final: from any state, CANCEL every reservation)        RESCHEDULING <----+
                                                   (only the lost bundles are placed again)

* A round is identified by ``attempt``; a reply from an older round is stale
  and ignored (its node was, or will be, told to CANCEL).
* The table keeps ``reserved[node]``: the units of every bundle prepared or
  committed there.  Plans use ``total - reserved``, which is exact for bundles
  (heartbeats may be a beat behind); whether running tasks leave room is the
  agent's call at PREPARE.
* A node's death unplaces its bundles.  A round in its prepare phase that
  involves the node is abandoned (CANCEL to the others); one in its commit
  phase finishes on the other nodes and the group goes to RESCHEDULING.

The performer (:mod:`shoal.control.placement_groups`) sends the actions and
feeds the replies back as events.
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
KEEP_REMOVED = 1000  # removed groups the table still shows (then they are forgotten)


class PgState(enum.Enum):
    PENDING = "PENDING"
    PREPARED = "PREPARED"
    CREATED = "CREATED"
    REMOVED = "REMOVED"
    RESCHEDULING = "RESCHEDULING"


class Phase(enum.Enum):
    PREPARING = enum.auto()
    COMMITTING = enum.auto()


# ---- actions: what the performer must do -------------------------------------------------
@dataclass(frozen=True)
class Prepare:
    node_id: str
    pg_id: str
    attempt: int
    bundles: tuple  # ((index, shape units), ...)


@dataclass(frozen=True)
class Commit:
    node_id: str
    pg_id: str
    attempt: int
    indices: tuple


@dataclass(frozen=True)
class Cancel:
    node_id: str
    pg_id: str
    indices: tuple
    removed: bool  # the group is gone (not a rollback or a move)


@dataclass(frozen=True)
class Created:
    pg_id: str


@dataclass(frozen=True)
class Removed:
    pg_id: str


Action = Prepare | Commit | Cancel | Created | Removed


@dataclass
class NodeCapacity:
    """A live node as plans see it: ``free`` = total - bundles reserved there
    (units); ``room`` ranks nodes (more is better: its last reported free CPU)."""

    node_id: str
    free: dict
    room: float = 0.0


@dataclass
class Round:
    attempt: int
    phase: Phase
    plan: dict  # bundle index -> node id
    waiting: set  # nodes whose reply to this phase is outstanding
    prepared: set = field(default_factory=set)  # nodes that prepared (PREPARING)
    failed: bool = False  # some prepare failed: cancel the others as they answer

    def nodes(self) -> set:
        return set(self.plan.values())


@dataclass
class PlacementGroupRecord:
    """One group.  ``nodes[i]`` is bundle i's committed node ("" while unplaced)."""

    pg_id: str
    bundles: list  # shape units per bundle
    strategy: str = "PACK"
    name: str = ""
    namespace: str = "default"
    detached: bool = False
    creator_job_id: str = ""
    creator_worker_id: str = ""
    state: PgState = PgState.PENDING
    nodes: list = field(default_factory=list)
    round: Round | None = None
    attempts: int = 0
    ever_created: bool = False
    creation_ms: float = 0.0  # from create to CREATED (set by the performer)

    def __post_init__(self) -> None:
        if not self.nodes:
            self.nodes = [""] * len(self.bundles)

    def waiting(self) -> bool:
        return self.state in (PgState.PENDING, PgState.RESCHEDULING) and self.round is None

    def unplaced(self) -> list[int]:
        return [i for i, n in enumerate(self.nodes) if not n]


# ---- planning -----------------------------------------------------------------------------
def _fits(free: Mapping[str, int], shape: Mapping[str, int]) -> bool:
    return all(free.get(k, 0) >= v for k, v in shape.items())


def _take(free: dict, shape: Mapping[str, int]) -> None:
    for k, v in shape.items():
        free[k] = free.get(k, 0) - v


def _sum(shapes) -> dict:
    total: dict[str, int] = {}
    for shape in shapes:
        for k, v in shape.items():
            total[k] = total.get(k, 0) + v
    return total


def plan(bundles: list[dict], todo: list[int], strategy: str, nodes: list[NodeCapacity],
         placed: Mapping[int, str] | None = None) -> dict[int, str] | None:
    """A node for each bundle index in ``todo``, or None if the strategy cannot be
    met now.  ``placed`` maps the group's other bundles to their nodes (a
    reschedule keeps them where they are)."""
    placed = dict(placed or {})
    free = {n.node_id: dict(n.free) for n in nodes}
    ranked = sorted(nodes, key=lambda n: (-n.room, n.node_id))
    order = [n.node_id for n in ranked]
    if strategy == "STRICT_PACK":
        return _strict_pack(bundles, todo, order, free, placed)
    if strategy == "STRICT_SPREAD":
        used = set(placed.values())
        return _match(bundles, todo, [n for n in order if n not in used], free)
    if strategy == "SPREAD":
        return _spread(bundles, todo, order, free, placed)
    return _pack(bundles, todo, order, free, placed)


def _strict_pack(bundles, todo, order, free, placed) -> dict[int, str] | None:
    need = _sum(bundles[i] for i in todo)
    homes = set(placed.values())
    candidates = list(homes) if homes else order
    for node in candidates:
        if node in free and _fits(free[node], need):
            return {i: node for i in todo}
    return None


def _pack(bundles, todo, order, free, placed) -> dict[int, str] | None:
    """All on one node if one fits them (the group's own nodes first), else first
    fit over as few nodes as possible, biggest bundles first."""
    homes = [n for n in dict.fromkeys(placed.values()) if n in free]
    order = homes + [n for n in order if n not in homes]
    need = _sum(bundles[i] for i in todo)
    for node in order:
        if _fits(free[node], need):
            return {i: node for i in todo}
    out: dict[int, str] = {}
    for i in sorted(todo, key=lambda i: -sum(bundles[i].values())):
        node = next((n for n in order if _fits(free[n], bundles[i])), None)
        if node is None:
            return None
        _take(free[node], bundles[i])
        out[i] = node
        order.remove(node)
        order.insert(0, node)  # keep filling the node we just used
    return out


def _spread(bundles, todo, order, free, placed) -> dict[int, str] | None:
    """Distinct nodes where possible; otherwise the least-used node that fits."""
    count: dict[str, int] = {n: 0 for n in order}
    for node in placed.values():
        if node in count:
            count[node] += 1
    out: dict[int, str] = {}
    for i in sorted(todo, key=lambda i: -sum(bundles[i].values())):
        fitting = [n for n in order if _fits(free[n], bundles[i])]
        if not fitting:
            return None
        node = min(fitting, key=lambda n: count[n])  # stable: ranked order breaks ties
        _take(free[node], bundles[i])
        count[node] += 1
        out[i] = node
    return out


def _match(bundles, todo, order, free) -> dict[int, str] | None:
    """One distinct node per bundle (bipartite matching, augmenting paths)."""
    owner: dict[str, int] = {}  # node -> bundle index matched to it

    def assign(i: int, seen: set) -> bool:
        for node in order:
            if node in seen or not _fits(free[node], bundles[i]):
                continue
            seen.add(node)
            if node not in owner or assign(owner[node], seen):
                owner[node] = i
                return True
        return False

    for i in todo:
        if not assign(i, set()):
            return None
    return {i: node for node, i in owner.items()}


# ---- the table and its two-phase commit -------------------------------------------------------
class PlacementTable:
    """Every group, the name index and the reservations per node.  Mutates;
    called on one thread (the control store's loop)."""

    def __init__(self, keep_removed: int = KEEP_REMOVED) -> None:
        self.groups: dict[str, PlacementGroupRecord] = {}
        self.names: dict[tuple[str, str], str] = {}
        self.reserved: dict[str, dict] = {}  # node id -> units of bundles there
        self._waiting: dict[str, None] = {}  # ids of the waiting groups, oldest first
        self._removed: collections.deque = collections.deque()  # ids, oldest first
        self.keep_removed = keep_removed

    def _refresh(self, record: PlacementGroupRecord) -> None:
        """Keep ``_waiting`` in step with the record (call after changing it)."""
        if record.waiting():
            self._waiting[record.pg_id] = None
        else:
            self._waiting.pop(record.pg_id, None)

    # -- lifecycle --------------------------------------------------------------------
    def add(self, record: PlacementGroupRecord) -> None:
        """Register a new group; ValueError if its name is taken."""
        if record.name:
            key = (record.namespace, record.name)
            if key in self.names:
                raise ValueError(f"a placement group named {record.name!r} already exists "
                                 f"in namespace {record.namespace!r}")
            self.names[key] = record.pg_id
        self.groups[record.pg_id] = record
        self._refresh(record)

    def remove(self, pg_id: str) -> list[Action]:
        """Remove a group: every reservation, prepared or committed, is cancelled."""
        record = self.groups.get(pg_id)
        if record is None or record.state is PgState.REMOVED:
            return []
        nodes: dict[str, list[int]] = {}
        for i, node in enumerate(record.nodes):
            if node:
                nodes.setdefault(node, []).append(i)
        if record.round is not None:
            for i, node in record.round.plan.items():
                if record.nodes[i] != node:
                    nodes.setdefault(node, []).append(i)
        for node, indices in nodes.items():
            self._unreserve(node, record, indices)
        record.nodes = [""] * len(record.bundles)
        record.round = None
        record.state = PgState.REMOVED
        if record.name and self.names.get((record.namespace, record.name)) == pg_id:
            del self.names[(record.namespace, record.name)]
        actions: list[Action] = [Cancel(n, pg_id, tuple(sorted(ix)), True)
                                 for n, ix in nodes.items()]
        actions.append(Removed(pg_id))
        self._refresh(record)
        self._removed.append(pg_id)  # kept a while for placement_group_table, then dropped
        while len(self._removed) > self.keep_removed:
            self.groups.pop(self._removed.popleft(), None)
        return actions

    # -- scheduling ----------------------------------------------------------------------
    def capacities(self, totals: Mapping[str, Mapping[str, int]],
                   rooms: Mapping[str, float] | None = None) -> list[NodeCapacity]:
        """NodeCapacity of each live node from its total units."""
        rooms = rooms or {}
        out = []
        for node_id, total in totals.items():
            free = dict(total)
            _take(free, self.reserved.get(node_id, {}))
            out.append(NodeCapacity(node_id, free, rooms.get(node_id, 0.0)))
        return out

    def schedule(self, pg_id: str, nodes: list[NodeCapacity]) -> list[Action]:
        """Start a round for a waiting group if a plan exists; [] otherwise."""
        record = self.groups.get(pg_id)
        if record is None or not record.waiting():
            return []
        todo = record.unplaced()
        placed = {i: n for i, n in enumerate(record.nodes) if n}
        chosen = plan(record.bundles, todo, record.strategy, nodes, placed)
        if chosen is None:
            return []
        record.attempts += 1
        per_node: dict[str, list[int]] = {}
        for i, node in chosen.items():
            per_node.setdefault(node, []).append(i)
            _take(self.reserved.setdefault(node, {}), {k: -v for k, v in
                                                       record.bundles[i].items()})
        for capacity in nodes:  # later plans in the same pass see this one
            if capacity.node_id in per_node:
                for i in per_node[capacity.node_id]:
                    _take(capacity.free, record.bundles[i])
        record.round = Round(record.attempts, Phase.PREPARING, dict(chosen), set(per_node))
        self._refresh(record)
        return [Prepare(node, pg_id, record.attempts,
                        tuple((i, dict(record.bundles[i])) for i in sorted(ix)))
                for node, ix in per_node.items()]

    def prepared(self, pg_id: str, attempt: int, node_id: str, ok: bool) -> list[Action]:
        """A node answered PREPARE."""
        actions = self._prepared(pg_id, attempt, node_id, ok)
        self._refresh_id(pg_id)
        return actions

    def committed(self, pg_id: str, attempt: int, node_id: str, ok: bool) -> list[Action]:
        """A node answered COMMIT (``ok`` False: it no longer held the bundles)."""
        actions = self._committed(pg_id, attempt, node_id, ok)
        self._refresh_id(pg_id)
        return actions

    def _refresh_id(self, pg_id: str) -> None:
        record = self.groups.get(pg_id)
        if record is not None:
            self._refresh(record)

    def _prepared(self, pg_id: str, attempt: int, node_id: str, ok: bool) -> list[Action]:
        record, rnd = self._round(pg_id, attempt, Phase.PREPARING)
        if rnd is None or node_id not in rnd.waiting:
            return []
        rnd.waiting.discard(node_id)
        actions: list[Action] = []
        if ok:
            rnd.prepared.add(node_id)
        else:
            rnd.failed = True
            self._drop(record, rnd, node_id)
        if rnd.failed:
            for node in list(rnd.prepared):  # roll back what did prepare
                actions.append(self._rollback(record, rnd, node))
            rnd.prepared.clear()
            if not rnd.waiting:
                record.round = None  # back to waiting; the performer retries later
            return actions
        if not rnd.waiting:
            rnd.phase = Phase.COMMITTING
            rnd.waiting = set(rnd.prepared)
            record.state = PgState.PREPARED
            actions = [Commit(node, pg_id, attempt, tuple(self._indices(rnd, node)))
                       for node in sorted(rnd.waiting)]
        return actions

    def _committed(self, pg_id: str, attempt: int, node_id: str, ok: bool) -> list[Action]:
        record, rnd = self._round(pg_id, attempt, Phase.COMMITTING)
        if rnd is None or node_id not in rnd.waiting:
            return []
        rnd.waiting.discard(node_id)
        indices = self._indices(rnd, node_id)
        actions: list[Action] = []
        if ok:
            for i in indices:
                record.nodes[i] = node_id
        else:
            actions.append(self._rollback(record, rnd, node_id))
        if rnd.waiting:
            return actions
        record.round = None
        if record.unplaced():
            record.state = PgState.RESCHEDULING if record.ever_created else PgState.PENDING
            return actions
        record.state = PgState.CREATED
        record.ever_created = True
        actions.append(Created(pg_id))
        return actions

    def node_died(self, node_id: str) -> list[Action]:
        """Unplace the dead node's bundles; abandon prepare rounds that used it."""
        actions: list[Action] = []
        self.reserved.pop(node_id, None)
        for record in self.groups.values():
            if record.state is PgState.REMOVED:
                continue
            lost = [i for i, n in enumerate(record.nodes) if n == node_id]
            for i in lost:
                record.nodes[i] = ""
            rnd = record.round
            if rnd is not None and node_id in rnd.nodes():
                if rnd.phase is Phase.PREPARING:
                    rnd.failed = True
                    rnd.waiting.discard(node_id)
                    rnd.prepared.discard(node_id)
                    self._drop(record, rnd, node_id)
                    for node in list(rnd.prepared):
                        actions.append(self._rollback(record, rnd, node))
                    rnd.prepared.clear()
                    if not rnd.waiting:
                        record.round = None
                else:
                    self._drop(record, rnd, node_id)
                    if node_id in rnd.waiting:
                        actions += self.committed(record.pg_id, rnd.attempt, node_id, True)
            if lost and record.round is None:
                record.state = PgState.RESCHEDULING
            elif lost and record.state is PgState.CREATED:
                record.state = PgState.RESCHEDULING
            self._refresh(record)
        return actions

    # -- helpers ---------------------------------------------------------------------------
    def _round(self, pg_id: str, attempt: int, phase: Phase):
        record = self.groups.get(pg_id)
        if record is None or record.round is None:
            return record, None
        rnd = record.round
        if rnd.attempt != attempt or rnd.phase is not phase:
            return record, None
        return record, rnd

    @staticmethod
    def _indices(rnd: Round, node_id: str) -> list[int]:
        return sorted(i for i, n in rnd.plan.items() if n == node_id)

    def _drop(self, record: PlacementGroupRecord, rnd: Round, node_id: str) -> list[int]:
        """Take ``node_id``'s bundles out of the round and free their reservation."""
        indices = self._indices(rnd, node_id)
        self._unreserve(node_id, record, indices)
        for i in indices:
            del rnd.plan[i]
        return indices

    def _rollback(self, record: PlacementGroupRecord, rnd: Round, node_id: str) -> Cancel:
        return Cancel(node_id, record.pg_id, tuple(self._drop(record, rnd, node_id)), False)

    def _unreserve(self, node_id: str, record: PlacementGroupRecord, indices) -> None:
        reserved = self.reserved.get(node_id)
        if reserved is None:
            return
        for i in indices:
            _take(reserved, record.bundles[i])
        if not any(reserved.values()):
            del self.reserved[node_id]

    def waiting(self) -> list[PlacementGroupRecord]:
        """Groups to try to place, oldest first."""
        return [self.groups[pg_id] for pg_id in self._waiting]
