"""A core worker's side of placement groups: where a group's bundles are (for
lease requests), ``ready()`` refs, and the placement the running task or actor
has (which group a new one joins is :mod:`shoal.api.placement_strategy`).

Lease requests for a task in a group go straight to the agent of a node that
holds one of its bundles (``BundleLocator.agent_for``), marked spilled so the
agent never redirects them.  Where the bundles are comes from the control
store (GET_PLACEMENT_GROUP, waiting until the group is placed) and is cached;
an agent that answers ``BundleNotHereError`` (the bundle moved after a node
died) drops the entry and the request is asked again.

Wire form of the strategy: ``["PG", pg_id, bundle_index, capture_child_tasks]``.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING, Any

from shoal import exceptions
from shoal.control.placement_state import PgState
from shoal.core import ids
from shoal.core.serialization import serialize
from shoal.core.value_table import StoredValue
from shoal.core.value_wire import detach, error_value
from shoal.rpc.messages import Method

if TYPE_CHECKING:
    from shoal.core.core_worker import CoreWorker
    from shoal.core.links import Links

PG = "PG"
REMOVED = "REMOVED"


class BundleLocator:
    """Bundle locations per group, from the control store.  Loop thread only."""

    def __init__(self, worker: CoreWorker, links: Links) -> None:
        self.worker = worker  # its node id
        self.links = links  # the control store (the groups' records), agents' connections
        self.records: dict[str, asyncio.Future] = {}  # pg_id -> future of its record
        self._turn = itertools.count()

    def forget(self, pg_id: str) -> None:
        self.records.pop(pg_id, None)

    async def record(self, pg_id: str) -> dict:
        """The group's record once it is placed (or removed); cached while placed."""
        fut = self.records.get(pg_id)
        if fut is None:
            fut = self.records[pg_id] = asyncio.ensure_future(
                self.links.control.call(Method.GET_PLACEMENT_GROUP, [pg_id, None]))
        try:
            record = await asyncio.shield(fut)
        except BaseException:
            self.forget(pg_id)
            raise
        if record is None or PgState(record["state"]) is not PgState.CREATED:
            self.forget(pg_id)
        return record

    async def agent_for(self, strategy: list, shape: dict):
        """A connection to the agent of a node holding a bundle the task may use."""
        pg_id, index = strategy[1], strategy[2]
        record = await self.record(pg_id)
        if record is None or record["state"] == REMOVED:
            raise exceptions.TaskPlacementGroupRemoved(
                f"the placement group {pg_id} of this task was removed")
        nodes = record["bundles_to_node_id"]
        if index >= 0:
            node_id = nodes[index]
        else:
            fitting = [n for n, bundle in zip(nodes, record["bundles"], strict=False)
                       if n and all(bundle.get(k, 0) >= v for k, v in shape.items())]
            if not fitting:
                self.forget(pg_id)
                raise exceptions.TaskUnschedulableError(
                    f"the request {shape} fits no bundle of placement group {pg_id}")
            node_id = fitting[next(self._turn) % len(fitting)]
        if node_id == self.worker.node_id:
            return self.links.node
        return await self.links.peers.get(record["node_addresses"][node_id])


def ready_ref(worker: CoreWorker, group: Any) -> Any:
    """An ObjectRef owned by this process that resolves to ``group`` once it is
    placed, or to TaskPlacementGroupRemoved if it is removed first."""
    from shoal.api.object_ref import ObjectRef

    oid = ids.object_id(worker.ids.task_id(), 1)
    worker.post(worker.references.add_owned, oid, [])
    value = StoredValue(inline=detach(serialize(group, "a placement group")))
    pg_id = group.id.hex()

    async def watch() -> None:
        try:
            record = await worker.control.call(Method.GET_PLACEMENT_GROUP, [pg_id, None])
        except Exception as exc:
            worker.value_table.put(oid, error_value(exc))
            return
        if record is None or record["state"] == REMOVED:
            worker.value_table.put(oid, error_value(exceptions.TaskPlacementGroupRemoved(
                f"the placement group {pg_id} was removed before it was ready")))
        else:
            worker.value_table.put(oid, value)

    worker.post(lambda: worker.loop.create_task(watch()))
    return ObjectRef(oid, worker.address, worker)


def current_placement(worker: CoreWorker) -> list | None:
    """``[pg_id, bundle_index, capture]`` of the running task or actor, or None."""
    ctx = worker.task_context.get()
    placement = ctx.placement if ctx is not None else None
    if placement is None:
        placement = getattr(worker.executor, "actor_placement", None)
    return placement or None
