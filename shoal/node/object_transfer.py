"""Moving objects between nodes: the I/O around :mod:`shoal.node.pull_manager`.

Pull of one object, end to end::

    reader (core worker)       local agent (puller)                  remote agent (holder)
      | STORE_PULL [oid, owner, size, [node ids]] ->
      |                        | have it? pin and answer
      |                        | PullManager: size? (ask a source) -> queue until
      |                        |   the store has room (it drops pulled copies and
      |                        |   spills to make it) -> allocate, unsealed
      |                        | chunks, several in flight, each on its own data
      |                        | stream: REQ(oid, off, len) -----------------> | pin
      |                        |   <------------ RESP + bytes, recv'd straight | unpin
      |                        |   into the arena at off                        |
      |                        | all in: seal, pin for every waiting reader
      | <- [offset, size] -----|
      |                        | ADD_OBJECT_LOCATION(oid, node, address) -> owner
      |                        |   owner says no (freed meanwhile)  -> free our copy
      |                        |   owner's connection closes (died) -> free our copy
      |                        | evicted later to make room -> REMOVE_OBJECT_LOCATION

The owner frees every copy when the object goes out of scope: STORE_FREE to
each node in its location set (:mod:`shoal.core.object_locations`).

An object larger than this node's whole store is pulled into disk-backed
memory instead (a file of its own in the spill directory, as a create of
that size gets): the chunks go into a mapping of that file, and readers map
it.

A chunk that fails (the source freed or evicted the object, or its node died)
is retried from the next source; with none left the pull fails, its
allocation is freed once no chunk is still being written into it, and the
readers get ``None`` (``ObjectLostError`` for them).
"""

from __future__ import annotations

import asyncio
import logging
import mmap
import os
from typing import TYPE_CHECKING

from shoal.node.data_channel import DataLink, DataServer, NotHere
from shoal.node.object_store import PULL_CREATOR, ObjectStoreFullError
from shoal.node.pull_manager import Chunk, Pull, PullManager, PullState
from shoal.rpc.messages import Method
from shoal.rpc.peers import PeerCache

if TYPE_CHECKING:
    from shoal.node.agent import NodeAgent

log = logging.getLogger("shoal.transfer")

CHUNK_SIZE = int(os.environ.get("SHOAL_TRANSFER_CHUNK_BYTES", 8 << 20))
MAX_CHUNKS_IN_FLIGHT = int(os.environ.get("SHOAL_TRANSFER_IN_FLIGHT", "4"))
class ObjectTransfer:
    """Pulls objects for local readers; serves local objects to other nodes."""

    def __init__(self, agent: NodeAgent, token: str) -> None:
        self.agent = agent
        self.store = agent.store
        self.token = token
        self.manager = PullManager(CHUNK_SIZE, MAX_CHUNKS_IN_FLIGHT)
        self.server = DataServer(self.store, token, agent.metrics)
        self.readers: dict[bytes, list[tuple[object, asyncio.Future]]] = {}
        self.store.hooks.space_freed.append(self.space_freed)
        self.store.hooks.evicted = self._evicted
        self.owners = PeerCache(agent.router, token, {"name": f"node {agent.node_id[:8]}"})
        self._idle_links: dict[str, list[DataLink]] = {}
        self._tasks: set[asyncio.Task] = set()
        self._chunk_tasks: dict[asyncio.Task, Chunk] = {}
        self._backed: dict[bytes, tuple[mmap.mmap, memoryview]] = {}  # pulls into files
        self.closing = False

    async def start(self, host: str) -> str:
        return await self.server.start(host)

    def close(self) -> None:
        self.closing = True
        self.server.close()
        for links in self._idle_links.values():
            for link in links:
                link.close()
        self._idle_links.clear()
        for oid in list(self._backed):
            self._unmap(oid)
        self.owners.close_all()
        for task in list(self._tasks):
            task.cancel()

    def stats(self) -> dict:
        return {"pulls_active": len(self.manager.active),
                "pulls_queued": len(self.manager.queue),
                "pulls_waited_for_space": self.manager.queued_total,
                "secondary_copies": sum(1 for o in self.store.table.objects.values()
                                        if o.secondary)}

    # ---- the STORE_PULL handler ----------------------------------------------------------
    async def pull_and_pin(self, conn, items: list) -> list:
        """``[[oid, owner, size, [node ids]], ...]`` -> ``[offset, size]`` or None per
        object, pinned for ``conn``; pulls what is not here."""
        waits = []
        for oid, owner, size, sources in items:
            if oid in self.store.table.objects:
                waits.append(self.store.pin_when_available(conn, oid))
            else:
                waits.append(self._request(conn, oid, owner, size, sources))
        return list(await asyncio.gather(*waits))

    def _request(self, conn, oid: bytes, owner: str, size: int,
                 sources: list) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self.readers.setdefault(oid, []).append((conn, fut))
        sources = [s for s in sources if s and s != self.agent.node_id]
        pull, new = self.manager.request(oid, owner, size, sources)
        if new:
            log.info("pulling %s (%d bytes) from %s", oid.hex(), size, sources)
            if not pull.sources:
                self.manager.fail(pull, "no other node holds the object")
                self._settle(pull)
            elif pull.state is PullState.SIZING:
                self._spawn(self._size(pull))
            else:
                self._admit()
        return fut

    # ---- sizing and admission ----------------------------------------------------------------
    async def _size(self, pull: Pull) -> None:
        while pull.state is PullState.SIZING and pull.source is not None:
            try:
                link = await self._link(pull.source)
                try:
                    size, _ = await link.fetch(pull.oid, 0, 0, None)
                except NotHere:
                    self._release_link(link)
                    raise
                except BaseException:
                    link.close()
                    raise
                self._release_link(link)
            except Exception:
                if not self.manager.source_failed(pull):
                    break
                continue
            self.manager.sized(pull, size)
            self._admit()
            return
        self._settle(pull)

    def _admit(self) -> None:
        if self.manager.queue:
            self.manager.admit(self._allocate)
        self._pump()

    def _allocate(self, oid: bytes, size: int) -> int | None:
        if oid in self.store.table.objects:  # appeared meanwhile: stop pulling, readers pin it
            asyncio.get_running_loop().call_soon(self._abandon, oid)
            return None
        pull = self.manager.pulls.get(oid)
        owner = pull.owner if pull else ""
        if size > self.store.table.capacity:
            return self._allocate_backed(oid, size, owner)
        return self.store.allocate_pulled(oid, size, owner)

    def _allocate_backed(self, oid: bytes, size: int, owner: str) -> int | None:
        """Offset 0 of a new disk-backed file mapped here; None (and the pull
        fails on the next turn) if the spill directories have no room."""
        try:
            path = self.store.allocate_pulled_backed(oid, size, owner)
            with open(path, "r+b") as file:
                mapping = mmap.mmap(file.fileno(), size)
        except (ObjectStoreFullError, OSError) as exc:
            if oid in self.store.table.objects:
                self.store.free([oid])
            asyncio.get_running_loop().call_soon(self._fail_pull, oid, str(exc))
            return None
        self._backed[oid] = (mapping, memoryview(mapping))
        return 0

    def _fail_pull(self, oid: bytes, why: str) -> None:
        pull = self.manager.pulls.get(oid)
        if pull is not None and pull.state is PullState.QUEUED:
            pull.full = True
            self.manager.fail(pull, why)
            self._settle(pull)

    def _unmap(self, oid: bytes) -> None:
        backed = self._backed.pop(oid, None)
        if backed is not None:
            try:
                backed[1].release()
                backed[0].close()
            except BufferError:  # a cancelled chunk's slice still exists: the GC unmaps it
                pass

    def _abandon(self, oid: bytes) -> None:
        pull = self.manager.pulls.get(oid)
        if pull is not None and pull.state is PullState.QUEUED:
            self.manager.fail(pull, "the object appeared locally")
            for conn, fut in self.readers.pop(oid, ()):
                self._spawn(self._pin_later(conn, oid, fut))

    async def _pin_later(self, conn, oid: bytes, fut: asyncio.Future) -> None:
        result = await self.store.pin_when_available(conn, oid)
        if not fut.done():
            fut.set_result(result)

    def space_freed(self) -> None:
        """Something was freed or unpinned: queued pulls may fit now."""
        if self.manager.queue:
            self._admit()

    # ---- chunks ----------------------------------------------------------------------------
    def _pump(self) -> None:
        for chunk in self.manager.next_chunks():
            task = asyncio.get_running_loop().create_task(self._fetch(chunk))
            self._chunk_tasks[task] = chunk
            task.add_done_callback(self._chunk_ended)

    def _chunk_ended(self, task: asyncio.Task) -> None:
        chunk = self._chunk_tasks.pop(task)
        if task.cancelled() and not self.closing:
            # cancelled by node_died, possibly before it even started
            log.info("chunk of %s from dead node %s abandoned", chunk.pull.oid.hex(),
                     chunk.source)
            self.manager.chunk_failed(chunk)
            self._settle(chunk.pull)
            self._pump()

    def node_died(self, node_id: str) -> None:
        """Stop reading from a dead node: behind a cut link its streams would
        stall forever.  The chunks are retried from other sources."""
        for task, chunk in list(self._chunk_tasks.items()):
            if chunk.source == node_id:
                task.cancel()
        node = self.agent.cluster.nodes.get(node_id)
        for link in self._idle_links.pop(node.data_address if node else "", ()):
            link.close()

    async def _fetch(self, chunk: Chunk) -> None:
        pull = chunk.pull
        ok = False
        try:
            link = await self._link(chunk.source)
            base = pull.arena_offset + chunk.offset
            backed = self._backed.get(pull.oid)
            view = self.store.arena.view if backed is None else backed[1]
            try:
                size, n = await link.fetch(pull.oid, chunk.offset, chunk.length,
                                           lambda n: view[base:base + n])
                self.agent.metrics.transfer_received_bytes += n
                ok = size == pull.size and n == chunk.length
                self._release_link(link)
            except NotHere:
                self._release_link(link)
            except BaseException:
                link.close()
                raise
        except asyncio.CancelledError:
            raise  # _chunk_ended retries it elsewhere
        except Exception as exc:
            log.info("chunk of %s from node %s failed: %r", pull.oid.hex(), chunk.source, exc)
        if ok:
            self.manager.chunk_done(chunk)
        else:
            self.manager.chunk_failed(chunk)
        self._settle(pull)
        self._pump()

    async def _link(self, node_id: str) -> DataLink:
        address = await self._data_address(node_id)
        idle = self._idle_links.get(address)
        if idle:
            return idle.pop()
        return await DataLink.open(address, self.token,
                                   {"name": f"node {self.agent.node_id[:8]} puller"})

    def _release_link(self, link: DataLink) -> None:
        self._idle_links.setdefault(link.address, []).append(link)

    async def _data_address(self, node_id: str) -> str:
        node = self.agent.cluster.alive_node(node_id)
        if node is None or not node.data_address:
            await self.agent.refresh_cluster()
            node = self.agent.cluster.alive_node(node_id)
        if node is None or not node.data_address:
            raise LookupError(f"node {node_id} is not alive (or serves no object data)")
        return node.data_address

    # ---- completion ------------------------------------------------------------------------
    def _settle(self, pull: Pull) -> None:
        """Act on a pull that ended: seal and hand out, or free and fail."""
        if pull.state is PullState.DONE:
            self._done(pull)
        elif pull.state is PullState.FAILED and pull.in_flight == 0:
            self._unmap(pull.oid)
            obj = self.store.table.objects.get(pull.oid)
            if pull.arena_offset >= 0 and obj is not None and obj.creator == PULL_CREATOR:
                self.store.free([pull.oid])  # readers waiting on the store get None
            pull.arena_offset = -1
            for _conn, fut in self.readers.pop(pull.oid, ()):
                if not fut.done():
                    if pull.full:
                        fut.set_exception(ObjectStoreFullError(pull.error))
                    else:
                        fut.set_result(None)

    def _done(self, pull: Pull) -> None:
        self._unmap(pull.oid)
        table = self.store.table
        table.seal(pull.oid)
        for conn, fut in self.readers.pop(pull.oid, ()):
            pinned = table.pin(pull.oid, conn) if conn.is_open() else None
            if not fut.done():
                fut.set_result(None if pinned is None else pinned.location())
        self.store.settle()
        self.agent.report_soon()
        self._spawn(self._tell_owner(pull.oid, pull.owner))

    async def _tell_owner(self, oid: bytes, owner: str) -> None:
        conn = None
        try:
            conn = await self.owners.get(owner)
            ok = await conn.call(Method.ADD_OBJECT_LOCATION,
                                 [oid, self.agent.node_id, self.agent.config.address])
        except Exception:
            ok = False
        if ok and conn is not None and conn.is_open():
            conn.state.setdefault("copies", set()).add(oid)
        else:
            self._drop_copy(oid)  # freed meanwhile, or its owner died

    def _drop_copy(self, oid: bytes) -> None:
        obj = self.store.table.objects.get(oid)
        if obj is not None and obj.secondary:
            self.store.free([oid])

    def free_requested(self, oids: list[bytes]) -> list[bytes]:
        """STORE_FREE from an owner: returns the ids to free now.  A pull in
        progress is abandoned instead; its space is freed once no chunk is
        being written into it."""
        out = []
        for oid in oids:
            pull = self.manager.pulls.get(oid)
            if pull is not None:
                self.manager.fail(pull, "its owner freed the object")
                self._settle(pull)
            else:
                out.append(oid)
        return out

    def _evicted(self, oid: bytes, owner: str) -> None:
        """The store dropped a pulled copy to make room: its owner forgets this node."""
        conn = self.owners.cached(owner) if owner else None
        if conn is not None:
            conn.state.get("copies", set()).discard(oid)
            conn.notify(Method.REMOVE_OBJECT_LOCATION, [oid, self.agent.node_id])

    def connection_closed(self, conn) -> None:
        """An owner we told about copies is gone: its objects are unreachable."""
        for oid in conn.state.get("copies", ()):
            self._drop_copy(oid)

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
