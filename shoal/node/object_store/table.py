"""The node's object table: each object's lifecycle as a pure state machine.

Theory of operation
-------------------
Every object this node holds is one :class:`StoredObject` in one
:class:`ObjectState`.  Events come in as method calls (a client creates,
seals, pins, releases; the owner frees; the I/O layer reports a finished
spill or restore); the table changes state only through :data:`TRANSITIONS`
and queues :class:`Action` s for the service around it to carry out (start a
spill or restore, delete a file, wake readers, tell an owner).  No sockets, no
clock, no threads: the same table runs in unit tests.

::

    create ──> CREATING ──seal──> SEALED ──spill──> SPILLING ──done──> SPILLED
                  │                ▲  │  ▲              │  │            │  ▲
                  │                │  │  └─failed/kept──┘  │            │  │
                  │                │  └──unload (also on disk)─────────────┘  │
                  │                └────restored──── RESTORING <──restore─┘
                  └── free (any state; also evict a secondary) ──> FREED

* Memory: an object in CREATING, SEALED, SPILLING or RESTORING owns an arena
  block (``offset``); SPILLED owns none.  An object larger than the whole store
  is created in a file of its own instead (``backing``, Ray's fallback
  allocation) and never spilled: it is on disk already.
* Pins: readers pin SEALED (and SPILLING) objects; a pinned object is never
  written out or dropped, since readers hold zero-copy views of its block.
  When no memory can be had to restore a SPILLED object, readers may map its
  spill file instead (:meth:`ObjectTable.pin_on_disk`): the file then stays
  until those pins go, like a block.  A
  spill that completes while its object was pinned keeps the memory copy
  (SEALED, with a disk copy: dropping it later costs nothing).
* Disk copies: a spill writes a batch of objects into one (fused) file; each
  object remembers its :class:`DiskCopy` until it is freed, also after a
  restore.  A file is deleted once no live object is in it and no chunk read
  (a pull streaming from disk) is in flight.
* FREED: the owner freed the object, or its creation was abandoned, or a
  secondary copy was evicted.  It leaves ``objects`` at once (the id may be
  created again) and waits in ``freed`` while readers still pin it or an I/O
  still uses its block; then its memory returns (a SPACE action).
* Kinds: a *primary* copy was written on this node (put, task return) and is
  spilled under pressure; a *secondary* copy was pulled from another node and
  is dropped instead (its primary lives elsewhere).

Making room and the high-water mark are policy (:mod:`.policy`): the table
describes its arena to it and carries out its answer.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field

from shoal.node.object_store.allocator import Allocator, OutOfMemory, align
from shoal.node.object_store.policy import (
    Batch,
    Candidate,
    Following,
    Movability,
    Segment,
    choose_batch,
    choose_readahead,
    choose_window,
)
from shoal.node.object_store.readahead import SpillOrder, Stream, Streams, spill_seq

__all__ = ["Action", "ActionKind", "CopyKind", "DiskCopy", "Event", "ObjectState",
           "ObjectStoreFullError", "ObjectTable", "OutOfMemory", "Room", "SpillFile",
           "StoredObject", "TRANSITIONS"]

# Objects read ahead that lie side by side in one file come back in one read of
# at most this many bytes (one object larger than this is one read of its own).
RUN_BYTES = 16 << 20


class ObjectStoreFullError(Exception):
    """No room now or later: the message says what is needed and what is free."""


class ObjectState(enum.Enum):
    CREATING = "creating"  # allocated; its writer is copying the bytes in
    SEALED = "sealed"  # immutable and in memory: readers may pin it
    SPILLING = "spilling"  # in memory, being written to a spill file
    SPILLED = "spilled"  # only on disk
    RESTORING = "restoring"  # being read back from disk into its new block
    FREED = "freed"  # gone; memory held until pins and I/O end


class Event(enum.Enum):
    SEAL = "seal"
    SPILL = "spill"
    SPILL_DONE = "spill_done"  # written, nobody pinned it meanwhile: memory returns
    SPILL_KEPT = "spill_kept"  # written, but pinned meanwhile: stays in memory too
    SPILL_FAILED = "spill_failed"
    UNLOAD = "unload"  # drop the memory copy of an object that is also on disk
    RESTORE = "restore"
    RESTORED = "restored"
    RESTORE_FAILED = "restore_failed"  # the disk copy is unreadable: the object is lost
    EVICT = "evict"  # drop a secondary copy
    FREE = "free"
    REVIVE = "revive"  # freed but still pinned, and created again: the copy is valid


S, E = ObjectState, Event
TRANSITIONS: dict[ObjectState, dict[Event, ObjectState]] = {
    S.CREATING: {E.SEAL: S.SEALED, E.FREE: S.FREED},
    S.SEALED: {E.SPILL: S.SPILLING, E.UNLOAD: S.SPILLED, E.EVICT: S.FREED, E.FREE: S.FREED},
    S.SPILLING: {E.SPILL_DONE: S.SPILLED, E.SPILL_KEPT: S.SEALED, E.SPILL_FAILED: S.SEALED,
                 E.FREE: S.FREED},
    S.SPILLED: {E.RESTORE: S.RESTORING, E.FREE: S.FREED},
    S.RESTORING: {E.RESTORED: S.SEALED, E.RESTORE_FAILED: S.FREED, E.FREE: S.FREED},
    S.FREED: {E.REVIVE: S.SEALED},
}
READABLE = frozenset({S.SEALED, S.SPILLING})  # in memory and complete: pinnable
HAS_VALUE = frozenset({S.SEALED, S.SPILLING, S.SPILLED, S.RESTORING})


class CopyKind(enum.Enum):
    PRIMARY = "primary"  # written here: spilled under pressure
    SECONDARY = "secondary"  # pulled from another node: dropped under pressure


@dataclass(eq=False)
class SpillFile:
    """One spill file.  Deleted when ``live`` is empty and no read is in flight."""

    path: str
    length: int = 0  # bytes (0: not known)
    live: set[bytes] = field(default_factory=set)  # objects whose disk copy is here
    readers: int = 0  # chunk reads from this file in flight


@dataclass(eq=False)
class DiskCopy:
    file: SpillFile
    offset: int
    seq: int  # its place in the spill order (see :mod:`.readahead`)


@dataclass(eq=False)
class StoredObject:
    """One object on this node.

    ``creator`` is the client writing it while CREATING (its disconnection
    abandons the object); ``owner`` the address of the owner's core worker
    ("" unknown).  ``offset`` is its arena block while in memory, else -1;
    ``backing`` the file of an object larger than the store.  ``disk`` is set
    once a spill of it completed, until it is freed.  ``io`` is True while a
    spill or restore uses its block.  ``last_used`` is the table's clock at
    its last seal, pin or release (least recently used goes first)."""

    oid: bytes
    size: int
    creator: object
    owner: str = ""
    kind: CopyKind = CopyKind.PRIMARY
    state: ObjectState = ObjectState.CREATING
    offset: int = -1
    backing: str = ""
    disk: DiskCopy | None = None
    pins: Counter = field(default_factory=Counter)
    io: bool = False
    last_used: int = 0
    unused_ahead: bool = False  # restored by read-ahead, no reader has pinned it yet
    cold: bool = False  # its writer hinted no reader wants it soon; cleared by a pin

    @property
    def pinned(self) -> bool:
        return sum(self.pins.values()) > 0

    @property
    def secondary(self) -> bool:
        return self.kind is CopyKind.SECONDARY

    @property
    def in_memory(self) -> bool:
        return self.offset >= 0 or bool(self.backing)

    def location(self) -> list:
        """Where readers find it (see :mod:`shoal.objects.arena`)."""
        if self.backing:
            return [self.backing, self.size, 0]
        return [self.offset, self.size]


class ActionKind(enum.Enum):
    SPILL = "spill"  # write ``batch`` (objects, arena offsets, sizes) into one new file
    RESTORE = "restore"  # read ``items`` (``oid`` first) from ``path`` at ``file_offset``
    DELETE_FILE = "delete_file"  # a spill file nobody needs, or a freed object's backing file
    AVAILABLE = "available"  # ``oid`` is sealed or restored: waiting readers may pin it
    GONE = "gone"  # ``oid`` is not here any more: waiting readers get None
    EVICTED = "evicted"  # a secondary copy of ``oid`` (owned by ``owner``) was dropped
    SPACE = "space"  # memory returned: waiting creates, restores and pulls may fit


@dataclass(frozen=True)
class SpillItem:
    oid: bytes
    offset: int  # in the arena
    size: int


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    oid: bytes = b""
    owner: str = ""
    path: str = ""
    file_offset: int = 0
    batch_id: int = 0
    items: tuple[SpillItem, ...] = ()
    size: int = 0  # DELETE_FILE: the file's bytes (0: not known)


class Room(enum.Enum):
    """What :meth:`ObjectTable.make_room` found."""

    FITS = "fits"  # a free block is large enough now
    WAIT = "wait"  # writes in flight will free enough (some may have started just now)
    STUCK = "stuck"  # nothing this node can do: everything else is pinned or being made


class ObjectTable:
    """Objects, their states and the arena's allocator.  Event-loop thread only."""

    def __init__(self, capacity: int, high_water: float = 0.8,
                 min_spill_bytes: int = 100 << 20, readahead: int = 0) -> None:
        self.allocator = Allocator(capacity)
        self.high_water = high_water
        self.min_spill_bytes = min_spill_bytes
        # readers going through the spill order, and the largest window read ahead of
        # each (0: no read-ahead; see start_restore and :mod:`.readahead`)
        self.spill_order = SpillOrder()
        self.streams = Streams(readahead)
        self.cached = 0  # bytes of blocks whose object also has a disk copy: dropped for free
        self.objects: dict[bytes, StoredObject] = {}
        self.freed: dict[bytes, list[StoredObject]] = {}  # FREED, still holding memory
        self.at: dict[int, StoredObject] = {}  # arena offset -> the object in that block
        self.spills: dict[int, list[StoredObject]] = {}  # batch id -> objects being written
        self.files: dict[str, SpillFile] = {}
        self.disk_full = False  # the last spill found no room on disk: do not start more
        self.stats = Counter()  # spilled/restored bytes and objects, totals
        self._actions: list[Action] = []
        self._clock = 0
        self._batch_ids = 0
        # Bumped by whatever may let more objects leave memory (a block returned, an
        # object sealed or unpinned, a write ended): the policy's answers are kept
        # until it moves or the disk has more room, so a busy store does not re-plan
        # on every request.
        self.changes = 0
        self._room_memo: tuple[int, int, int, Room] | None = None  # size, changes, room
        self._high_water_memo: tuple[int, int] = (-1, 0)  # changes, disk room

    # ---- sizes ----------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return self.allocator.capacity

    @property
    def used(self) -> int:
        return self.allocator.used

    def bytes_spilling(self) -> int:
        return sum(o.size for objs in self.spills.values() for o in objs
                   if o.state is S.SPILLING and not o.pinned)

    def on_disk(self) -> tuple[int, int]:
        """(objects, bytes) with a copy in a spill file now."""
        objs = [o for o in self.objects.values() if o.disk is not None]
        return len(objs), sum(o.size for o in objs)

    def held(self) -> list[StoredObject]:
        """Every record: the live objects and the freed ones still held."""
        return [*self.objects.values(), *(o for objs in self.freed.values() for o in objs)]

    @property
    def has_actions(self) -> bool:
        return bool(self._actions)

    def take_actions(self) -> list[Action]:
        actions, self._actions = self._actions, []
        return actions

    # ---- transitions ----------------------------------------------------------------
    def _to(self, obj: StoredObject, event: Event) -> None:
        try:
            obj.state = TRANSITIONS[obj.state][event]
        except KeyError:
            raise RuntimeError(f"object {obj.oid.hex()}: no transition from "
                               f"{obj.state.name} on {event.name}") from None

    def _changed(self) -> None:
        self.changes += 1

    def retry_disk(self) -> None:
        """Try the spill disk again (room may have appeared)."""
        self.disk_full = False
        self._changed()

    def _touch(self, obj: StoredObject) -> None:
        self._clock += 1
        obj.last_used = self._clock

    # ---- creating -------------------------------------------------------------------
    def create(self, oid: bytes, size: int, creator: object, owner: str = "",
               kind: CopyKind = CopyKind.PRIMARY, cold: bool = False) -> int:
        """Allocate ``oid`` in the arena; returns its offset.  ``cold``: the
        writer's hint that no reader wants it soon (it spills first).  Raises
        FileExistsError (it is here), ObjectStoreFullError (larger than the
        store: see :meth:`create_backed`) or OutOfMemory (no block now)."""
        if oid in self.objects:
            raise FileExistsError(oid.hex())
        if size > self.capacity:
            raise ObjectStoreFullError(
                f"object of {size} bytes is larger than the object store "
                f"({self.capacity} bytes); start shoal with a larger object_store_memory")
        offset = self.allocator.allocate(size)  # may raise OutOfMemory
        obj = StoredObject(oid, size, creator, owner, kind, offset=offset, cold=cold)
        self.objects[oid] = obj
        self.at[offset] = obj
        return offset

    def create_backed(self, oid: bytes, size: int, creator: object, owner: str,
                      path: str, kind: CopyKind = CopyKind.PRIMARY) -> StoredObject:
        """``oid`` in a file of its own (created by the caller): disk-backed memory."""
        if oid in self.objects:
            raise FileExistsError(oid.hex())
        obj = StoredObject(oid, size, creator, owner, kind=kind, backing=path)
        self.objects[oid] = obj
        return obj

    def revivable(self, oid: bytes) -> StoredObject | None:
        """A freed copy of ``oid`` that readers still pin and that is whole."""
        for obj in self.freed.get(oid, ()):
            if obj.pinned and not obj.io and obj.in_memory:
                return obj
        return None

    def revive(self, obj: StoredObject, owner: str) -> None:
        """A retried or rebuilt task writes an object whose freed copy readers
        still pin: that copy is a valid value; it becomes the primary again."""
        self._forget_freed(obj)
        self._to(obj, Event.REVIVE)
        if obj.disk is not None:
            self.spill_order.add(obj.disk.seq, obj.oid)
        obj.kind, obj.owner = CopyKind.PRIMARY, owner or obj.owner
        self.objects[obj.oid] = obj

    def make_primary(self, oid: bytes, owner: str) -> StoredObject:
        obj = self.objects[oid]
        obj.kind, obj.owner = CopyKind.PRIMARY, owner or obj.owner
        return obj

    def seal(self, oid: bytes) -> StoredObject:
        obj = self.objects[oid]
        self._to(obj, Event.SEAL)
        self._touch(obj)
        self._changed()
        self._actions.append(Action(ActionKind.AVAILABLE, oid))
        return obj

    # ---- readers --------------------------------------------------------------------
    def pin(self, oid: bytes, client: object) -> StoredObject | None:
        """Pin ``oid`` in memory for ``client``; None unless it is readable now."""
        obj = self.objects.get(oid)
        if obj is None or obj.state not in READABLE:
            return None
        obj.pins[client] += 1
        self._touch(obj)
        obj.unused_ahead = obj.cold = False
        if obj.disk is not None:
            self._emit_restores(self._reader_used(obj))
        return obj

    def pin_on_disk(self, oid: bytes, client: object) -> list | None:
        """Pin the SPILLED ``oid``'s disk copy for ``client``, which maps the spill
        file itself: the last resort when no memory can be had for a restore.
        Returns its file location (see :mod:`shoal.objects.arena`), or None."""
        obj = self.objects.get(oid)
        if obj is None or obj.state is not S.SPILLED or obj.disk is None:
            return None
        obj.pins[client] += 1
        self._touch(obj)
        return [obj.disk.file.path, obj.size, obj.disk.offset]

    def release(self, oid: bytes, client: object) -> None:
        obj = self._pinned_by(oid, client)
        if obj is None:
            return
        obj.pins[client] -= 1
        if obj.pins[client] == 0:
            del obj.pins[client]
            self._changed()
        self._touch(obj)
        if obj.state is S.FREED:
            self._maybe_release(obj)

    def _pinned_by(self, oid: bytes, client: object) -> StoredObject | None:
        obj = self.objects.get(oid)
        if obj is not None and obj.pins[client] > 0:
            return obj
        for freed in self.freed.get(oid, ()):
            if freed.pins[client] > 0:
                return freed
        return None

    def client_gone(self, client: object) -> None:
        """Its pins go; objects it was creating are abandoned."""
        for obj in self.held():
            if client in obj.pins:
                del obj.pins[client]
                if obj.state is S.FREED:
                    self._maybe_release(obj)
            if obj.state is S.CREATING and obj.creator is client:
                self.free(obj.oid)

    # ---- disk reads (a pull streaming a spilled object) -------------------------------
    def open_disk_read(self, oid: bytes) -> tuple[str, int] | None:
        """(path, offset) of ``oid``'s bytes on disk, held until
        :meth:`close_disk_read`; None if it has no disk copy."""
        obj = self.objects.get(oid)
        if obj is None or obj.state not in HAS_VALUE:
            return None
        if obj.backing and obj.state is S.SEALED:
            return obj.backing, 0
        if obj.disk is None:
            return None
        obj.disk.file.readers += 1
        return obj.disk.file.path, obj.disk.offset

    def close_disk_read(self, path: str) -> None:
        spill_file = self.files.get(path)
        if spill_file is not None:
            spill_file.readers -= 1
            self._maybe_delete_file(spill_file)

    # ---- freeing --------------------------------------------------------------------
    def free(self, oid: bytes) -> bool:
        """The owner freed ``oid`` (or its creation was abandoned); True if it was here."""
        obj = self.objects.pop(oid, None)
        if obj is None:
            return False
        self._to(obj, Event.FREE)
        self._read_ahead_for_nothing(obj)
        if obj.disk is not None:
            self.spill_order.discard(obj.disk.seq)  # (its file stays while pins hold it)
        self._actions.append(Action(ActionKind.GONE, oid))  # for readers still waiting
        self.freed.setdefault(oid, []).append(obj)
        self._maybe_release(obj)
        return True

    def _evict(self, obj: StoredObject) -> None:
        """Drop an unpinned secondary copy (the owner is told; its later free is a no-op)."""
        del self.objects[obj.oid]
        self._to(obj, Event.EVICT)
        self.freed.setdefault(obj.oid, []).append(obj)
        self._actions.append(Action(ActionKind.EVICTED, obj.oid, owner=obj.owner))
        self._maybe_release(obj)

    def _unload(self, obj: StoredObject) -> None:
        """Drop the memory copy of an object that is also on disk."""
        self._to(obj, Event.UNLOAD)
        self._read_ahead_for_nothing(obj)
        self._release_block(obj)

    def _read_ahead_for_nothing(self, obj: StoredObject) -> None:
        if obj.unused_ahead:
            obj.unused_ahead = False
            self.stats["readahead_unused_bytes"] += obj.size

    def _maybe_release(self, obj: StoredObject) -> None:
        """A FREED object returns its memory and disk copy once unpinned and idle."""
        if obj.pinned or obj.io:
            return
        self._forget_freed(obj)
        self._release_block(obj)
        if obj.backing:
            self._actions.append(Action(ActionKind.DELETE_FILE, obj.oid, path=obj.backing,
                                        size=obj.size))
            obj.backing = ""
        self._drop_disk_copy(obj)

    def _forget_freed(self, obj: StoredObject) -> None:
        objs = self.freed.get(obj.oid, [])
        if obj in objs:
            objs.remove(obj)
            if not objs:
                del self.freed[obj.oid]

    def _cached_bytes(self, obj: StoredObject) -> int:
        """Its block's bytes if it is in memory and on disk (counted in ``cached``)."""
        return align(max(obj.size, 1)) if obj.offset >= 0 and obj.disk is not None else 0

    def _give_block(self, obj: StoredObject) -> None:
        """Allocate ``obj``'s block (raises OutOfMemory)."""
        obj.offset = self.allocator.allocate(obj.size)
        self.at[obj.offset] = obj
        self.cached += self._cached_bytes(obj)

    def _release_block(self, obj: StoredObject) -> None:
        if obj.offset >= 0:
            self.cached -= self._cached_bytes(obj)
            self.allocator.free(obj.offset)
            del self.at[obj.offset]
            obj.offset = -1
            self._actions.append(Action(ActionKind.SPACE))
            self._changed()

    def space_returned(self) -> None:
        """Blocks held outside the table (page_release's reservations) are free again."""
        self._actions.append(Action(ActionKind.SPACE))
        self._changed()

    def _drop_disk_copy(self, obj: StoredObject) -> None:
        if obj.disk is not None:
            self.cached -= self._cached_bytes(obj)
            spill_file = obj.disk.file
            spill_file.live.discard(obj.oid)
            self.spill_order.discard(obj.disk.seq)
            obj.disk = None
            self._maybe_delete_file(spill_file)

    def _maybe_delete_file(self, spill_file: SpillFile) -> None:
        if not spill_file.live and spill_file.readers <= 0 and spill_file.path in self.files:
            del self.files[spill_file.path]
            self._actions.append(Action(ActionKind.DELETE_FILE, path=spill_file.path,
                                        size=spill_file.length))
            self.retry_disk()  # room again, perhaps

    # ---- spilling ---------------------------------------------------------------------
    def _start_spill(self, oids: list[bytes] | tuple[bytes, ...]) -> None:
        objs = [self.objects[oid] for oid in oids]
        if not objs:
            return
        self._batch_ids += 1
        for obj in objs:
            self._to(obj, Event.SPILL)
            obj.io = True
        self.spills[self._batch_ids] = objs
        items = tuple(SpillItem(o.oid, o.offset, o.size) for o in objs)
        self._actions.append(Action(ActionKind.SPILL, batch_id=self._batch_ids, items=items))

    def spill_done(self, batch_id: int, path: str, offsets: list[int],
                   length: int = 0) -> None:
        """The batch is in ``path`` (``length`` bytes), object i at ``offsets[i]``."""
        self._changed()
        spill_file = SpillFile(path, length)
        self.files[path] = spill_file
        objs = self.spills.pop(batch_id)
        for index, (obj, file_offset) in enumerate(zip(objs, offsets, strict=True)):
            obj.io = False
            if obj.state is S.FREED:
                self._maybe_release(obj)
                continue
            obj.disk = DiskCopy(spill_file, file_offset, spill_seq(batch_id, index))
            self.cached += self._cached_bytes(obj)
            self.spill_order.add(obj.disk.seq, obj.oid)
            spill_file.live.add(obj.oid)
            self.stats["spilled_bytes"] += obj.size
            self.stats["spilled_objects"] += 1
            if obj.pinned:
                self._to(obj, Event.SPILL_KEPT)
            else:
                self._to(obj, Event.SPILL_DONE)
                self._release_block(obj)
        self._maybe_delete_file(spill_file)

    def spill_failed(self, batch_id: int, disk_full: bool) -> None:
        """Nothing of the batch was kept on disk: its objects stay in memory."""
        self._changed()
        for obj in self.spills.pop(batch_id):
            obj.io = False
            if obj.state is S.FREED:
                self._maybe_release(obj)
            else:
                self._to(obj, Event.SPILL_FAILED)
        self.stats["spill_failures"] += 1
        if disk_full:
            self.disk_full = True

    def _movability(self, obj: StoredObject) -> Movability:
        if obj.state is S.SPILLING and not obj.pinned:
            return Movability.COMING
        if obj.state is not S.SEALED or obj.pinned or obj.backing:
            return Movability.STUCK
        if obj.secondary or obj.disk is not None:
            return Movability.DROP
        return Movability.STUCK if self.disk_full else Movability.SPILL

    def make_room(self, size: int, disk_room: int) -> Room:
        """Make a free block of ``size`` bytes: drop what can be dropped and
        start spilling what must be written first, in the cheapest window."""
        if self.allocator.fits(size):
            return Room.FITS
        memo = self._room_memo
        if memo is not None and memo[:2] == (size, self.changes) and disk_room <= memo[2]:
            return memo[3]  # nothing moved since: the same answer
        room = self._make_room(size, disk_room)
        # FITS is never remembered: an allocation since (which does not count as a
        # change) may have taken the block, and a stale FITS made the agent's loop
        # retry the allocation for ever
        self._room_memo = None if room is Room.FITS else (size, self.changes, disk_room, room)
        return room

    def _make_room(self, size: int, disk_room: int) -> Room:
        segments = []
        for offset, block, free in self.allocator.blocks():
            kind = Movability.FREE if free else self._movability(self.at[offset])
            oid = b"" if free else self.at[offset].oid
            cold = not free and self.at[offset].cold
            segments.append(Segment(offset, block, kind, oid, cold))
        window = choose_window(segments, align(max(size, 1)))
        if window is None or window.spill_bytes > disk_room:
            return Room.STUCK
        for segment in window.of(Movability.DROP):
            obj = self.objects[segment.oid]
            self._evict(obj) if obj.secondary else self._unload(obj)
        self._start_spill([s.oid for s in window.of(Movability.SPILL)])
        return Room.FITS if self.allocator.fits(size) else Room.WAIT

    def spill_over_high_water(self, disk_room: int) -> None:
        """Start dropping and spilling least recently used primaries if the
        memory in use is above the mark.  What is being written out, and copies
        that are also on disk (restored, or read ahead), do not count: they
        leave memory without a write whenever room is needed, so the mark's
        headroom for creates is there already.  (Counting them, a reader that
        kept what it restored made each restore write out an object that was
        only in memory, to be read back in turn.)"""
        excess = (self.used - self.bytes_spilling() - self.cached
                  - int(self.high_water * self.capacity))
        seen, seen_room = self._high_water_memo
        if excess <= 0 or (seen == self.changes and disk_room <= seen_room):
            return  # nothing moved since the last look
        candidates = [Candidate(o.oid, o.size, o.last_used, o.disk is not None, o.cold)
                      for o in self.objects.values()
                      if o.state is S.SEALED and not o.pinned and not o.secondary
                      and not o.backing]
        room = 0 if self.disk_full else disk_room
        batch: Batch = choose_batch(candidates, excess, self.min_spill_bytes, room,
                                    spilling=bool(self.spills))
        for oid in batch.drop:
            self._unload(self.objects[oid])
        self._start_spill(batch.spill)
        self._high_water_memo = (self.changes, disk_room)

    # ---- restoring ------------------------------------------------------------------------
    def start_restore(self, oid: bytes) -> bool:
        """Allocate a block for the SPILLED ``oid`` and start reading it back;
        False if it is not spilled.  Raises OutOfMemory (make room first).

        Read-ahead (:mod:`.readahead`): a reader that goes through the spill
        order (this object follows, across files, the one it used last) gets
        the objects after it restored too, up to its window, which grows with
        every step in order.  Later steps (pins of what was read ahead) top the
        window up, so the disk reads while the reader works.  A reader that
        jumps (a shuffle's reduce reads one partition of each map) gets none: it
        would bring back what others need later, only for it to be dropped
        again.  Read-ahead only takes free blocks, and leaves half of the
        headroom above the high-water mark free for creates; what it reads are
        copies also on disk, dropped for free when room is needed."""
        obj = self.objects.get(oid)
        if obj is None or obj.state is not S.SPILLED:
            return False
        assert obj.disk is not None
        self._give_block(obj)  # may raise OutOfMemory
        self._to(obj, Event.RESTORE)
        obj.io = True
        self._emit_restores([obj, *self._reader_used(obj)])
        return True

    def _reader_used(self, obj: StoredObject) -> list[StoredObject]:
        """A reader pinned ``obj`` (which has a disk copy) or asked for its
        restore: if that is a step in spill order, read ahead.  Returns the
        objects whose restore it started (their actions are the caller's)."""
        assert obj.disk is not None
        stream = self.streams.use(self.spill_order, obj.disk.seq, align(max(obj.size, 1)),
                                  self._clock)
        if stream is None or stream.window <= 0:
            return []
        return self._top_up(stream)

    def _top_up(self, stream: Stream) -> list[StoredObject]:
        seen: list[tuple[int, StoredObject]] = []

        def following():
            for seq, oid in self.spill_order.after(stream.frontier):
                obj = self.objects.get(oid)
                if obj is None or obj.disk is None or obj.disk.seq != seq:
                    continue  # (never: the order holds live disk copies only)
                seen.append((seq, obj))
                yield Following(oid, align(max(obj.size, 1)), obj.state is S.SPILLED)

        reserve = int((1.0 - self.high_water) * self.capacity) // 2
        room = self.capacity - self.used - reserve
        wanted = min(stream.window - stream.ahead, self.capacity - reserve)
        room += self._recycle_passed(stream, wanted - room)
        plan = choose_readahead(following(), stream.ahead, stream.window, room)
        chosen = set(plan.restore)
        out: list[StoredObject] = []
        for seq, obj in seen[:plan.covered]:
            if obj.oid in chosen:
                try:
                    self._give_block(obj)
                except OutOfMemory:  # room enough, but no block that large
                    break
                self._to(obj, Event.RESTORE)
                obj.io = obj.unused_ahead = True
                out.append(obj)
                self.stats["readahead_bytes"] += obj.size
                self.stats["readahead_objects"] += 1
            stream.ahead += align(max(obj.size, 1))
            stream.frontier = seq
        return out

    def _recycle_passed(self, stream: Stream, short: int) -> int:
        """Drop the memory copies of objects ``stream`` passed (also on disk,
        unpinned), oldest first, until ``short`` bytes are free; returns the bytes."""
        freed = 0
        kept = []  # pinned now: perhaps later
        while freed < short and stream.passed:
            seq = stream.passed.popleft()
            obj = self.objects.get(self.spill_order.oid.get(seq, b""))
            if obj is None or obj.disk is None or obj.offset < 0 or obj.unused_ahead:
                continue
            if obj.state is S.SEALED and not obj.pinned and not obj.io:
                freed += align(max(obj.size, 1))
                self._unload(obj)
            else:
                kept.append(seq)
        stream.passed.extendleft(reversed(kept))
        return freed

    def _emit_restores(self, objs: list[StoredObject]) -> None:
        """One RESTORE action per run of objects side by side in one file
        (each run one read of at most RUN_BYTES, or one object)."""
        run: list[StoredObject] = []
        run_bytes = 0
        for obj in objs:
            assert obj.disk is not None
            if run:
                last = run[-1].disk
                assert last is not None
                if obj.disk.file is not last.file or \
                        obj.disk.offset != last.offset + align(run[-1].size) or \
                        run_bytes + align(obj.size) > RUN_BYTES:
                    self._restore_action(run)
                    run, run_bytes = [], 0
            run.append(obj)
            run_bytes += align(obj.size)
        if run:
            self._restore_action(run)

    def _restore_action(self, run: list[StoredObject]) -> None:
        first = run[0].disk
        assert first is not None
        self.stats["restore_reads"] += 1
        self._actions.append(Action(
            ActionKind.RESTORE, run[0].oid, path=first.file.path, file_offset=first.offset,
            items=tuple(SpillItem(o.oid, o.offset, o.size) for o in run)))

    def restore_done(self, oid: bytes, ok: bool) -> None:
        self._changed()
        obj = next((o for o in [self.objects.get(oid), *self.freed.get(oid, ())]
                    if o is not None and o.io and o.offset >= 0
                    and o.state in (S.RESTORING, S.FREED)), None)
        if obj is None:
            return
        obj.io = False
        if obj.state is S.FREED:
            self._maybe_release(obj)
            return
        if ok:
            self._to(obj, Event.RESTORED)
            obj.last_used = self._clock  # (no tick: only readers' events move the clock)
            self.stats["restored_bytes"] += obj.size
            self.stats["restored_objects"] += 1
            self._actions.append(Action(ActionKind.AVAILABLE, oid))
        else:
            self.stats["restore_failures"] += 1
            self.free(oid)
