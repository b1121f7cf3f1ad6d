"""Lineage: what an owner keeps so that it can rebuild objects it owns.

An object in shared memory lives on one node (plus copies pulled elsewhere).
When every node holding it dies, the owner can make it again by running the
task that returned it, so the owner keeps that task's spec after the task
finishes, for as long as any of its returns is referenced.  The task's
arguments must stay rebuildable too: the entry counts them in their rows'
``lineage`` clause (reference_table.py), which keeps the *row* (and so the
argument's own lineage) but not the *value*: an argument nobody references
is freed as usual, and made again only if a rebuild needs it.  Lost
arguments are rebuilt the same way, recursively: a freed one when the task
that reads it is resubmitted, a lost one when the re-executed task asks its
owner for it.

Entries are kept only for normal tasks that may be retried (``max_retries``
is not 0) and returned at least one shared-memory object: values kept inline
live in the owner's own memory and die only with it.  The bytes of specs kept
are bounded by ``max_lineage_bytes``; past it the oldest entries are dropped
and their objects can no longer be rebuilt (a lost one then gives
``ObjectLostError`` saying so).

This module is pure bookkeeping; the task manager and the object recovery
code (:mod:`shoal.core.recovery`) act on what it returns.  Loop thread only.
"""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass, field
from typing import Any

from shoal.core.task_spec import ARG_INLINE, ARG_VALUE

DEFAULT_MAX_LINEAGE_BYTES = 256 << 20
ENTRY_OVERHEAD = 256  # bytes charged per entry on top of its inline arguments
EVICTED_REMEMBERED = 10_000  # task ids whose lineage was evicted, for error messages


def max_lineage_bytes() -> int:
    return int(os.environ.get("SHOAL_MAX_LINEAGE_BYTES", DEFAULT_MAX_LINEAGE_BYTES))


@dataclass
class LineageEntry:
    task: Any  # the PendingTask as it last ran (spec, return ids, held args, retries)
    size: int
    live_returns: set = field(default_factory=set)  # return ids still in scope
    rebuilding: bool = False
    cancelled: bool = False  # cancel() came after it finished: never re-run (Ray's rule)


class Lineage:
    def __init__(self, budget: int | None = None) -> None:
        self.budget = max_lineage_bytes() if budget is None else budget
        self.entries: collections.OrderedDict[bytes, LineageEntry] = collections.OrderedDict()
        self.by_object: dict[bytes, bytes] = {}  # return id -> task id
        self.total = 0
        self.evicted: collections.OrderedDict[bytes, None] = collections.OrderedDict()
        self.rebuilds = 0  # tasks re-executed to rebuild lost objects

    def __len__(self) -> int:
        return len(self.entries)

    def entry_for(self, oid: bytes) -> LineageEntry | None:
        task_id = self.by_object.get(oid)
        return self.entries.get(task_id) if task_id is not None else None

    def was_evicted(self, task_id: bytes) -> bool:
        return task_id in self.evicted

    def task_cancelled(self, task_id: bytes) -> None:
        """``cancel`` of a task that already finished: its objects, once lost, fail
        with ObjectReconstructionFailedError instead of being made again."""
        entry = self.entries.get(task_id)
        if entry is not None:
            entry.cancelled = True

    def was_cancelled(self, task_id: bytes) -> bool:
        entry = self.entries.get(task_id)
        return entry is not None and entry.cancelled

    def task_finished(self, task: Any, ok: bool, live_plasma_returns: list[bytes]
                      ) -> tuple[bool, list[list[bytes]]]:
        """A task we own finished.  Returns (added, released): ``added`` True means a
        new entry now lists the task's arguments (count them: ``inc_lineage``);
        ``released`` are the argument lists of entries dropped (``dec_lineage``)."""
        task_id = task.spec.task_id
        entry = self.entries.get(task_id)
        if entry is not None:  # a rebuild finished
            entry.rebuilding = False
            entry.task = task
            if ok and entry.live_returns:
                return False, []
            self._drop(task_id)  # failed, or nobody needs its returns any more
            return False, [task.held]
        if not ok or not live_plasma_returns or task.retries_left == 0:
            return False, []
        size = ENTRY_OVERHEAD + _inline_arg_bytes(task.spec.args)
        self.entries[task_id] = LineageEntry(task, size, set(live_plasma_returns))
        for oid in live_plasma_returns:
            self.by_object[oid] = task_id
        self.total += size
        return True, self._evict()

    def object_forgotten(self, oid: bytes) -> list[bytes] | None:
        """The row of an object we own is gone (FREE); returns the arguments to
        release (``dec_lineage``) if that was the last return of an entry."""
        task_id = self.by_object.pop(oid, None)
        if task_id is None:
            return None
        entry = self.entries.get(task_id)
        if entry is None:
            return None
        entry.live_returns.discard(oid)
        if entry.live_returns or entry.rebuilding:
            return None
        self._drop(task_id)
        return entry.task.held

    def start_rebuild(self, oid: bytes) -> LineageEntry | None:
        """The entry to re-execute for lost ``oid``, marked rebuilding; None if one is
        already rebuilding it (or there is none)."""
        entry = self.entry_for(oid)
        if entry is None or entry.rebuilding:
            return None
        entry.rebuilding = True
        self.rebuilds += 1
        self.entries.move_to_end(entry.task.spec.task_id)  # recently needed: evict last
        return entry

    def _evict(self) -> list[list[bytes]]:
        released = []
        while self.total > self.budget and self.entries:
            task_id, entry = next(iter(self.entries.items()))
            if entry.rebuilding:
                self.entries.move_to_end(task_id)
                if all(e.rebuilding for e in self.entries.values()):
                    break
                continue
            self._drop(task_id)
            self.evicted[task_id] = None
            if len(self.evicted) > EVICTED_REMEMBERED:
                self.evicted.popitem(last=False)
            released.append(entry.task.held)
        return released

    def _drop(self, task_id: bytes) -> None:
        entry = self.entries.pop(task_id)
        self.total -= entry.size
        for oid in entry.live_returns:
            if self.by_object.get(oid) == task_id:
                del self.by_object[oid]


def _inline_arg_bytes(args: list) -> int:
    size = 0
    for arg in args:
        if arg[0] == ARG_VALUE:
            inline = arg[ARG_INLINE]
            size += len(inline[1]) + sum(len(b) for b in inline[2])
        else:
            size += 64
    return size
