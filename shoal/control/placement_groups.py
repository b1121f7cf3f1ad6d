"""The control store's placement-group service: the thin I/O around
:mod:`shoal.control.placement_state`.

It answers the API's calls (create, remove, get, get by name, list), sends
the table's actions to the node agents (PREPARE_BUNDLES and COMMIT_BUNDLES as
requests whose replies go back into the table, CANCEL_BUNDLES as
notifications), and tries to place waiting groups again when that may now
succeed: a node joined, a group was removed, a round failed, and every
``RETRY_S`` while any group waits (resources held by tasks free up without
telling us).  Removing a group kills the actors placed in it here; the agents
kill the workers leased in its bundles.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from shoal.control.placement_state import (
    STRATEGIES,
    Action,
    Cancel,
    Commit,
    Created,
    PgState,
    PlacementGroupRecord,
    PlacementTable,
    Prepare,
    Removed,
)
from shoal.node.resources import from_units, to_units
from shoal.rpc.messages import Method

if TYPE_CHECKING:
    from shoal.control.control_store import ControlStore

log = logging.getLogger("shoal.control")

RETRY_S = 0.1  # while groups wait, try to place them this often


class PlacementGroupService:
    def __init__(self, store: ControlStore, router) -> None:
        self.store = store
        self.table = PlacementTable()
        self.waiters: dict[str, list[asyncio.Future]] = {}
        self.created_at: dict[str, float] = {}
        self._retry: asyncio.TimerHandle | None = None
        self._next_actor = 0
        for method, handler in {
            Method.CREATE_PLACEMENT_GROUP: self.handle_create,
            Method.REMOVE_PLACEMENT_GROUP: self.handle_remove,
            Method.GET_PLACEMENT_GROUP: self.handle_get,
            Method.GET_NAMED_PLACEMENT_GROUP: self.handle_get_named,
            Method.LIST_PLACEMENT_GROUPS: self.handle_list,
        }.items():
            router.add(method, handler)

    # ---- API ---------------------------------------------------------------------------
    def handle_create(self, conn, body):
        """{pg_id, bundles, strategy, name, namespace, detached, job_id}: registers the
        group and starts placing it; returns at once (``ready``/``wait`` wait)."""
        strategy = body.get("strategy", "PACK")
        if strategy not in STRATEGIES:
            raise ValueError(f"invalid placement group strategy {strategy!r}; supported "
                             f"strategies are {', '.join(STRATEGIES)}")
        record = PlacementGroupRecord(
            pg_id=body["pg_id"], bundles=[to_units(b) for b in body["bundles"]],
            strategy=strategy, name=body.get("name") or "",
            namespace=body.get("namespace") or "default",
            detached=bool(body.get("detached")), creator_job_id=body.get("job_id", ""))
        self.table.add(record)
        self.created_at[record.pg_id] = time.monotonic()
        self.try_place()
        return record.pg_id

    def handle_remove(self, conn, body):
        if body[0] in self.table.groups:  # removing twice, or an unknown id: nothing to do
            self.remove(body[0])
        return None

    def handle_get(self, conn, body):
        """[pg_id, wait_s]: the record, at once if ``wait_s`` is 0; else once the
        group is CREATED or REMOVED, or when ``wait_s`` seconds (None: no bound)
        run out."""
        pg_id, wait_s = body
        record = self.table.groups.get(pg_id)
        if record is None:
            return None
        if wait_s == 0 or record.state in (PgState.CREATED, PgState.REMOVED):
            return self.public(record)
        fut = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(pg_id, []).append(fut)
        if wait_s is not None:
            asyncio.get_running_loop().call_later(wait_s, self._wake, fut, record)
        return fut

    def handle_get_named(self, conn, body):
        name, namespace = body
        pg_id = self.table.names.get((namespace or "default", name))
        return None if pg_id is None else self.public(self.table.groups[pg_id])

    def handle_list(self, conn, body):
        return [self.public(r) for r in self.table.groups.values()]

    def public(self, record: PlacementGroupRecord) -> dict:
        """Ray's placement_group_table fields (bundle maps as lists: msgpack keys are
        strings), plus the agents' addresses of the bundles' nodes."""
        nodes = self.store.nodes
        return {
            "placement_group_id": record.pg_id,
            "name": record.name,
            "namespace": record.namespace,
            "bundles": [from_units(b) for b in record.bundles],
            "bundles_to_node_id": list(record.nodes),
            "node_addresses": {n: nodes[n].address for n in set(record.nodes) if n in nodes},
            "strategy": record.strategy,
            "state": record.state.value,
            "is_detached": record.detached,
            "creator_job_id": record.creator_job_id,
            "stats": {
                "end_to_end_creation_latency_ms": record.creation_ms,
                "scheduling_attempt": record.attempts,
                "scheduling_state": _scheduling_state(record),
            },
        }

    # ---- placing ---------------------------------------------------------------------------
    def try_place(self) -> None:
        """Start a round for every waiting group that a plan fits now."""
        waiting = self.table.waiting()
        if not waiting:
            return
        alive = [n for n in self.store.nodes.values() if n.alive]
        totals = {n.node_id: to_units(n.resources_total) for n in alive}
        rooms = {n.node_id: float(n.resources_available.get("CPU", 0)) for n in alive}
        capacities = self.table.capacities(totals, rooms)
        for record in waiting:
            self.perform(self.table.schedule(record.pg_id, capacities))
        if self.table.waiting() and self._retry is None:
            self._retry = asyncio.get_running_loop().call_later(RETRY_S, self._retry_now)

    def _retry_now(self) -> None:
        self._retry = None
        self.try_place()

    def perform(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Prepare | Commit):
                self._send(action)
            elif isinstance(action, Cancel):
                node = self.store.nodes.get(action.node_id)
                if node is not None and node.alive and node.conn is not None:
                    node.conn.notify(Method.CANCEL_BUNDLES,
                                     [action.pg_id, list(action.indices), action.removed])
            elif isinstance(action, Created):
                started = self.created_at.pop(action.pg_id, None)
                if started is not None:
                    self.table.groups[action.pg_id].creation_ms = (
                        (time.monotonic() - started) * 1000)
                self._resolve(action.pg_id)
            elif isinstance(action, Removed):
                self.created_at.pop(action.pg_id, None)
                self._resolve(action.pg_id)

    def _send(self, action: Prepare | Commit) -> None:
        node = self.store.nodes.get(action.node_id)
        if isinstance(action, Prepare):
            method = Method.PREPARE_BUNDLES
            body = [action.pg_id, action.attempt,
                    [[i, from_units(shape)] for i, shape in action.bundles]]
            answer = self.table.prepared
        else:
            method, body = Method.COMMIT_BUNDLES, [action.pg_id, action.attempt,
                                                   list(action.indices)]
            answer = self.table.committed
        if node is None or not node.alive or node.conn is None:
            self.perform(answer(action.pg_id, action.attempt, action.node_id, False))
            return
        fut = node.conn.call(method, body)

        def replied(f: asyncio.Future) -> None:
            ok = not f.cancelled() and f.exception() is None and bool(f.result())
            if not f.cancelled() and f.exception() is not None:
                log.info("%s to node %s failed: %s", method.name, action.node_id, f.exception())
            self.perform(answer(action.pg_id, action.attempt, action.node_id, ok))
            record = self.table.groups.get(action.pg_id)
            if record is not None and record.waiting():
                self._schedule_retry()

        fut.add_done_callback(replied)

    def _schedule_retry(self) -> None:
        if self._retry is None:
            self._retry = asyncio.get_running_loop().call_later(RETRY_S, self._retry_now)

    def _resolve(self, pg_id: str) -> None:
        record = self.table.groups[pg_id]
        for fut in self.waiters.pop(pg_id, ()):
            if not fut.done():
                fut.set_result(self.public(record))

    def _wake(self, fut: asyncio.Future, record: PlacementGroupRecord) -> None:
        if not fut.done():
            waiting = self.waiters.get(record.pg_id)
            if waiting and fut in waiting:
                waiting.remove(fut)
            fut.set_result(self.public(record))

    # ---- events from the rest of the control store -------------------------------------------
    def remove(self, pg_id: str) -> None:
        self.store.placement_group_removed(pg_id)  # its actors first: no restarts
        self.perform(self.table.remove(pg_id))
        self.try_place()

    def node_joined(self) -> None:
        self.try_place()

    def node_died(self, node_id: str) -> None:
        self.perform(self.table.node_died(node_id))
        self.try_place()

    def job_finished(self, job_id: str) -> None:
        """A non-detached group fate-shares with the job that created it."""
        for record in list(self.table.groups.values()):
            if (record.creator_job_id == job_id and not record.detached
                    and record.state is not PgState.REMOVED):
                self.remove(record.pg_id)

    # ---- actors placed in a group -------------------------------------------------------------
    def node_for(self, pg_id: str, index: int, shape: dict) -> str | None:
        """The node to lease an actor of ``shape`` in bundle ``index`` of the group
        (-1: any bundle big enough), or None while the group is not placed.
        Raises LookupError if the group is unknown or removed."""
        record = self.table.groups.get(pg_id)
        if record is None or record.state is PgState.REMOVED:
            raise LookupError(f"the placement group {pg_id} was removed")
        units = to_units(shape)
        indices = [index] if index >= 0 else range(len(record.bundles))
        nodes = [record.nodes[i] for i in indices if record.nodes[i] and all(
            record.bundles[i].get(k, 0) >= v for k, v in units.items())]
        if not nodes:
            return None
        self._next_actor += 1  # index -1: take turns over the bundles' nodes
        return nodes[self._next_actor % len(nodes)]


def _scheduling_state(record: PlacementGroupRecord) -> str:
    if record.state is PgState.CREATED:
        return "FINISHED"
    if record.state is PgState.REMOVED:
        return "REMOVED"
    return "SCHEDULING_STARTED" if record.round is not None else "QUEUED"
