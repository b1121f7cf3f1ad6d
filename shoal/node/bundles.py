"""A node agent's share of placement groups: the bundles reserved on this node.

The control store runs the two-phase commit (:mod:`shoal.control.placement_state`);
this is the participant's side::

    control store                       this agent
      | PREPARE_BUNDLES(pg, round, [[i, shape]...]) -> every bundle taken from the
      |                                                node's free resources, or none
      | <---------------------------------- True / False
      | COMMIT_BUNDLES(pg, round, [i...]) ----------> PREPARED -> COMMITTED: leases may
      | <---------------------------------- True        now use them
      | CANCEL_BUNDLES(pg, [i...], removed) (notify)  -> released; workers leased in them
      |                                                  are killed

A committed bundle is a resource pool of its own (``NodeResources`` of the
bundle's shape, with the GPU ids the bundle got).  A lease request with a
placement-group strategy ``["PG", pg_id, index, capture]`` is served only from
that group's committed bundles here (``index`` -1: any of them that fits), so
a task or actor of the group runs inside its reservation and nothing else
does.  A request for a bundle that is not (or no longer) here fails with
``BundleNotHereError``: its owner asks the control store where it went.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shoal.node.resources import NodeResources, from_units, to_units
from shoal.rpc.messages import Method

if TYPE_CHECKING:
    from shoal.node.agent import NodeAgent
    from shoal.node.leases import LeaseRequest

log = logging.getLogger("shoal.node")

PG = "PG"


class BundleNotHereError(LookupError):
    """The placement group's bundle is not reserved on this node (moved, or not yet)."""


class PlacementGroupRemovedError(LookupError):
    """The placement group was removed: its tasks and actors cannot run."""


class BundleState(enum.Enum):
    PREPARED = "prepared"  # reserved, not usable yet
    COMMITTED = "committed"  # leases may use it


@dataclass
class Bundle:
    pg_id: str
    index: int
    shape: dict  # units
    gpus: list  # [[gpu id, units], ...] taken from the node for this bundle
    attempt: int
    state: BundleState = BundleState.PREPARED
    pool: NodeResources | None = None  # set on commit


class BundleTable:
    """The bundles on this node.  Mutates ``node`` (its free resources); loop thread."""

    def __init__(self, node: NodeResources) -> None:
        self.node = node
        self.bundles: dict[tuple[str, int], Bundle] = {}
        self.by_group: dict[str, set[int]] = {}  # pg_id -> indices of its bundles here
        self.removed: set[str] = set()  # groups cancelled for good (bounded: see cancel)

    def prepare(self, pg_id: str, attempt: int, shapes: list[tuple[int, dict]]) -> bool:
        """Reserve every bundle or none."""
        if pg_id in self.removed:
            return False
        taken: list[Bundle] = []
        for index, shape in shapes:
            if (pg_id, index) in self.bundles or not self.node.fits(shape):
                for bundle in taken:
                    self.node.release(bundle.shape, bundle.gpus)
                return False
            taken.append(Bundle(pg_id, index, shape, self.node.acquire(shape), attempt))
        for bundle in taken:
            self.bundles[(pg_id, bundle.index)] = bundle
            self.by_group.setdefault(pg_id, set()).add(bundle.index)
        return True

    def commit(self, pg_id: str, attempt: int, indices: list[int]) -> bool:
        found = [self.bundles.get((pg_id, i)) for i in indices]
        if any(b is None or b.attempt != attempt for b in found):
            return False
        for bundle in found:
            bundle.state = BundleState.COMMITTED
            bundle.pool = NodeResources.from_units(bundle.shape, bundle.gpus)
        return True

    def cancel(self, pg_id: str, indices: list[int] | None, removed: bool) -> list[Bundle]:
        """Release the bundles (all of the group's with None); returns them."""
        if removed:
            if len(self.removed) > 10_000:
                self.removed.clear()
            self.removed.add(pg_id)
        mine = self.by_group.get(pg_id, ())
        gone = [self.bundles[(pg_id, i)] for i in list(mine)
                if indices is None or i in indices]
        for bundle in gone:
            del self.bundles[(pg_id, bundle.index)]
            self.by_group[pg_id].discard(bundle.index)
            self.node.release(bundle.shape, bundle.gpus)
        if not self.by_group.get(pg_id, True):
            del self.by_group[pg_id]
        return gone

    def candidates(self, pg_id: str, index: int) -> list[Bundle]:
        """The group's bundles here that a request for ``index`` may use (any state)."""
        if index >= 0:
            bundle = self.bundles.get((pg_id, index))
            return [bundle] if bundle is not None else []
        return [self.bundles[(pg_id, i)] for i in sorted(self.by_group.get(pg_id, ()))]

    def check(self, pg_id: str, index: int, shape: dict) -> None:
        """Raise unless a request for ``(pg_id, index)`` can be queued here."""
        if pg_id in self.removed:
            raise PlacementGroupRemovedError(f"the placement group {pg_id} was removed")
        bundles = self.candidates(pg_id, index)
        if not bundles:
            where = "any bundle" if index < 0 else f"bundle {index}"
            raise BundleNotHereError(f"{where} of placement group {pg_id} is not on this node")
        if not any(all(b.shape.get(k, 0) >= v for k, v in shape.items()) for b in bundles):
            raise ValueError(f"the request {from_units(shape)} fits no bundle of placement "
                             f"group {pg_id} on this node")

    def pool_for(self, pg_id: str, index: int, shape: dict) -> tuple[Bundle, NodeResources] | None:
        """A committed bundle with room for ``shape`` now, or None."""
        for bundle in self.candidates(pg_id, index):
            if bundle.pool is not None and bundle.pool.fits(shape):
                return bundle, bundle.pool
        return None


class BundleService:
    """The agent's RPC handlers for bundles, and the lease hooks it calls."""

    def __init__(self, agent: NodeAgent) -> None:
        self.agent = agent
        self.table = BundleTable(agent.resources)
        for method, handler in {
            Method.PREPARE_BUNDLES: self.handle_prepare,
            Method.COMMIT_BUNDLES: self.handle_commit,
            Method.CANCEL_BUNDLES: self.handle_cancel,
        }.items():
            agent.router.add(method, handler)

    def handle_prepare(self, conn, body):
        pg_id, attempt, shapes = body
        ok = self.table.prepare(pg_id, attempt, [(i, to_units(s)) for i, s in shapes])
        if ok:
            self.agent.report_soon()
        return ok

    def handle_commit(self, conn, body):
        pg_id, attempt, indices = body
        ok = self.table.commit(pg_id, attempt, indices)
        if ok:
            self.agent.schedule()  # requests that waited for the commit
        return ok

    def handle_cancel(self, conn, body):
        pg_id, indices, removed = body
        gone = self.table.cancel(pg_id, indices, removed)
        if not gone and not removed:
            return None
        keys = {(b.pg_id, b.index) for b in gone}
        agent = self.agent
        for lease in list(agent.leases.values()):
            if lease.bundle in keys:
                agent.pool.kill(lease.worker)  # its task or actor ran in the reservation
        error = (PlacementGroupRemovedError(f"the placement group {pg_id} was removed")
                 if removed else BundleNotHereError(
                     f"a bundle of placement group {pg_id} moved away from this node"))
        for request in [r for r in agent.queue if r.bundle is not None and r.bundle[0] == pg_id]:
            if not self.table.candidates(pg_id, request.bundle[1]):
                agent.lease_table.drop(request)
                if not request.future.done():
                    request.future.set_exception(error)
        agent.schedule()
        return None

    def pick(self, request: LeaseRequest) -> tuple[Bundle, NodeResources] | None:
        pg_id, index = request.bundle
        return self.table.pool_for(pg_id, index, request.shape)


def bundle_of(strategy: list | None) -> tuple[str, int] | None:
    """``(pg_id, index)`` of a placement-group strategy, else None."""
    if strategy and strategy[0] == PG:
        return strategy[1], int(strategy[2])
    return None
