"""The node's object store as the agent serves it: the STORE_* requests,
waiting for space, waiting for a seal or a restore, and the spill I/O.

The pure :class:`~.table.ObjectTable` decides; this module carries out its
actions (:meth:`ObjectStore.settle`) with the event loop, the arena and the
I/O threads.  One settle pass::

    table.take_actions() -> SPILL      start writing a batch on an I/O thread
                            RESTORE    start reading an object back
                            DELETE_FILE
                            AVAILABLE  pin for every reader waiting on it, answer them
                            GONE       answer its waiting readers None
                            EVICTED    tell the owner (REMOVE_OBJECT_LOCATION)
                            SPACE      memory returned
    serve the waiting requests, in order (creates and restores; back-pressure)
    table.spill_over_high_water()  ... until the table has nothing more to do

Creating an object::

    client                          store
      | STORE_CREATE(oid, size) ->  | fits? allocate -> offset
      |                             | no: queue it; the table makes room (drops
      |                             |   copies also on disk or pulled from elsewhere,
      |                             |   spills the cheapest window); a spill that
      |                             |   completes returns memory -> retry, in order
      |                             | nothing can make room for FALLBACK_GRACE_S,
      |                             |   or larger than the store: a file of its own
      | <- offset | [path, size, 0] |   in the spill directory (disk-backed memory)
      | copy bytes in, STORE_SEAL ->|   full disk: ObjectStoreFullError naming it

Reading: STORE_GET pins what is in memory and restores what was spilled (the
reader waits; several restores run at once).  A pull from another node reads
a spilled object straight from its file (:meth:`open_reader`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from shoal.node.object_store import spill_io
from shoal.node.object_store.allocator import align
from shoal.node.object_store.page_release import PageReleaser, ReleasePolicy, default_slack
from shoal.node.object_store.spill_file_deleter import SpillFileDeleter
from shoal.node.object_store.table import (
    HAS_VALUE,
    READABLE,
    Action,
    ActionKind,
    CopyKind,
    ObjectState,
    ObjectStoreFullError,
    ObjectTable,
    OutOfMemory,
    Room,
    StoredObject,
)
from shoal.objects.arena import Arena, arena_path, remove_stale_arenas
from shoal.rpc.messages import Method
from shoal.rpc.store_messages import AlreadyStored, StoreCreateBody

log = logging.getLogger("shoal.store")

# How long a create, or a restore, waits when nothing can make room (frees may
# still come) before it gets disk-backed memory, or its readers map the spill file.
FALLBACK_GRACE_S = float(os.environ.get("SHOAL_FALLBACK_GRACE_S", "1.0"))
RESTORE_GRACE_S = float(os.environ.get("SHOAL_RESTORE_GRACE_S", "0.1"))
# Map the whole arena once spilling starts (Arena.prefault); "0" turns it off.
PREFAULT = os.environ.get("SHOAL_ARENA_PREFAULT", "1") == "1"
# 1: give free arena pages back to the OS past a slack (page_release.py).  Off by
# default: it took a 4 GB random_shuffle's peak from 5.4 to ~4.9 GB but cost it
# 12-25% of its time (design.md section 13)
PAGE_RELEASE = os.environ.get("SHOAL_PAGE_RELEASE", "0") == "1"
# The largest read-ahead window: bytes after a reader going through the spill
# order that are restored before it asks (see ObjectTable.start_restore).
RESTORE_READAHEAD = int(os.environ.get("SHOAL_RESTORE_READAHEAD_BYTES", 256 << 20))


@dataclass
class StoreConfig:
    capacity: int
    session: str
    node_id: str
    spill_dirs: list[str]
    high_water: float = 0.8
    min_spill_bytes: int = 100 << 20
    io_threads: int = 4


class RequestKind(enum.Enum):
    CREATE = "create"
    RESTORE = "restore"


@dataclass(eq=False)
class SpaceRequest:
    """A create or restore waiting for memory (served in arrival order)."""

    kind: RequestKind
    oid: bytes
    size: int
    future: asyncio.Future
    creator: object = None
    owner: str = ""
    stuck_since: float | None = None  # nothing could make room since then
    cold: bool = False  # the writer's hint: no reader wants it soon (spills first)
    disk_full_seen: int = 0  # the store's count of full-disk spill failures at stuck_since


@dataclass
class IoClock:
    """Wall time during which at least one write (or read) was in flight."""

    busy: int = 0
    since: float = 0.0
    seconds: float = 0.0

    def start(self) -> None:
        if self.busy == 0:
            self.since = time.perf_counter()
        self.busy += 1

    def stop(self) -> None:
        self.busy -= 1
        if self.busy == 0:
            self.seconds += time.perf_counter() - self.since

    def add(self, start: float, end: float) -> None:
        """An operation ran from ``start`` to ``end`` (on a thread; the time it
        waited for one does not count): add the part no other one covered."""
        self.seconds += max(0.0, end - max(start, self.since))
        self.since = max(self.since, end)


def _timed(fn, *args) -> tuple[float, float]:
    """Run ``fn(*args)`` (on an I/O thread): when it started and ended."""
    start = time.perf_counter()
    fn(*args)
    return start, time.perf_counter()


@dataclass(eq=False)
class _Waiter:
    client: object  # pin for this client when available; None: only wait
    future: asyncio.Future


@dataclass
class Hooks:
    """What the store tells the rest of the agent."""

    space_freed: list[Callable[[], None]] = field(default_factory=list)
    evicted: Callable[[bytes, str], None] = lambda oid, owner: None
    changed: Callable[[], None] = lambda: None
    sealed: Callable[[int, int], None] = lambda used, capacity: None  # after a seal


class ObjectStore:
    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        if not 0.0 < config.high_water <= 1.0:
            raise ValueError(f"the object spilling threshold must be in (0, 1], got "
                             f"{config.high_water!r}")
        if config.min_spill_bytes < 0:
            raise ValueError(f"the minimum spilling size must be >= 0 bytes, got "
                             f"{config.min_spill_bytes!r}")
        self.table = ObjectTable(config.capacity, config.high_water, config.min_spill_bytes,
                                 RESTORE_READAHEAD)
        self.dirs = spill_io.SpillDirs(config.spill_dirs, config.node_id)
        try:
            self.dirs.create()
        except OSError as exc:
            raise ValueError(f"cannot use {exc.filename or config.spill_dirs} as an object "
                             f"spilling directory: {exc.strerror or exc}") from None
        for name in remove_stale_arenas():
            log.warning("removed a leaked object store arena %s", name)
        self.arena = Arena(arena_path(config.session, config.node_id), self.table.capacity,
                           create=True)
        self.pool = concurrent.futures.ThreadPoolExecutor(
            max(1, config.io_threads), thread_name_prefix="shoal-spill")
        self.hooks = Hooks()
        self.waiting: deque[SpaceRequest] = deque()
        self.readers: dict[bytes, list[_Waiter]] = {}
        self.write_clock, self.read_clock = IoClock(), IoClock()
        self.disk_full_failures = 0
        self._tasks: set[asyncio.Task] = set()
        self._settling = False
        self._grace_timer: asyncio.TimerHandle | None = None
        self.closing = False
        self._prefault: threading.Thread | None = None
        self._prefault_stop = threading.Event()
        # freed spill files, deleted once the disk is quiet, on a thread of their own
        self.deleter = SpillFileDeleter(self.dirs.room)
        self.releaser = PageReleaser(self.arena, self.table.allocator,
                                     ReleasePolicy(default_slack(self.table.capacity)),
                                     self._release_budget, self._pages_given_back)

    def register(self, router) -> None:
        for method, handler in {
            Method.STORE_CREATE: self.handle_create,
            Method.STORE_SEAL: self.handle_seal,
            Method.STORE_GET: self.handle_get,
            Method.STORE_GET_IN_PLACE: self.handle_get_in_place,
            Method.STORE_RELEASE: self.handle_release,
        }.items():
            router.add(method, handler)

    @property
    def path(self) -> str:
        return self.arena.path

    # ---- requests --------------------------------------------------------------------
    def handle_create(self, conn, body):
        """A ``StoreCreateBody`` -> the arena offset, a file location (disk-backed
        memory), an ``AlreadyStored`` (a valid copy is here: do not write), or a
        future of one of them."""
        request = StoreCreateBody.from_wire(body)
        oid, size, owner, cold = request.object_id, request.size, request.owner, request.cold
        existing = self._existing_copy(conn, oid, owner)
        if existing is not None:
            return existing
        loop = asyncio.get_running_loop()
        request = SpaceRequest(RequestKind.CREATE, oid, size, loop.create_future(), conn, owner,
                               cold=cold)
        if size > self.table.capacity:
            self._spawn(self._create_backed(request))
            return request.future
        if not self.waiting:
            try:
                offset = self.table.create(oid, size, conn, owner, cold=cold)
            except OutOfMemory:
                pass
            else:
                return offset
        self.waiting.append(request)
        self.settle()
        return request.future

    def _existing_copy(self, conn, oid: bytes, owner: str) -> dict | None:
        """STORE_CREATE of an object this store has: a retried or rebuilt task
        writing its return again (its first run wrote it, then its worker died,
        or readers still pin a copy the owner freed).  A copy with a value is
        kept as the primary and the writer told not to write.  An unsealed one
        whose writer is gone is dropped."""
        obj = self.table.objects.get(oid)
        if obj is None:
            revived = self.table.revivable(oid)
            if revived is None:
                return None
            self.table.revive(revived, owner)
            return AlreadyStored(revived.size).to_wire()
        if obj.state in HAS_VALUE:
            self.table.make_primary(oid, owner)
            return AlreadyStored(obj.size).to_wire()
        creator_open = getattr(obj.creator, "is_open", None)
        if creator_open is not None and not creator_open():
            self.table.free(oid)
            self.settle()
            return None
        raise FileExistsError(f"object {oid.hex()} is being created by another writer")

    def handle_seal(self, conn, body):
        for oid in body:
            if oid in self.table.objects and \
                    self.table.objects[oid].state is ObjectState.CREATING:
                self.table.seal(oid)
        self.settle()
        self.hooks.changed()
        self.hooks.sealed(self.table.used, self.table.capacity)
        return None

    async def handle_get_in_place(self, conn, body):
        """STORE_GET for a reader that touches little of each object (sort's key
        sample): a spilled object is pinned on disk, and the reader maps its spill
        file and reads only the pages it touches, where a restore reads it all."""
        out = []
        for oid in body:
            obj = self.table.objects.get(oid)
            if obj is not None and obj.state is ObjectState.SPILLED:
                out.append(self.table.pin_on_disk(oid, conn))
            else:
                out.append(await self.pin_when_available(conn, oid))
        return out

    async def handle_get(self, conn, body):
        """Pin objects for ``conn``: a location per object, or None if it is not here."""
        if len(body) == 1:
            return [await self.pin_when_available(conn, body[0])]
        return list(await asyncio.gather(*[self.pin_when_available(conn, oid)
                                           for oid in body]))

    def handle_release(self, conn, body):
        for oid in body:
            self.table.release(oid, conn)
        self.settle()
        for hook in self.hooks.space_freed:
            hook()  # an unpinned object may be dropped or spilled for a waiting pull now
        return None

    def free(self, oids: list[bytes]) -> None:
        for oid in oids:
            self.table.free(oid)
        self.settle()

    def client_gone(self, conn) -> None:
        """Its pins and unsealed creates go; its waiting reads are answered None."""
        self.table.client_gone(conn)
        for oid, waiters in list(self.readers.items()):
            gone = [w for w in waiters if w.client is conn]
            if gone:
                self.readers[oid] = [w for w in waiters if w.client is not conn]
                for waiter in gone:
                    if not waiter.future.done():
                        waiter.future.set_result(None)
        self.settle()

    # ---- readers ---------------------------------------------------------------------
    async def pin_when_available(self, conn, oid: bytes) -> list | None:
        """Pin ``oid`` for ``conn`` once sealed or restored: its location, or None
        if this node does not have it (any more)."""
        obj = self.table.objects.get(oid)
        if obj is None:
            return None
        if obj.state in READABLE:
            self.table.pin(oid, conn)
            if self.table.has_actions:
                self.settle()  # the pin started reading ahead
            return obj.location()
        future = asyncio.get_running_loop().create_future()
        self.readers.setdefault(oid, []).append(_Waiter(conn, future))
        if obj.state is ObjectState.SPILLED:
            self._request_restore(obj)
        return await future

    async def wait_sealed(self, oid: bytes) -> StoredObject | None:
        """The object once it is no longer being created (None if it went away)."""
        obj = self.table.objects.get(oid)
        if obj is not None and obj.state is ObjectState.CREATING:
            future = asyncio.get_running_loop().create_future()
            self.readers.setdefault(oid, []).append(_Waiter(None, future))
            await future
        return self.table.objects.get(oid)

    def _request_restore(self, obj: StoredObject) -> None:
        if any(r.kind is RequestKind.RESTORE and r.oid == obj.oid for r in self.waiting):
            return
        future = asyncio.get_running_loop().create_future()
        self.waiting.append(SpaceRequest(RequestKind.RESTORE, obj.oid, obj.size, future))
        self.settle()

    def _answer_readers(self, oid: bytes, available: bool) -> None:
        obj = self.table.objects.get(oid)
        for waiter in self.readers.pop(oid, ()):
            if waiter.future.done():
                continue
            if waiter.client is None:
                waiter.future.set_result(available)
            elif available and obj is not None and obj.state in READABLE and \
                    getattr(waiter.client, "is_open", lambda: True)():
                self.table.pin(oid, waiter.client)
                waiter.future.set_result(obj.location())
            elif available and obj is not None and obj.state is ObjectState.SPILLED:
                self.readers.setdefault(oid, []).append(waiter)  # dropped again meanwhile
                self._request_restore(obj)
            else:
                waiter.future.set_result(None)

    # ---- pulls from other nodes --------------------------------------------------------
    def allocate_pulled(self, oid: bytes, size: int, owner: str) -> int | None:
        """An arena block for a copy being pulled here (a secondary copy), or
        None while there is no room (the pull stays queued; room is being made)."""
        try:
            return self.table.create(oid, size, PULL_CREATOR, owner, CopyKind.SECONDARY)
        except OutOfMemory:
            pass
        room = self.table.make_room(size, self.dirs.room())
        # its actions later: the pull manager is admitting, and settling may call it again
        asyncio.get_running_loop().call_soon(self.settle)
        if room is not Room.FITS:
            return None
        try:
            return self.table.create(oid, size, PULL_CREATOR, owner, CopyKind.SECONDARY)
        except OutOfMemory:
            return None

    def allocate_pulled_backed(self, oid: bytes, size: int, owner: str) -> str:
        """Disk-backed memory for a copy being pulled here that is larger than the
        whole store: the file's path.  Blocks the loop for one ``posix_fallocate``
        (milliseconds: the extents are reserved, not written).  Raises
        ObjectStoreFullError when the spill directories have no room."""
        path = self.dirs.place(size, "backed")
        try:
            if path is None:
                raise spill_io.DiskFullError(28, "no room")
            spill_io.create_backing_file(path, size)
        except Exception as exc:
            if path is not None:
                self.dirs.written(path, size)
            raise self._full_error(size, exc) from None
        self.dirs.written(path, size)
        self.table.create_backed(oid, size, PULL_CREATOR, owner, path, CopyKind.SECONDARY)
        return path

    async def open_reader(self, oid: bytes, key: object) -> ObjectReader | None:
        """For the data server: the object's bytes, from memory (pinned) or
        from its file; None if it is not here."""
        obj = await self.wait_sealed(oid)
        if obj is None:
            return None
        if obj.state in READABLE and not obj.backing:
            self.table.pin(oid, key)
            if self.table.has_actions:
                self.settle()  # the pin started reading ahead
            return _MemoryReader(self, oid, key, obj.offset, obj.size)
        disk = self.table.open_disk_read(oid)
        if disk is None:
            return None
        return _DiskReader(self, disk[0], disk[1], obj.size)

    # ---- carrying out the table's actions -------------------------------------------------
    def settle(self) -> None:
        if self._settling or self.closing:
            return
        self._settling = True
        space = False
        try:
            while True:
                for action in self.table.take_actions():
                    space |= self._perform(action)
                if self.waiting:
                    self._serve_waiting()
                self.table.spill_over_high_water(self.dirs.room())
                if not self.table.has_actions:
                    break
        finally:
            self._settling = False
        if space:
            if PAGE_RELEASE:
                self.releaser.block_freed()
            for hook in self.hooks.space_freed:
                hook()
            self.hooks.changed()

    def _release_budget(self) -> int:
        """Bytes a page-release round may hold reserved: none once the store has
        spilled (see page_release), else half the room below the high-water mark."""
        if not PAGE_RELEASE or self._prefault is not None or self.closing:
            return 0
        return max(0, int(self.table.high_water * self.table.capacity) - self.table.used) // 2

    def _pages_given_back(self) -> None:
        self.table.space_returned()
        self.settle()

    def _perform(self, action: Action) -> bool:
        kind = action.kind
        if kind is ActionKind.SPILL:
            self._start_prefault()
            self._spawn(self._spill(action))
        elif kind is ActionKind.RESTORE:
            self._spawn(self._restore(action))
        elif kind is ActionKind.DELETE_FILE:
            self.deleter.freed(action.path, action.size)
        elif kind is ActionKind.AVAILABLE:
            self._answer_readers(action.oid, True)
        elif kind is ActionKind.GONE:
            self._answer_readers(action.oid, False)
        elif kind is ActionKind.EVICTED:
            self.hooks.evicted(action.oid, action.owner)
        return kind is ActionKind.SPACE

    def _serve_waiting(self) -> None:
        """Serve waiting creates and restores in order; the first that cannot be
        served makes room and holds the others back (back-pressure)."""
        while self.waiting:
            request = self.waiting[0]
            if request.future.done() or not self._still_wanted(request):
                self.waiting.popleft()
                request.future.cancel()
                continue
            try:
                result = self._allocate(request)
            except OutOfMemory:
                room = self.table.make_room(request.size, self.dirs.room())
                if room is Room.FITS:
                    continue
                if room is Room.WAIT:
                    if self.disk_full_failures == request.disk_full_seen:
                        request.stuck_since = None  # progress (unless spills keep failing)
                    return
                if self._stuck(request):
                    continue
                return
            self.waiting.popleft()
            if not request.future.done():
                request.future.set_result(result)

    def _still_wanted(self, request: SpaceRequest) -> bool:
        if request.kind is RequestKind.RESTORE:
            obj = self.table.objects.get(request.oid)
            return obj is not None and obj.state is ObjectState.SPILLED
        creator_open = getattr(request.creator, "is_open", None)
        return creator_open is None or creator_open()

    def _allocate(self, request: SpaceRequest):
        if request.kind is RequestKind.CREATE:
            return self.table.create(request.oid, request.size, request.creator, request.owner,
                                     cold=request.cold)
        self.table.start_restore(request.oid)
        return None

    def _stuck(self, request: SpaceRequest) -> bool:
        """Nothing can make room for the head request.  After FALLBACK_GRACE_S
        (frees may still come) a create gets disk-backed memory, and the readers
        of a spilled object map its spill file: True if it was taken out of the
        queue."""
        now = asyncio.get_running_loop().time()
        if request.stuck_since is None:
            request.stuck_since = now
            request.disk_full_seen = self.disk_full_failures
        grace = FALLBACK_GRACE_S if request.kind is RequestKind.CREATE else RESTORE_GRACE_S
        if now - request.stuck_since >= grace:
            self.waiting.popleft()
            what = "creating" if request.kind is RequestKind.CREATE else "mapping the file of"
            log.info("no room in the object store for %d bytes (%d of %d in use, %s); "
                     "%s %s in disk-backed memory", request.size, self.table.used,
                     self.table.capacity, self._pinned_summary(), what, request.oid.hex())
            if request.kind is RequestKind.CREATE:
                self._spawn(self._create_backed(request))
            else:
                self._readers_map_the_file(request.oid)
            return True
        if self._grace_timer is None:
            delay = max(0.01, request.stuck_since + grace - now)
            self._grace_timer = asyncio.get_running_loop().call_later(delay, self._grace_over)
        return False

    def _readers_map_the_file(self, oid: bytes) -> None:
        for waiter in self.readers.pop(oid, ()):
            if not waiter.future.done():
                waiter.future.set_result(
                    True if waiter.client is None else self.table.pin_on_disk(oid, waiter.client))

    def _grace_over(self) -> None:
        self._grace_timer = None
        self.table.retry_disk()  # files may have gone meanwhile
        self.settle()

    def _pinned_summary(self) -> str:
        pinned = [o for o in self.table.objects.values() if o.pinned]
        return f"{len(pinned)} objects pinned by readers, {sum(o.size for o in pinned)} bytes"

    # ---- I/O -------------------------------------------------------------------------------
    def _start_prefault(self) -> None:
        """Once, at the first spill: map the whole arena on a thread of its own
        (see Arena.prefault), so restores do not fault page by page."""
        if self._prefault is None and PREFAULT:
            self._prefault = threading.Thread(target=self.arena.prefault,
                                              args=(self._prefault_stop,),
                                              name="shoal-prefault", daemon=True)
            self._prefault.start()

    async def _spill(self, action: Action) -> None:
        items = action.items
        _, length = spill_io.layout([align(item.size) for item in items])
        path = self.dirs.place(length, "spill")
        if path is None:
            self.deleter.everything()  # the room they hold is needed now
            log.warning("spilling %d objects (%d bytes) failed: no room in %s; they stay in "
                        "memory", len(items), length, self.dirs.describe())
            self.disk_full_failures += 1
            self.table.spill_failed(action.batch_id, disk_full=True)
            self.settle()
            return
        view = self.arena.view  # whole blocks (page multiples): written with O_DIRECT
        parts = [view[item.offset:item.offset + align(item.size)] for item in items]
        loop = asyncio.get_running_loop()
        self.write_clock.start()
        self.deleter.io_started()
        try:
            offsets, seconds = await loop.run_in_executor(self.pool, spill_io.write_file,
                                                          path, parts)
        except Exception as exc:
            disk_full = isinstance(exc, spill_io.DiskFullError)
            self.disk_full_failures += disk_full
            log.warning("spilling %d objects (%d bytes) to %s failed: %s; they stay in "
                        "memory", len(items), length, path, exc)
            self.table.spill_failed(action.batch_id, disk_full)
        else:
            log.debug("spilled %d objects (%d bytes) to %s in %.3f s", len(items), length,
                      path, seconds)
            self.table.spill_done(action.batch_id, path, offsets, length)
        finally:
            self.write_clock.stop()
            self.dirs.written(path, length)
            self.deleter.io_ended()
        self.settle()

    async def _restore(self, action: Action) -> None:
        """Read the object (and the ones read ahead with it) into their blocks:
        whole blocks, in file order, with one read."""
        view = self.arena.view
        views = [view[i.offset:i.offset + align(i.size)] for i in action.items]
        loop = asyncio.get_running_loop()
        self.deleter.io_started()
        try:
            # read-ahead queues reads on the pool: only the time they ran counts
            start, end = await loop.run_in_executor(self.pool, _timed, spill_io.read_into,
                                                    action.path, action.file_offset, views)
            self.read_clock.add(start, end)
            ok = True
        except Exception as exc:
            log.error("restoring object %s from %s failed: %s; the object is lost",
                      action.oid.hex(), action.path, exc)
            ok = False
        finally:
            for v in views:
                v.release()
            self.deleter.io_ended()
        for item in action.items:
            self.table.restore_done(item.oid, ok)
        self.settle()

    async def _create_backed(self, request: SpaceRequest) -> None:
        path = self.dirs.place(request.size, "backed")
        try:
            if path is None:
                self.deleter.everything()
                raise spill_io.DiskFullError(28, "no room")
            await asyncio.get_running_loop().run_in_executor(
                self.pool, spill_io.create_backing_file, path, request.size)
        except Exception as exc:
            if path is not None:
                self.dirs.written(path, request.size)
            if not request.future.done():
                request.future.set_exception(self._full_error(request.size, exc))
            return
        self.dirs.written(path, request.size)
        if request.future.done() or not self._still_wanted(request):
            self.deleter.delete_now(path)
            return
        try:
            self.table.create_backed(request.oid, request.size, request.creator,
                                     request.owner, path)
        except FileExistsError as exc:
            self.deleter.delete_now(path)
            request.future.set_exception(exc)
            return
        request.future.set_result([path, request.size, 0])

    def _full_error(self, size: int, exc: Exception) -> ObjectStoreFullError:
        free = max(0, self.dirs.room())
        if isinstance(exc, spill_io.DiskFullError):
            return ObjectStoreFullError(
                f"object store is full and so is its spill directory: cannot create an "
                f"object of {size} bytes; the object store holds {self.table.used} of "
                f"{self.table.capacity} bytes ({self._pinned_summary()}) and the spill "
                f"directory {self.dirs.describe()} has {free} bytes free. Free objects "
                f"(drop their refs), or give shoal a larger object_spilling_directory")
        return ObjectStoreFullError(
            f"cannot create an object of {size} bytes: the object store is full and "
            f"disk-backed memory in {self.dirs.describe()} failed: {exc}")

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- reporting and shutdown ----------------------------------------------------------------
    def stats(self) -> dict:
        table = self.table
        objects_on_disk, bytes_on_disk = table.on_disk()
        return {
            "capacity": table.capacity,
            "used": table.used,
            "num_objects": len(table.objects),
            "spilled_bytes_total": table.stats["spilled_bytes"],
            "spilled_objects_total": table.stats["spilled_objects"],
            "restored_bytes_total": table.stats["restored_bytes"],
            "restored_objects_total": table.stats["restored_objects"],
            "spill_seconds": self.write_clock.seconds,
            "restore_seconds": self.read_clock.seconds,
            "restore_reads_total": table.stats["restore_reads"],
            "readahead_bytes_total": table.stats["readahead_bytes"],
            "readahead_objects_total": table.stats["readahead_objects"],
            "readahead_unused_bytes_total": table.stats["readahead_unused_bytes"],
            "spill_failures": table.stats["spill_failures"],
            "objects_on_disk": objects_on_disk,
            "bytes_on_disk": bytes_on_disk,
            "spill_files": len(table.files),
            "disk_backed_objects": sum(1 for o in table.objects.values() if o.backing),
            "waiting_creates": len(self.waiting),
            "spill_dirs": list(self.dirs.dirs),
            "arena_resident_bytes": self.releaser.resident(),
            "pages_given_back_bytes": self.releaser.released,
        }

    SUMMARY = ("capacity", "used", "num_objects", "spilled_bytes_total",
               "spilled_objects_total", "spill_seconds", "restored_bytes_total",
               "restored_objects_total", "restore_seconds", "objects_on_disk", "bytes_on_disk")

    def summary(self) -> dict:
        """The part of :meth:`stats` that ``shoal status`` shows."""
        stats = self.stats()
        return {key: stats[key] for key in self.SUMMARY}

    def where(self) -> dict[str, str]:
        """``{object id hex: "MEMORY" | "DISK"}`` of every object here."""
        return {oid.hex(): "MEMORY" if obj.offset >= 0 else "DISK"
                for oid, obj in self.table.objects.items()}

    def close(self) -> None:
        """Stop: fail the waiting, remove the arena and every spill file."""
        self.closing = True
        for task in list(self._tasks):
            task.cancel()
        for request in self.waiting:
            if not request.future.done():
                request.future.cancel()
        self._prefault_stop.set()
        if self._prefault is not None:
            self._prefault.join()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.deleter.close()
        self.arena.unlink()
        self.dirs.remove_all()


PULL_CREATOR = "pull"  # the creator of objects being pulled: never a client connection


class ObjectReader:
    """The bytes of one object for the data server; ``close`` when done."""

    size: int

    async def read(self, offset: int, length: int):
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _MemoryReader(ObjectReader):
    def __init__(self, store: ObjectStore, oid: bytes, key: object, offset: int,
                 size: int) -> None:
        self.store, self.oid, self.key, self.offset, self.size = store, oid, key, offset, size

    async def read(self, offset: int, length: int):
        return self.store.arena.view[self.offset + offset:self.offset + offset + length]

    def close(self) -> None:
        self.store.table.release(self.oid, self.key)
        self.store.settle()


class _DiskReader(ObjectReader):
    def __init__(self, store: ObjectStore, path: str, base: int, size: int) -> None:
        self.store, self.path, self.base, self.size = store, path, base, size

    async def read(self, offset: int, length: int):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.store.pool, spill_io.read_chunk, self.path,
                                          self.base + offset, length)

    def close(self) -> None:
        self.store.table.close_disk_read(self.path)
        self.store.settle()
