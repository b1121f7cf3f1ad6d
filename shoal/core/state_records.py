"""What one core worker reports to the state API (``shoal memory``, ``list_objects``,
``list_tasks``): rows built from its reference table, memory store and tasks.

Theory of operation
-------------------
Nothing central knows which objects are alive or why: every process keeps its
own reference table (:mod:`reference_table`).  A state query therefore asks
every core worker for a snapshot (WORKER_STATE, fanned out by the node agents,
see :mod:`shoal.node.state_service`), and the caller merges the rows
(:mod:`shoal.util.state_build`).  This module builds one process's rows; it is
pure apart from :class:`StateReporter`, the thin handler that reads the live
tables on the loop thread.

Object rows: one per entry of this process's reference table, so an object
held by three processes has three rows, each saying why *that* process keeps
it alive.  The reason (``reference_type``, Ray's names) is the first clause of
``Reference.in_scope`` that holds, in this order::

    submitted > 0      USED_BY_PENDING_TASK  a task we submitted uses it
    local > 0          LOCAL_REFERENCE       an ObjectRef in this process (not
                                             counting those a stored small value
                                             holds: those are CAPTURED_IN_OBJECT)
    contained_in > 0   CAPTURED_IN_OBJECT    inside another live object here
    borrowers          BORROWED              (owner) only other processes hold it
                                             (Ray has no name for this case)
    holds / in flight  UNKNOWN_STATUS        a borrow registration in flight

Objects a process has mapped (a zero-copy view from ``get`` or a task argument)
without holding a ref are reported by its node agent, which knows the pins:
``PINNED_IN_MEMORY``.

Task rows: the tasks this process owns that are still pending, with the state
Ray would show, plus the last ``SHOAL_TASK_HISTORY`` (default 1000) finished
ones from a bounded :class:`TaskHistory` (older ones are counted, not kept).
An executing worker reports the ids it is running, so the caller can turn the
owner's SUBMITTED_TO_WORKER into RUNNING.
"""

from __future__ import annotations

import collections
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from shoal import exceptions
from shoal.core.task_spec import TaskKind
from shoal.core.task_state import TaskState
from shoal.rpc.messages import Method

if TYPE_CHECKING:
    from shoal.core.actor_manager import ActorManager
    from shoal.core.core_worker import CoreWorker
    from shoal.core.reference_table import Reference
    from shoal.core.task_manager import PendingTask, TaskManager
    from shoal.core.value_table import StoredValue

TASK_HISTORY = int(os.environ.get("SHOAL_TASK_HISTORY", "1000"))
ERROR_MESSAGE_LIMIT = 8192  # characters of a failed task's error kept in its history

# reference types (Ray's names, plus BORROWED)
USED_BY_PENDING_TASK = "USED_BY_PENDING_TASK"
LOCAL_REFERENCE = "LOCAL_REFERENCE"
CAPTURED_IN_OBJECT = "CAPTURED_IN_OBJECT"
BORROWED = "BORROWED"
PINNED_IN_MEMORY = "PINNED_IN_MEMORY"
UNKNOWN_STATUS = "UNKNOWN_STATUS"

# task states (Ray's names; the ones shoal can tell apart)
PENDING_ARGS_AVAIL = "PENDING_ARGS_AVAIL"
PENDING_NODE_ASSIGNMENT = "PENDING_NODE_ASSIGNMENT"
PENDING_ACTOR_TASK_ORDERING = "PENDING_ACTOR_TASK_ORDERING_OR_CONCURRENCY"
SUBMITTED_TO_WORKER = "SUBMITTED_TO_WORKER"
RUNNING = "RUNNING"
FINISHED = "FINISHED"
FAILED = "FAILED"
NIL = "NIL"

TASK_TYPES = {
    TaskKind.NORMAL: "NORMAL_TASK",
    TaskKind.ACTOR_TASK: "ACTOR_TASK",
    TaskKind.ACTOR_CREATION: "ACTOR_CREATION_TASK",
}

# Ray's ErrorType names for the failures shoal raises; anything else is reported
# by its class name.  Most specific classes first (OwnerDiedError is an ObjectLostError).
ERROR_TYPES: list[tuple[type, str]] = [
    (exceptions.TaskError, "TASK_EXECUTION_EXCEPTION"),
    (exceptions.WorkerCrashedError, "WORKER_DIED"),
    (exceptions.ActorUnavailableError, "ACTOR_UNAVAILABLE"),
    (exceptions.ActorDiedError, "ACTOR_DIED"),
    (exceptions.NodeDiedError, "NODE_DIED"),
    (exceptions.TaskCancelledError, "TASK_CANCELLED"),
    (exceptions.TaskUnschedulableError, "TASK_UNSCHEDULABLE_ERROR"),
    (exceptions.ActorUnschedulableError, "ACTOR_UNSCHEDULABLE_ERROR"),
    (exceptions.OwnerDiedError, "OWNER_DIED"),
    (exceptions.ObjectFreedError, "OBJECT_FREED"),
    (exceptions.ObjectLostError, "OBJECT_LOST"),
    (exceptions.OutOfMemoryError, "OUT_OF_MEMORY"),
]
DEPENDENCY_FAILED = "DEPENDENCY_RESOLUTION_FAILED"  # an argument's task failed

# Column order of an object row on the wire (lists keep 10k rows compact).
OBJECT_COLUMNS = (
    "object_id", "object_size", "reference_type", "task_status", "owner", "storage",
    "locations", "local", "submitted", "contained_in", "borrowers",
)
INLINE = "INLINE"  # the value lives in its owner's process (and in task specs)
SHARED_MEMORY = "SHARED_MEMORY"  # copies in node stores: ``locations``
NOT_READY = "NOT_READY"  # no value yet (pending task), or a borrower that never read it


def error_type_of(exc: BaseException) -> str:
    for cls, name in ERROR_TYPES:
        if isinstance(exc, cls):
            return name
    return type(exc).__name__


def reference_type(ref: Reference, internal: int = 0) -> str:
    """Why this process keeps the object alive (see the module docstring);
    ``internal`` of its ``local`` refs are held by shoal itself (below)."""
    if ref.submitted > 0:
        return USED_BY_PENDING_TASK
    if ref.local > internal:
        return LOCAL_REFERENCE
    if ref.contained_in > 0:
        return CAPTURED_IN_OBJECT
    if ref.borrowers:
        return BORROWED
    return UNKNOWN_STATUS


def value_size(value: StoredValue | None) -> int:
    """Bytes of the serialized value, or -1 if this process does not know it."""
    if value is None:
        return -1
    if value.inline is not None:
        return value.inline.data_size()
    return value.size


def refs_held_by_values(values: Mapping[bytes, StoredValue]) -> collections.Counter:
    """ObjectRefs that only shoal itself still holds, inside stored values.

    A small ``put`` value keeps the ObjectRef instances it contains
    (``Serialized.contained``), and each live instance counts as a local ref.  When
    the user has dropped theirs, the object is alive because it is captured in that
    value, which is what the report should say.  Whether anything else still holds
    an instance is told by its CPython reference count: the stored lists, plus our
    own three (``entry``, the loop variable, ``getrefcount``'s argument)."""
    seen: dict[int, list] = {}
    for value in list(values.values()):  # list(): one C-level copy, safe from other threads
        if value.inline is not None and value.inline.contained:
            for ref in value.inline.contained:
                entry = seen.get(id(ref))
                if entry is None:
                    seen[id(ref)] = [ref, 1]
                else:
                    entry[1] += 1
    held: collections.Counter = collections.Counter()
    for ref, lists in seen.values():
        if sys.getrefcount(ref) <= lists + 3:
            held[ref.object_id] += 1
    return held


def object_rows(refs: Mapping[bytes, Reference], values: Mapping[bytes, StoredValue],
                task_state: Callable[[bytes], str | None],
                internal: Mapping[bytes, int] | None = None) -> list[list]:
    """One row (``OBJECT_COLUMNS``) per reference; ``task_state(task_id)`` is the
    state of a pending task this process owns, or None; ``internal``: see
    :func:`refs_held_by_values`."""
    internal = internal or {}
    rows = []
    for oid, ref in list(refs.items()):
        if not (ref.in_scope() or ref.registering):
            continue  # a row kept only for lineage: its value is freed, nothing is alive
        held = internal.get(oid, 0)
        value = values.get(oid)
        if value is None:
            storage, locations = NOT_READY, []
            status = (task_state(oid[:16]) or NIL) if ref.owned else NIL
        else:
            storage = INLINE if value.inline is not None else SHARED_MEMORY
            locations = sorted(value.locations) if value.inline is None else []
            status = FAILED if value.is_error else FINISHED
        rows.append([
            oid.hex(), value_size(value), reference_type(ref, held), status, ref.owner,
            storage, locations, max(0, ref.local - held), ref.submitted, ref.contained_in,
            sum(ref.borrowers.values()),
        ])
    return rows


def pending_state(task: PendingTask, in_flight: bool) -> str:
    """The Ray state of a task its owner still tracks (``in_flight``: pushed to the
    executing worker and not answered yet)."""
    if task.state is TaskState.RESOLVING:
        return PENDING_ARGS_AVAIL
    if in_flight:
        return SUBMITTED_TO_WORKER
    if task.spec.kind is TaskKind.ACTOR_TASK:
        return PENDING_ACTOR_TASK_ORDERING
    return PENDING_NODE_ASSIGNMENT


def task_row(task_id: bytes, name: str, kind: TaskKind, state: str, actor_id: str,
             job_id: str, ran_on: tuple, error_type: str, parent: bytes | None,
             end_time_ms: int | None, resources: dict | None, start_time_ms: int | None = None,
             error_message: str = "") -> dict:
    worker_id, node_id = ran_on if ran_on else ("", "")
    return {
        "task_id": task_id.hex(),
        "name": name,
        "state": state,
        "type": TASK_TYPES[kind],
        "actor_id": actor_id or None,
        "job_id": job_id,
        "node_id": node_id or None,
        "worker_id": worker_id or None,
        "error_type": error_type or None,
        "parent_task_id": parent.hex() if parent else "",
        "end_time_ms": end_time_ms,
        "start_time_ms": start_time_ms,
        "error_message": error_message or None,
        "required_resources": resources or {},
    }


def pending_rows(pending: Iterable[PendingTask],
                 in_flight: Callable[[PendingTask], bool]) -> list[dict]:
    rows = []
    for task in list(pending):
        spec = task.spec
        rows.append(task_row(spec.task_id, spec.name, spec.kind,
                             pending_state(task, in_flight(task)), spec.actor_id, spec.job_id,
                             task.ran_on, "", task.parent_task_id, None, spec.resources,
                             int(task.sent_at * 1000) if task.sent_at else None))
    return rows


class TaskHistory:
    """The last ``maxlen`` tasks this process owned that finished; older ones are
    only counted (``dropped``), so a long job never grows it.  Loop thread only."""

    def __init__(self, maxlen: int = TASK_HISTORY) -> None:
        self.rows: collections.deque = collections.deque(maxlen=max(0, maxlen))
        self.dropped = 0

    def kind_of(self, task_id: bytes) -> Any:
        """The TaskKind of a finished task still in the history, else None."""
        for row in self.rows:  # (task_id, name, kind, ...)
            if row[0] == task_id:
                return row[2]
        return None

    def finished(self, task: PendingTask, error_type: str, error_message: str = "") -> None:
        from shoal.core.actor_shutdown import OWNER_TERMINATE_NAME

        if task.spec.name == OWNER_TERMINATE_NAME:  # the owner's, not the program's
            return
        if self.rows.maxlen == 0:
            self.dropped += 1
            return
        if len(self.rows) == self.rows.maxlen:
            self.dropped += 1
        spec = task.spec
        if task.ran_at:  # the executing worker's own times
            start_ms, end_ms = int(task.ran_at[0] * 1000), int(task.ran_at[1] * 1000)
        else:  # it never answered (it died, was cancelled...): the owner's view
            start_ms = int(task.sent_at * 1000) if task.sent_at else None
            end_ms = int(time.time() * 1000)
        # Keep plain values only: the spec holds arguments (up to 100 KiB inline each).
        self.rows.append((spec.task_id, spec.name, spec.kind, spec.actor_id, spec.job_id,
                          task.ran_on, error_type, task.parent_task_id, end_ms,
                          spec.resources, start_ms, error_message))

    def to_rows(self) -> list[dict]:
        out = []
        for (task_id, name, kind, actor_id, job_id, ran_on, error_type, parent, end_ms,
             resources, start_ms, message) in reversed(self.rows):  # newest first
            state = FAILED if error_type else FINISHED
            out.append(task_row(task_id, name, kind, state, actor_id, job_id, ran_on,
                                error_type, parent, end_ms, resources, start_ms, message))
        return out


class StateReporter:
    """Answers WORKER_STATE with this process's snapshot (runs on the loop thread)."""

    def __init__(self, worker: CoreWorker, tasks: TaskManager, actors: ActorManager) -> None:
        self.worker = worker  # who this process is, its objects, its executor
        self.tasks = tasks  # the tasks this process owns
        self.actors = actors  # the actor calls in flight
        worker.router.add(Method.WORKER_STATE, self.handle_worker_state)

    def handle_worker_state(self, conn, body) -> dict:
        kinds = set(body or ())
        worker = self.worker
        worker.drain_queued()  # reference-count changes queued by user threads
        snapshot: dict[str, Any] = {
            "worker_id": worker.worker_id,
            "pid": os.getpid(),
            "type": "DRIVER" if worker.mode.value == "driver" else "WORKER",
            "node_id": worker.node_id,
            "ip": worker.address.rsplit(":", 1)[0],
            "address": worker.address,
            "job_id": worker.job_id,
            "actor_id": getattr(worker.executor, "actor_id", None),
        }
        tasks = self.tasks
        if "objects" in kinds:
            values = worker.value_table.values
            snapshot["objects"] = object_rows(worker.references.refs, values,
                                              self._task_state, refs_held_by_values(values))
        if "tasks" in kinds:
            snapshot["tasks"] = (pending_rows(tasks.pending.values(), self._in_flight)
                                 + tasks.history.to_rows())
            snapshot["history_dropped"] = tasks.history.dropped
            snapshot["running"] = self._running()
            snapshot["running_since"] = self._running_since()
        return snapshot

    def _task_state(self, task_id: bytes) -> str | None:
        task = self.tasks.pending.get(task_id)
        return None if task is None else pending_state(task, self._in_flight(task))

    def _in_flight(self, task: PendingTask) -> bool:
        if task.spec.kind is TaskKind.ACTOR_TASK:
            st = self.actors.actors.get(task.spec.actor_id)
            return st is not None and task.spec.task_id in st.in_flight
        return task.running_on is not None

    def _running_since(self) -> dict[str, int]:
        """``{task id: ms}``: when this worker started each task it runs (its clock)."""
        executor = self.worker.executor
        if executor is None:
            return {}
        return {tid.hex(): int(t * 1000) for tid, t in executor.started_at.copy().items()}

    def _running(self) -> list[str]:
        """Ids of the tasks this process is executing now (a worker)."""
        executor = self.worker.executor
        if executor is None:
            return []
        return [tid.hex() for tid in executor.running.copy()]  # copy(): atomic
