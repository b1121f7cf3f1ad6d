"""Ray's state API with Ray's paths and field names: ``from shoal.util.state
import list_objects, list_tasks, list_actors, list_nodes,
list_placement_groups``.

Each call is a fresh snapshot of the cluster: the control store answers for
nodes and actors, and asks every node agent, which asks every core worker on
its node, for objects and tasks (see :mod:`shoal.control.state_query`).  The
records are dataclasses, as in recent Ray, that also allow ``record["key"]``
and ``record.get("key")`` as the dicts of older Ray versions did.

``filters`` are ``(key, "=" | "!=", value)`` tuples (strings compared
case-insensitively); ``limit`` (default 100, as in Ray) cuts the list after
filtering; ``detail=True`` fills the fields marked detail-only (None otherwise).
Shoal adds a few fields Ray does not have (an object's ``node_id``, ``owner``,
``storage`` and ``locations``; a ``BORROWED`` reference type), listed with
each record type.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from typing import Any, ClassVar

from shoal.launch.state_client import fetch_state
from shoal.util import state_build, state_summary
from shoal.util.state.exception import RayStateApiException as RayStateApiException
from shoal.util.state.exception import StateApiException

log = logging.getLogger("shoal.state")

DEFAULT_LIMIT = 100
DEFAULT_TIMEOUT = 30


class _Record:
    """Attribute access (Ray >= 2.3) and dict access (older Ray) to one record."""

    DETAIL: ClassVar[frozenset] = frozenset()
    # columns whose values are one of a fixed set: a filter naming another value is
    # refused (Ray's), not silently empty
    CHOICES: ClassVar[dict[str, frozenset]] = {}

    def __getitem__(self, key: str) -> Any:
        if key not in self._names():
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self._names() else default

    def __contains__(self, key: object) -> bool:
        return key in self._names()

    def keys(self) -> list[str]:
        return list(self._names())

    def items(self) -> Iterator[tuple[str, Any]]:
        return ((name, getattr(self, name)) for name in self._names())

    def asdict(self) -> dict:
        return dict(self.items())

    @classmethod
    def _names(cls) -> tuple[str, ...]:
        names = cls.__dict__.get("_NAMES")
        if names is None:
            names = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
            cls._NAMES = names  # type: ignore[attr-defined]
        return names

    @classmethod
    def from_record(cls, record: dict, detail: bool) -> Any:
        get = record.get
        if detail:
            return cls(*[get(name) for name in cls._names()])
        detail_only = cls.DETAIL
        return cls(*[None if name in detail_only else get(name) for name in cls._names()])


@dataclasses.dataclass
class ObjectState(_Record):
    """One process's reference to one object.  Shoal's additions: ``node_id`` (the
    process's node), ``owner`` (the owner's address), ``storage`` (INLINE in the
    owner's memory, SHARED_MEMORY, or NOT_READY), ``locations`` (nodes holding a
    shared-memory copy), ``copies`` (where each node's copy is: ``{node id: "MEMORY" |
    "DISK"}``, DISK once spilled); detail-only: the reference counts behind
    ``reference_type``."""

    DETAIL: ClassVar[frozenset] = frozenset({
        "worker_id", "is_owner", "pinned_in_memory", "local_ref_count",
        "submitted_task_ref_count", "contained_in_count", "borrower_count"})
    object_id: str
    object_size: int
    task_status: str
    attempt_number: int
    reference_type: str
    call_site: str
    type: str
    pid: int
    ip: str
    node_id: str
    owner: str | None
    storage: str
    locations: list
    copies: dict
    worker_id: str | None = None
    is_owner: bool | None = None
    pinned_in_memory: bool | None = None
    local_ref_count: int | None = None
    submitted_task_ref_count: int | None = None
    contained_in_count: int | None = None
    borrower_count: int | None = None


@dataclasses.dataclass
class TaskState(_Record):
    """A task, pending or among the last finished ones its owner remembers
    (``SHOAL_TASK_HISTORY`` per owner).  ``func_or_class_name`` is the task's name."""

    DETAIL: ClassVar[frozenset] = frozenset({"required_resources", "end_time_ms",
                                             "start_time_ms", "error_message"})
    CHOICES: ClassVar[dict[str, frozenset]] = {"state": frozenset({
        "NIL", "PENDING_ARGS_AVAIL", "PENDING_NODE_ASSIGNMENT", "PENDING_OBJ_STORE_MEM_AVAIL",
        "PENDING_ARGS_FETCH", "SUBMITTED_TO_WORKER", "PENDING_ACTOR_TASK_ARGS_FETCH",
        "PENDING_ACTOR_TASK_ORDERING_OR_CONCURRENCY", "RUNNING", "RUNNING_IN_RAY_GET",
        "RUNNING_IN_RAY_WAIT", "FINISHED", "FAILED"})}
    task_id: str
    attempt_number: int
    name: str
    state: str
    job_id: str
    actor_id: str | None
    type: str
    func_or_class_name: str
    parent_task_id: str
    node_id: str | None
    worker_id: str | None
    worker_pid: int | None
    error_type: str | None
    required_resources: dict | None = None
    end_time_ms: int | None = None
    start_time_ms: int | None = None
    error_message: str | None = None


@dataclasses.dataclass
class ActorState(_Record):
    """An actor.  ``namespace`` is the same as Ray's ``ray_namespace``."""

    DETAIL: ClassVar[frozenset] = frozenset({"death_cause", "num_restarts", "worker_id",
                                             "address"})
    CHOICES: ClassVar[dict[str, frozenset]] = {"state": frozenset({
        "DEPENDENCIES_UNREADY", "PENDING_CREATION", "ALIVE", "RESTARTING", "DEAD"})}
    actor_id: str
    class_name: str
    state: str
    job_id: str
    name: str
    node_id: str | None
    pid: int | None
    ray_namespace: str
    death_cause: dict | None = None
    num_restarts: int | None = None
    worker_id: str | None = None
    address: str | None = None

    @property
    def namespace(self) -> str:
        return self.ray_namespace


@dataclasses.dataclass
class NodeState(_Record):
    DETAIL: ClassVar[frozenset] = frozenset({"resources_available", "address", "hostname"})
    node_id: str
    node_ip: str
    is_head_node: bool
    state: str
    state_message: str | None
    node_name: str
    resources_total: dict
    labels: dict
    resources_available: dict | None = None
    address: str | None = None
    hostname: str | None = None


@dataclasses.dataclass
class WorkerState(_Record):
    """A worker process of a live node (Ray's ``WorkerState``; drivers are jobs): the
    live ones, and the last ones that ended with ``exit_type`` (Ray's
    INTENDED_SYSTEM_EXIT, INTENDED_USER_EXIT or SYSTEM_ERROR) and ``exit_detail``."""

    DETAIL: ClassVar[frozenset] = frozenset({"actor_id", "job_id", "address"})
    worker_id: str
    is_alive: bool
    worker_type: str
    node_id: str
    ip: str
    pid: int | None
    exit_type: str | None = None
    exit_detail: str | None = None
    actor_id: str | None = None
    job_id: str | None = None
    address: str | None = None


@dataclasses.dataclass
class JobState(_Record):
    """A job: a driver connected now (a job ends with its driver, so only running
    jobs are listed).  ``type`` is always DRIVER: shoal has no job submission."""

    job_id: str
    type: str
    status: str
    driver_info: dict
    namespace: str
    entrypoint: str
    runtime_env: dict
    cwd: str


@dataclasses.dataclass
class PlacementGroupState(_Record):
    """A placement group (removed ones stay listed for a while).  ``bundles`` (detail)
    is Ray's list of ``{"bundle_id", "node_id", "unit_resources"}``."""

    DETAIL: ClassVar[frozenset] = frozenset({"bundles", "stats"})
    placement_group_id: str
    name: str
    creator_job_id: str
    state: str
    is_detached: bool | None = None
    bundles: list | None = None
    stats: dict | None = None


def _query(kinds: list[str], address: str | None, timeout: float,
           raise_on_missing_output: bool) -> dict:
    try:
        reply = fetch_state(kinds, address, timeout=timeout)
    except (ConnectionError, TimeoutError) as exc:
        raise StateApiException(f"the state query failed: {exc}") from exc
    missing = reply.get("missing") or []
    if missing:
        message = (f"{len(missing)} process(es) or node(s) did not answer, so the result "
                   f"is incomplete: {'; '.join(missing[:5])}")
        if raise_on_missing_output:
            raise StateApiException(message + " (pass raise_on_missing_output=False to "
                                              "get the partial result)")
        log.warning("%s", message)
    return reply


def _check_choices(cls: type, filters: Any) -> None:
    for f in filters or ():
        if not (isinstance(f, (tuple, list)) and len(f) == 3):
            continue  # apply_filters says what is wrong with it
        key, _, wanted = f
        choices = cls.CHOICES.get(key)
        if choices is not None and str(wanted).upper() not in choices:
            raise StateApiException(
                f"invalid filter value {wanted!r} for {key!r} of {cls.__name__}; valid "
                f"values: {', '.join(sorted(choices))}")


def _finish(cls: type, records: list[dict], filters: Any, limit: int | None,
            detail: bool) -> list:
    _check_choices(cls, filters)
    records = state_build.apply_filters(records, filters, cls._names())
    if limit is not None and len(records) > limit:
        log.warning("showing %d of %d entries; pass a larger limit to see more",
                    limit, len(records))
        records = records[:limit]
    return [cls.from_record(r, detail) for r in records]


def list_objects(address: str | None = None, filters: list | None = None,
                 limit: int | None = DEFAULT_LIMIT, timeout: float = DEFAULT_TIMEOUT,
                 detail: bool = False, raise_on_missing_output: bool = True,
                 _explain: bool = False) -> list[ObjectState]:
    """Every reference to a live object, one record per (object, holding process)."""
    reply = _query(["objects"], address, timeout, raise_on_missing_output)
    return _finish(ObjectState, state_build.object_records(reply), filters, limit, detail)


def list_tasks(address: str | None = None, filters: list | None = None,
               limit: int | None = DEFAULT_LIMIT, timeout: float = DEFAULT_TIMEOUT,
               detail: bool = False, raise_on_missing_output: bool = True,
               _explain: bool = False) -> list[TaskState]:
    """Pending and recently finished tasks (newest finished first per owner)."""
    reply = _query(["tasks", "actors", "workers"], address, timeout, raise_on_missing_output)
    return _finish(TaskState, state_build.task_records(reply), filters, limit, detail)


def list_actors(address: str | None = None, filters: list | None = None,
                limit: int | None = DEFAULT_LIMIT, timeout: float = DEFAULT_TIMEOUT,
                detail: bool = False, raise_on_missing_output: bool = True,
                _explain: bool = False) -> list[ActorState]:
    reply = _query(["actors", "workers"], address, timeout, raise_on_missing_output)
    return _finish(ActorState, state_build.actor_records(reply), filters, limit, detail)


def list_nodes(address: str | None = None, filters: list | None = None,
               limit: int | None = DEFAULT_LIMIT, timeout: float = DEFAULT_TIMEOUT,
               detail: bool = False, raise_on_missing_output: bool = True,
               _explain: bool = False) -> list[NodeState]:
    reply = _query([], address, timeout, raise_on_missing_output)
    return _finish(NodeState, state_build.node_records(reply), filters, limit, detail)


def list_workers(address: str | None = None, filters: list | None = None,
                 limit: int | None = DEFAULT_LIMIT, timeout: float = DEFAULT_TIMEOUT,
                 detail: bool = False, raise_on_missing_output: bool = True,
                 _explain: bool = False) -> list[WorkerState]:
    reply = _query(["workers"], address, timeout, raise_on_missing_output)
    return _finish(WorkerState, state_build.worker_records(reply), filters, limit, detail)


def list_jobs(address: str | None = None, filters: list | None = None,
              limit: int | None = DEFAULT_LIMIT, timeout: float = DEFAULT_TIMEOUT,
              detail: bool = False, raise_on_missing_output: bool = True,
              _explain: bool = False) -> list[JobState]:
    reply = _query(["jobs"], address, timeout, raise_on_missing_output)
    return _finish(JobState, state_build.job_records(reply), filters, limit, detail)


def list_placement_groups(address: str | None = None, filters: list | None = None,
                          limit: int | None = DEFAULT_LIMIT, timeout: float = DEFAULT_TIMEOUT,
                          detail: bool = False, raise_on_missing_output: bool = True,
                          _explain: bool = False) -> list[PlacementGroupState]:
    reply = _query(["placement_groups"], address, timeout, raise_on_missing_output)
    records = [dict(r, bundles=[
        {"bundle_id": f"{r['placement_group_id']}:{i}", "node_id": node or None,
         "unit_resources": shape}
        for i, (shape, node) in enumerate(zip(r["bundles"], r["bundles_to_node_id"],
                                              strict=False))])
        for r in reply.get("placement_groups", ())]
    return _finish(PlacementGroupState, records, filters, limit, detail)


def get_placement_group(id: str, address: str | None = None,  # noqa: A002
                        timeout: float = DEFAULT_TIMEOUT) -> PlacementGroupState | None:
    found = list_placement_groups(address, [("placement_group_id", "=", id)], None, timeout,
                                  detail=True)
    return found[0] if found else None


def get_actor(id: str, address: str | None = None,  # noqa: A002 (Ray's name)
              timeout: float = DEFAULT_TIMEOUT) -> ActorState | None:
    found = list_actors(address, [("actor_id", "=", id)], None, timeout, detail=True)
    return found[0] if found else None


def get_node(id: str, address: str | None = None,  # noqa: A002
             timeout: float = DEFAULT_TIMEOUT) -> NodeState | None:
    found = list_nodes(address, [("node_id", "=", id)], None, timeout, detail=True)
    return found[0] if found else None


def get_task(id: str, address: str | None = None,  # noqa: A002
             timeout: float = DEFAULT_TIMEOUT) -> TaskState | None:
    found = list_tasks(address, [("task_id", "=", id)], None, timeout, detail=True)
    return found[0] if found else None


def get_objects(id: str, address: str | None = None,  # noqa: A002
                timeout: float = DEFAULT_TIMEOUT) -> list[ObjectState]:
    return list_objects(address, [("object_id", "=", id)], None, timeout, detail=True)


def summarize_tasks(address: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                    raise_on_missing_output: bool = True) -> dict:
    """Tasks counted by function and state (Ray's ``summarize_tasks``), plus overall
    ``state_counts``; the same records as ``list_tasks(limit=None)``."""
    return state_summary.task_summary(list_tasks(address, limit=None, timeout=timeout,
                                                 raise_on_missing_output=raise_on_missing_output))


def summarize_actors(address: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                     raise_on_missing_output: bool = True) -> dict:
    return state_summary.actor_summary(list_actors(
        address, limit=None, timeout=timeout, raise_on_missing_output=raise_on_missing_output))


def summarize_objects(address: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                      raise_on_missing_output: bool = True) -> dict:
    return state_summary.object_summary(list_objects(
        address, limit=None, timeout=timeout, raise_on_missing_output=raise_on_missing_output))


def timeline(filename: str | None = None, address: str | None = None,
             timeout: float = DEFAULT_TIMEOUT) -> list[dict] | None:
    """The task events as a Chrome trace (``chrome://tracing``, Perfetto), like
    ``ray.timeline``: written to ``filename`` as JSON, else returned as a list.
    Covers the tasks the state API knows: pending ones and the last
    ``SHOAL_TASK_HISTORY`` finished per owner; times are the owners' (push, result)."""
    import time

    from shoal.dashboard import timeline as trace

    tasks = list_tasks(address, limit=None, timeout=timeout, detail=True,
                       raise_on_missing_output=False)
    events = trace.trace_events(tasks, int(time.time() * 1000))
    if filename is None:
        return events
    with open(filename, "w") as f:
        f.write(trace.dumps(events))
    return None


__all__ = [
    "ActorState", "JobState", "NodeState", "ObjectState", "PlacementGroupState",
    "RayStateApiException", "StateApiException", "TaskState", "WorkerState", "get_actor",
    "get_node", "get_objects", "get_placement_group", "get_task", "list_actors", "list_jobs",
    "list_nodes", "list_objects", "list_placement_groups", "list_tasks", "list_workers",
    "summarize_actors", "summarize_objects", "summarize_tasks", "timeline",
]
