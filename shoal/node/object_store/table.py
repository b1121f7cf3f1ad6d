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
    Movability,
    Segment,
    choose_batch,
    choose_window,
)

__all__ = ["Action", "ActionKind", "CopyKind", "DiskCopy", "Event", "ObjectState",
           "ObjectStoreFullError", "ObjectTable", "OutOfMemory", "Room", "SpillFile",
           "StoredObject", "TRANSITIONS"]


# A restore continues a reader's sequential pass through a file if the reader
# used the object before it at most this many table events (seal, pin, release)
# ago.  A shuffle's reduce pins one partition of every other file in between.
SEQUENTIAL_TICKS = 8


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
    live: set[bytes] = field(default_factory=set)  # objects whose disk copy is here
    readers: int = 0  # chunk reads from this file in flight
    order: list[bytes] = field(default_factory=list)  # every object written, by offset
    position: dict[bytes, int] = field(default_factory=dict)  # object -> index in order
    cursor: int = -1  # index of the object of this file a reader used last ...
    cursor_tick: int = -(1 << 62)  # ... and the table's clock then


@dataclass(eq=False)
class DiskCopy:
    file: SpillFile
    offset: int


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
    prefetch: bool = False  # read ahead: pinning it reads the next window ahead

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
        self.readahead = readahead  # bytes read ahead with a restore (see start_restore)
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
               kind: CopyKind = CopyKind.PRIMARY) -> int:
        """Allocate ``oid`` in the arena; returns its offset.  Raises
        FileExistsError (it is here), ObjectStoreFullError (larger than the
        store: see :meth:`create_backed`) or OutOfMemory (no block now)."""
        if oid in self.objects:
            raise FileExistsError(oid.hex())
        if size > self.capacity:
            raise ObjectStoreFullError(
                f"object of {size} bytes is larger than the object store "
                f"({self.capacity} bytes); start shoal with a larger object_store_memory")
        offset = self.allocator.allocate(size)  # may raise OutOfMemory
        obj = StoredObject(oid, size, creator, owner, kind, offset=offset)
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
        if obj.disk is not None:
            self._reader_at(obj)
        if obj.prefetch:
            self._read_next_window(obj)
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
        self._release_block(obj)

    def _maybe_release(self, obj: StoredObject) -> None:
        """A FREED object returns its memory and disk copy once unpinned and idle."""
        if obj.pinned or obj.io:
            return
        self._forget_freed(obj)
        self._release_block(obj)
        if obj.backing:
            self._actions.append(Action(ActionKind.DELETE_FILE, obj.oid, path=obj.backing))
            obj.backing = ""
        self._drop_disk_copy(obj)

    def _forget_freed(self, obj: StoredObject) -> None:
        objs = self.freed.get(obj.oid, [])
        if obj in objs:
            objs.remove(obj)
            if not objs:
                del self.freed[obj.oid]

    def _release_block(self, obj: StoredObject) -> None:
        if obj.offset >= 0:
            self.allocator.free(obj.offset)
            del self.at[obj.offset]
            obj.offset = -1
            self._actions.append(Action(ActionKind.SPACE))
            self._changed()

    def _drop_disk_copy(self, obj: StoredObject) -> None:
        if obj.disk is not None:
            spill_file = obj.disk.file
            spill_file.live.discard(obj.oid)
            obj.disk = None
            self._maybe_delete_file(spill_file)

    def _maybe_delete_file(self, spill_file: SpillFile) -> None:
        if not spill_file.live and spill_file.readers <= 0 and spill_file.path in self.files:
            del self.files[spill_file.path]
            self._actions.append(Action(ActionKind.DELETE_FILE, path=spill_file.path))
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

    def spill_done(self, batch_id: int, path: str, offsets: list[int]) -> None:
        """The batch is in ``path``, object i at ``offsets[i]``."""
        self._changed()
        spill_file = SpillFile(path)
        self.files[path] = spill_file
        for obj, file_offset in zip(self.spills.pop(batch_id), offsets, strict=True):
            obj.io = False
            if obj.state is S.FREED:
                self._maybe_release(obj)
                continue
            obj.disk = DiskCopy(spill_file, file_offset)
            spill_file.live.add(obj.oid)
            spill_file.position[obj.oid] = len(spill_file.order)
            spill_file.order.append(obj.oid)
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
            segments.append(Segment(offset, block, kind, oid))
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
        memory in use (not counting what is being written out) is above the mark."""
        excess = self.used - self.bytes_spilling() - int(self.high_water * self.capacity)
        seen, seen_room = self._high_water_memo
        if excess <= 0 or (seen == self.changes and disk_room <= seen_room):
            return  # nothing moved since the last look
        candidates = [Candidate(o.oid, o.size, o.last_used, o.disk is not None)
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
    def start_restore(self, oid: bytes, readahead: int | None = None) -> bool:
        """Allocate a block for the SPILLED ``oid`` and start reading it back;
        False if it is not spilled.  Raises OutOfMemory (make room first).

        Read-ahead: when readers go through a file in order (this object is
        the one after the last one of its file a reader used, and little else
        happened since), up to ``readahead`` bytes (default: the table's) of the
        objects that follow it come back in the same read: one large read beats
        many small ones.  Pinning the first object read ahead reads the next
        window, so a reader going through the file rarely waits.  A reader
        that jumps between files (a shuffle's reduce reads one partition of
        each map) gets no read-ahead: it would bring back what others need
        later, only for it to be dropped again.  Read-ahead only takes free
        blocks (it never makes room); what it reads are restored copies (also
        on disk), dropped for free when room is needed."""
        obj = self.objects.get(oid)
        if obj is None or obj.state is not S.SPILLED:
            return False
        assert obj.disk is not None
        if readahead is None:
            readahead = self.readahead if self._sequential(obj) else 0
        self._reader_at(obj)
        obj.offset = self.allocator.allocate(obj.size)
        group = [obj]
        self.at[obj.offset] = obj
        group += self._read_ahead(obj, readahead)
        if len(group) > 1:
            group[1].prefetch = True  # a reader got this far: read the next window
        for member in group:
            self._to(member, Event.RESTORE)
            member.io = True
        items = tuple(SpillItem(o.oid, o.offset, o.size) for o in group)
        self._actions.append(Action(ActionKind.RESTORE, oid, path=obj.disk.file.path,
                                    file_offset=obj.disk.offset, items=items))
        return True

    def _reader_at(self, obj: StoredObject) -> None:
        assert obj.disk is not None
        spill_file = obj.disk.file
        spill_file.cursor = spill_file.position[obj.oid]
        spill_file.cursor_tick = self._clock

    def _sequential(self, obj: StoredObject) -> bool:
        """Is a reader going through ``obj``'s file in order?"""
        assert obj.disk is not None
        spill_file = obj.disk.file
        return (spill_file.position[obj.oid] == spill_file.cursor + 1
                and self._clock - spill_file.cursor_tick <= SEQUENTIAL_TICKS)

    def _read_ahead(self, first: StoredObject, budget: int) -> list[StoredObject]:
        """Allocated blocks for the SPILLED objects right after ``first`` in its file."""
        disk = first.disk
        assert disk is not None
        order = disk.file.order
        index = disk.file.position[first.oid] if budget > 0 else len(order)
        out: list[StoredObject] = []
        end = disk.offset + align(first.size)
        for oid in order[index + 1:]:
            obj = self.objects.get(oid)
            if obj is None or obj.state is not S.SPILLED or obj.disk is None \
                    or obj.disk.file is not disk.file or obj.disk.offset != end:
                break
            size = align(obj.size)
            if size > budget:
                break
            try:
                obj.offset = self.allocator.allocate(obj.size)
            except OutOfMemory:
                break
            self.at[obj.offset] = obj
            out.append(obj)
            budget -= size
            end += size
        return out

    def _read_next_window(self, obj: StoredObject) -> None:
        """A reader pinned an object that was read ahead: restore the next
        spilled object of the file (with its read-ahead) before it is asked for."""
        obj.prefetch = False
        if obj.disk is None:
            return
        order = obj.disk.file.order
        for oid in order[obj.disk.file.position[obj.oid] + 1:]:
            following = self.objects.get(oid)
            if following is not None and following.state is S.SPILLED:
                try:
                    self.start_restore(oid, self.readahead)
                except OutOfMemory:
                    pass  # no free block: the reader restores it when it gets there
                return

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
            self._touch(obj)
            self.stats["restored_bytes"] += obj.size
            self.stats["restored_objects"] += 1
            self._actions.append(Action(ActionKind.AVAILABLE, oid))
        else:
            self.stats["restore_failures"] += 1
            self.free(oid)
