"""Getting a shared-memory object back when the nodes holding it are gone.

A reader (``get``, or a worker reading a task's argument) finds no reachable
copy: its pin or pull answered None.  It asks the object's **owner** (itself,
or RECOVER_OBJECT over RPC), which decides::

    reader                                   owner
      | pin / pull -> None                     |
      | RECOVER_OBJECT(oid) -----------------> | forget copies on nodes the control
      |                                        | store no longer lists as alive
      |                                        | a copy left: answer its locations
      |                                        | none: lineage kept?  re-run the task
      |                                        |   that returned it (its lost args are
      |                                        |   recovered the same way, when the new
      |                                        |   run reads them) and answer the new
      |                                        |   value once it is back
      |                                        | else: ObjectLostError saying why
      | <------------------------ value wire --|
      | pin / pull again                       |

The reader repeats this until it has the object, an error, or the recovery
deadline passes: a pull can fail before the control store has declared the
node dead (up to its failure-detection timeout), and then the owner still sees
a live copy and answers it unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from shoal import exceptions
from shoal.core import ids
from shoal.core.lineage import Lineage
from shoal.core.value_table import StoredValue
from shoal.core.value_wire import VALUE_UNKNOWN, error_value, value_from_wire, value_to_wire
from shoal.rpc.messages import Method

if TYPE_CHECKING:
    from shoal.core.core_worker import CoreWorker
    from shoal.core.links import Links
    from shoal.core.object_locations import ObjectLocations
    from shoal.core.reference_table import ReferenceTable
    from shoal.core.value_table import ValueTable

log = logging.getLogger("shoal.core")

RECOVERY_TIMEOUT_S = 60.0  # a reader gives up on a lost object after this long
RETRY_PAUSE_S = (0.05, 1.0)  # first and longest pause between attempts
WARN_EVERY_S = 10.0  # rebuilds are logged as a warning at most this often


class ObjectRecovery:
    def __init__(self, worker: CoreWorker, links: Links, values: ValueTable,
                 references: ReferenceTable, locations: ObjectLocations) -> None:
        self.worker = worker  # its address, calls onto the loop, resolve, its task manager
        self.links = links  # the shared-memory store, the control store
        self.values = values  # owned values: lost ones are replaced or rebuilt
        self.references = references  # which objects we own, and which were freed
        self.locations = locations  # pins in the local store, pulls from other nodes
        self.lineage = Lineage()
        self._last_warning = -WARN_EVERY_S
        worker.router.add(Method.RECOVER_OBJECT, self.handle_recover_object)

    # ---- reader (user thread) ------------------------------------------------------------
    def pin_with_recovery(self, refs: list, values: dict[bytes, StoredValue],
                          deadline: float | None, in_place: bool = False) -> dict[bytes, Any]:
        """Views of the shared-memory values of ``refs`` in our store; ``values`` is
        updated in place for objects that had to be recovered (possibly to an error
        value, which the caller then raises).  ``in_place``: spilled objects are
        mapped from their spill files, not restored."""
        views: dict[bytes, Any] = {}
        worker = self.worker
        me, store = worker.address, self.links.shm
        to_pin = False
        for ref in refs:
            value = values[ref.object_id]
            if value.inline is None:  # in shared memory
                # an object we own and still map: fresh views, no pin, no round trip
                view = store.cached_view(ref.object_id, value) if ref.owner_address == me else None
                if view is None:
                    to_pin = True
                else:
                    views[ref.object_id] = view
        if not to_pin:
            return views  # all inline (the common case of small values) or mapped
        # Unanswered pulls of copies the owner still believes in end after this long;
        # a rebuild in progress is waited for (up to the caller's deadline).
        stale_copies_until = time.monotonic() + RECOVERY_TIMEOUT_S
        pause = RETRY_PAUSE_S[0]
        while True:
            wanted = list({r.object_id: r for r in refs
                           if values[r.object_id].in_plasma and r.object_id not in views}.values())
            if not wanted:
                return views
            locations = self.locations.pin(wanted, values, _remaining(deadline), in_place)
            lost = []
            for ref, loc in zip(wanted, locations, strict=False):
                if loc is None:
                    lost.append(ref)
                else:
                    # only an owner may reuse the pin: it alone sees the object freed
                    reuse = values[ref.object_id] if ref.owner_address == me else None
                    views[ref.object_id] = self.links.shm.view(ref.object_id, *loc, value=reuse,
                                                     sparse=in_place)
            if not lost:
                return views
            if deadline is not None and time.monotonic() >= deadline:
                raise _timed_out(lost)
            if time.monotonic() >= stale_copies_until:
                raise exceptions.ObjectLostError(
                    lost[0].object_id.hex(),
                    f"object {lost[0].object_id.hex()} is in no reachable object store and could "
                    f"not be recovered within {RECOVERY_TIMEOUT_S:.0f} s")
            before = {r.object_id: values[r.object_id] for r in lost}
            worker.set_blocked(True)  # a rebuild may need the CPU this task holds
            try:
                values.update(worker.call(self.recover_many,
                                          [(r.object_id, r.owner_address) for r in lost],
                                          timeout=_remaining(deadline)))
            except TimeoutError:
                raise _timed_out(lost) from None
            finally:
                worker.set_blocked(False)
            if all(_same_copies(before[r.object_id], values[r.object_id]) for r in lost):
                # the owner still sees a live copy: the node may be dying
                left = _remaining(deadline)
                time.sleep(pause if left is None else min(pause, left))
                pause = min(pause * 2, RETRY_PAUSE_S[1])

    async def recover_many(self, items: list[tuple[bytes, str]]) -> dict[bytes, StoredValue]:
        """Loop side: the value of each ``(object id, owner)``, with live copies only;
        objects whose every copy is gone are rebuilt by their owners first."""
        owned = any(owner == self.worker.address for _, owner in items)
        alive = await self._alive_nodes() if owned else None  # asked once for all of them
        values = await asyncio.gather(*[self._recover_any(oid, owner, alive)
                                        for oid, owner in items])
        return {oid: value for (oid, _), value in zip(items, values, strict=False)}

    async def _recover_any(self, oid: bytes, owner: str, alive: set | None) -> StoredValue:
        worker = self.worker
        if owner == worker.address:
            return await self.recover_owned(oid, alive)
        try:
            conn = await worker.peer(owner)
            wire = await conn.call(Method.RECOVER_OBJECT, oid)
        except Exception as exc:
            return error_value(exceptions.OwnerDiedError(
                oid.hex(), f"object {oid.hex()} was lost and its owner ({owner}), which "
                f"alone could rebuild it, died or is unreachable ({type(exc).__name__}: "
                f"{exc})"))
        if wire[0] == VALUE_UNKNOWN:
            return error_value(exceptions.ObjectFreedError(
                oid.hex(), f"object {oid.hex()} was already freed by its owner {owner}"))
        value = value_from_wire(wire)
        if oid in self.references.refs:
            self.values.put(oid, value)
        return value

    # ---- owner (loop thread) ---------------------------------------------------------------
    async def handle_recover_object(self, conn, oid: bytes) -> list:
        if not self.references.is_owned(oid):
            return [VALUE_UNKNOWN]
        return value_to_wire(await self.recover_owned(oid))

    async def recover_owned(self, oid: bytes, alive: set | None = None) -> StoredValue:
        """The value of an object we own, rebuilt from lineage if every copy is gone
        (``alive``: the live node ids, if the caller just asked)."""
        worker = self.worker
        value = self.values.get(oid)
        if value is None:  # being computed (or rebuilt) now, or freed: rebuild it
            self.rebuild_if_freed([oid])
            return await worker.resolve(oid, worker.address)
        if not value.in_plasma:
            return value
        if alive is None:
            alive = await self._alive_nodes()
        live = {n for n in value.locations if n in alive}
        if live:
            if live != value.locations:
                value.locations = live
                if value.node_id not in live:
                    value.node_id = next(iter(live))
            return value
        if not self._start_rebuild(oid):
            lost = self._lost_error(oid, value)
            self.values.put(oid, lost)
            return lost
        if self.values.get(oid) is value:
            self.values.delete(oid)  # readers wait for the rebuilt value
        return await worker.resolve(oid, worker.address)

    def rebuild_freed(self, oid: bytes) -> None:
        """An argument we own, whose value was freed (lineage kept only its row), is
        needed by a task being rebuilt: make it again, or fail its readers."""
        if not self._start_rebuild(oid):
            self.references.value_stored([oid])
            self.values.put(oid, self._lost_error(oid, StoredValue(), freed=True))

    def rebuild_if_freed(self, oids: list[bytes]) -> None:
        """Someone waits for the values of ``oids``: those that are ours and that
        lineage freed (a reader reached their rows through a kept list of refs)
        are made again."""
        for oid in oids:
            if self.references.value_was_freed(oid) and self.values.get(oid) is None:
                self.rebuild_freed(oid)

    def _start_rebuild(self, oid: bytes) -> bool:
        """True if ``oid`` is being rebuilt (now, or already)."""
        entry = self.lineage.entry_for(oid)
        if entry is None:  # a generator's item, while the generator still runs?
            worker = self.worker
            return worker.tasks.rebuild_while_running(oid)
        if entry.rebuilding:
            return True
        if entry.task.retries_left == 0 or entry.cancelled:
            return False
        self.lineage.start_rebuild(oid)
        self._rebuild(entry)
        return True

    def _rebuild(self, entry) -> None:
        """Re-run the task of ``entry``.  Its other returns keep their values until
        the new ones arrive; copies the new run did not reuse are freed then
        (TaskManager._store_returns)."""
        worker = self.worker
        task = entry.task
        now = time.monotonic()
        level = logging.WARNING if now - self._last_warning > WARN_EVERY_S else logging.DEBUG
        if level == logging.WARNING:
            self._last_warning = now
        log.log(level, "rebuilding objects of task %s (%s) from lineage: every copy was "
                "lost or freed (%d task(s) re-run so far)", task.spec.name,
                task.spec.task_id.hex(), self.lineage.rebuilds)
        worker.tasks.resubmit(task)

    def rebuild_started(self, oid: bytes) -> bool:
        """Start rebuilding ``oid`` from lineage (True), or say it cannot be."""
        return self._start_rebuild(oid)

    def lost_error(self, oid: bytes) -> StoredValue:
        """The error readers of ``oid`` get when it is lost for good."""
        return self._lost_error(oid, StoredValue())

    async def alive_nodes(self) -> set[str]:
        return await self._alive_nodes()

    async def _alive_nodes(self) -> set[str]:
        nodes: Any = await self.links.control.call(Method.GET_NODES)
        return {n["node_id"] for n in nodes if n["alive"]}

    def _lost_error(self, oid: bytes, value: StoredValue, freed: bool = False) -> StoredValue:
        task_id = ids.task_of(oid)
        where = ", ".join(sorted(value.locations)) or value.node_id
        what = (f"object {oid.hex()} is needed to rebuild another object, but it was freed "
                "when it went out of scope" if freed else
                f"object {oid.hex()} was lost: every node holding it ({where}) died")
        if self.lineage.was_cancelled(task_id):
            return error_value(exceptions.ObjectReconstructionFailedError(
                oid.hex(), f"{what}, and the task that made it was cancelled, so it is not "
                "re-run to rebuild it"))
        if ids.index_of(oid) == 0:
            why = ("it was created by put (or passed by value as a large argument), and "
                   "put objects cannot be rebuilt from lineage")
        elif self.lineage.was_evicted(task_id):
            why = ("the lineage of the task that made it was dropped to stay within "
                   f"max_lineage_bytes ({self.lineage.budget} bytes; "
                   "SHOAL_MAX_LINEAGE_BYTES)")
        else:
            why = ("the task that made it cannot be re-run (an actor task, a task with "
                   "max_retries=0, or its retries are used up)")
        return error_value(exceptions.ObjectLostError(oid.hex(), f"{what}, and {why}"))


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _timed_out(lost: list) -> exceptions.GetTimeoutError:
    """The caller's timeout ends recovery like any other wait."""
    return exceptions.GetTimeoutError(
        f"get timed out while {len(lost)} object(s) (first {lost[0].object_id.hex()}) were being "
        "recovered: every copy was lost and the owner is rebuilding them")


def _same_copies(a: StoredValue, b: StoredValue) -> bool:
    return a.in_plasma and b.in_plasma and a.locations == b.locations
