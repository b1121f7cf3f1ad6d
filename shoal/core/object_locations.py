"""Copies of objects on other nodes, seen from a core worker.

Two roles:

* **Reader**: ``pin`` maps every shared-memory value a ``get`` needs.  When the
  value's location set names this node, that is one STORE_GET, exactly as on a
  single node.  Otherwise it is one STORE_PULL: the local agent pulls the
  object from a node that holds it (:mod:`shoal.node.object_transfer`) and
  pins it for us.  ``pull_args`` does the same for a task's arguments, which
  carry the node id their owner saw.
* **Owner**: the agent that pulled a copy reports it (ADD_OBJECT_LOCATION);
  we add the node to the value's ``locations`` and answer True, or answer
  False if the object is already freed (the agent then drops its copy).  An
  evicted copy is reported with REMOVE_OBJECT_LOCATION.  ``free`` sends
  STORE_FREE to every node in the location set when the object goes out of
  scope, so every copy is freed with the object::

      owner                         agent of node B (holds a copy)
        | <-- ADD_OBJECT_LOCATION(oid, B, addr) |  after its pull
        | --> True / False (already freed) ---> |  False: drops its copy
        |  ... last reference dropped ...
        | --> STORE_FREE([oid]) --------------> |  (and to the primary's node)

Agents' addresses come with ADD_OBJECT_LOCATION, or from the control store's
node table (GET_NODES) for a node we have not heard from.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import TYPE_CHECKING, Any

from shoal import exceptions
from shoal.core.thread_pin import ThreadPin
from shoal.core.value_table import StoredValue
from shoal.rpc.messages import Method
from shoal.rpc.read_lending import ReadLending
from shoal.rpc.transport import RemoteError

if TYPE_CHECKING:
    from shoal.core.core_worker import CoreWorker
    from shoal.core.links import Links
    from shoal.core.reference_table import ReferenceTable
    from shoal.core.value_table import ValueTable

log = logging.getLogger("shoal.core")


class ObjectLocations:
    def __init__(self, worker: CoreWorker, links: Links, values: ValueTable,
                 references: ReferenceTable) -> None:
        self.worker = worker  # its calls onto the loop, its node id, its peers
        self.links = links  # the node agent and control store connections
        self.values = values  # owned values: their location sets
        self.references = references  # which objects we own
        self.agents: dict[str, str] = {}  # node id -> its agent's RPC address
        self.lending: ReadLending | None = None  # the node connection's, once lent
        worker.router.add(Method.ADD_OBJECT_LOCATION, self.handle_add_location)
        worker.router.add(Method.REMOVE_OBJECT_LOCATION, self.handle_remove_location)
        # the node's store fills up: refs caught in reference cycles may be what holds
        # it, and only the cycle collector frees them (node/store_pressure_gc.py)
        worker.router.add(Method.COLLECT_GARBAGE, lambda conn, body: gc.collect())

    def lend_node_reads(self) -> None:
        """Loop thread, once connected: user threads may read the node connection
        for their STORE_GET replies (:mod:`shoal.core.thread_pin`)."""
        node = self.links.node
        if not hasattr(node, "lend_reads"):  # an in-process (loopback) connection
            return
        lending = ReadLending(self.links.loop)
        if node.lend_reads(lending):
            self.lending = lending

    def close(self) -> None:
        if self.lending is not None:
            self.lending.close()

    # ---- reader (user threads) ---------------------------------------------------------
    def pin(self, refs: list, values: dict[bytes, StoredValue],
            timeout: float | None, in_place: bool = False) -> list[list | None]:
        """``[offset, size]`` (pinned for us) or None per ref, in the local store.
        ``in_place``: a spilled object is pinned on disk (a file location), not
        restored."""
        worker = self.worker
        node_id = worker.node_id
        if all(node_id in values[r.object_id].locations for r in refs):
            oids = [r.object_id for r in refs]
            try:
                if in_place:
                    return worker.call(self._pinning_call, Method.STORE_GET_IN_PLACE, oids,
                                       oids, timeout, timeout=timeout)
                if self.lending is not None:
                    return ThreadPin(self.links.node, oids, self._release_late).run(
                        timeout, worker.post, worker.post_lazy)
                return worker.call(self._pinning_call, Method.STORE_GET, oids, oids, timeout,
                                   timeout=timeout)
            except TimeoutError:
                raise exceptions.GetTimeoutError(
                    f"get timed out while pinning {len(refs)} object(s) in the local store"
                ) from None
        items = [[r.object_id, r.owner_address, values[r.object_id].size,
                  list(values[r.object_id].locations)] for r in refs]
        return self.pull(items, timeout)

    def pull(self, items: list, timeout: float | None) -> list[list | None]:
        """STORE_PULL ``[[oid, owner, size, [node ids]], ...]`` from a user thread."""
        try:
            return self.worker.call(self._pull_on_loop, items, timeout)
        except TimeoutError:
            raise exceptions.GetTimeoutError(
                f"get timed out while pulling {len(items)} object(s) from other nodes"
            ) from None
        except RemoteError as exc:
            if exc.error_type == "ObjectStoreFullError":
                raise exceptions.ObjectStoreFullError(exc.message) from None
            raise

    async def _pull_on_loop(self, items: list, timeout: float | None) -> list:
        return await self._pinning_call(Method.STORE_PULL, items, [item[0] for item in items],
                                        timeout)

    async def _pinning_call(self, method: Method, body: Any, oids: list[bytes],
                            timeout: float | None) -> list:
        """A request that pins ``oids`` for us; if we stop waiting (timeout, or the
        caller's call cancelled), the pins it makes later are given back."""
        fut = self.links.node.call(method, body)
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except (TimeoutError, asyncio.CancelledError):
            fut.add_done_callback(lambda f: self._release_late(f, oids))
            raise

    def _release_late(self, fut: Any, oids: list[bytes]) -> None:
        """A pin we stopped waiting for finished (an asyncio future, or a
        thread pin's answer): give back its pins."""
        if fut.cancelled() or fut.exception() is not None:
            return
        pinned = [oid for loc, oid in zip(fut.result(), oids, strict=False) if loc is not None]
        if pinned:
            self.links.node.notify(Method.STORE_RELEASE, pinned)

    # ---- owner (loop thread) ----------------------------------------------------------------
    def handle_add_location(self, conn, body) -> bool:
        oid, node_id, address = body
        value = self.values.get(oid)
        if value is None or not value.in_plasma or not self.references.is_owned(oid):
            return False
        value.locations.add(node_id)
        self.agents[node_id] = address
        return True

    def handle_remove_location(self, conn, body) -> None:
        oid, node_id = body
        value = self.values.get(oid)
        if value is not None and node_id != value.node_id:
            value.locations.discard(node_id)

    def free(self, freed: list[tuple[bytes, StoredValue]]) -> None:
        """Free every copy of these shared-memory objects (STORE_FREE per node)."""
        by_node: dict[str, list[bytes]] = {}
        if self.links.shm is not None:
            self.links.shm.forget([oid for oid, _ in freed])
        for oid, value in freed:
            for node_id in value.locations or (value.node_id,):
                by_node.setdefault(node_id, []).append(oid)
        for node_id, oids in by_node.items():
            if node_id == self.worker.node_id:
                self.links.node.notify(Method.STORE_FREE, oids)
            else:
                self.links.loop.create_task(self._free_remote(node_id, oids))

    async def _free_remote(self, node_id: str, oids: list[bytes]) -> None:
        try:
            address = await self.agent_address(node_id)
            if address:
                (await self.worker.peer(address)).notify(Method.STORE_FREE, oids)
        except Exception as exc:  # the node died: its copies went with it
            log.debug("could not free %d object(s) on node %s: %s", len(oids), node_id, exc)

    async def agent_address(self, node_id: str) -> str | None:
        """The RPC address of a live node's agent (asks the control store once
        for a node we have not heard of)."""
        address = self.agents.get(node_id)
        if address is None:
            nodes: Any = await self.links.control.call(Method.GET_NODES)
            for node in nodes:
                if node["alive"]:
                    self.agents[node["node_id"]] = node["address"]
                else:
                    self.agents.pop(node["node_id"], None)
            address = self.agents.get(node_id)
        return address
