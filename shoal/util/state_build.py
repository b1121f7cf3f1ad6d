"""Turning a LIST_STATE reply into the state API's records (pure; unit-tested).

The reply holds every process's own view (:mod:`shoal.core.state_records`);
this module merges them into one record per (object, process) and per task,
with Ray's field names, and applies ``filters`` and ``limit``:

* a borrower does not know the size or the producing task's state of an
  object it never read: both come from the owner's row;
* objects a process has mapped without holding a ref (the agent's pins)
  become ``PINNED_IN_MEMORY`` rows;
* the owner says SUBMITTED_TO_WORKER; if the executing worker reports the task
  among those it runs, the record says RUNNING;
* actor tasks and actor-creation tasks get their node and worker from the
  actor table.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shoal.control.actor_lifecycle import ActorState
from shoal.core.state_records import (
    FAILED,
    FINISHED,
    NOT_READY,
    PENDING_ARGS_AVAIL,
    PENDING_NODE_ASSIGNMENT,
    PINNED_IN_MEMORY,
    RUNNING,
    SUBMITTED_TO_WORKER,
)

CALL_SITE_DISABLED = "disabled"


def processes(reply: dict) -> Iterable[dict]:
    for node_state in reply.get("node_states", ()):
        yield from node_state.get("processes", ())


def worker_pids(reply: dict) -> dict[str, int]:
    """``{worker id: pid}`` of every worker process on a live node."""
    return {w["worker_id"]: w["pid"] for ns in reply.get("node_states", ())
            for w in ns.get("workers", ()) if w.get("is_alive", True)}


# ---- objects -------------------------------------------------------------------------
def object_records(reply: dict) -> list[dict]:
    records: list[dict] = []
    owners: dict[str, dict] = {}  # object id -> the owner's record
    for proc in processes(reply):
        pinned: dict[str, int] = proc.get("pinned") or {}
        seen = set()
        for row in proc.get("objects", ()):
            rec = _object_record(proc, *row)
            oid = rec["object_id"]
            seen.add(oid)
            rec["pinned_in_memory"] = oid in pinned
            if rec["owner"] == "":
                rec["owner"] = proc["address"]
                rec["is_owner"] = True
                owners[oid] = rec
            records.append(rec)
        for oid, size in pinned.items():
            if oid not in seen:
                rec = _object_record(proc, oid, size, PINNED_IN_MEMORY, FINISHED, None,
                                     "SHARED_MEMORY", [proc["node_id"]], 0, 0, 0, 0)
                rec["pinned_in_memory"] = True
                records.append(rec)
    copies: dict[str, dict[str, str]] = {}  # what each node's store says
    for node_state in reply.get("node_states", ()):
        for oid, where in (node_state.get("copies") or {}).items():
            copies.setdefault(oid, {})[node_state["node_id"]] = where
    for rec in records:
        rec["copies"] = copies.get(rec["object_id"], {})
    for rec in records:  # what only the owner knows
        owner = owners.get(rec["object_id"])
        if owner is None or owner is rec:
            continue
        if rec["owner"] is None:
            rec["owner"] = owner["owner"]
        if rec["object_size"] < 0:
            rec["object_size"] = owner["object_size"]
        if rec["storage"] == NOT_READY:
            rec["storage"] = owner["storage"]
            rec["locations"] = owner["locations"]
            rec["task_status"] = owner["task_status"]
    return records


def _object_record(proc: dict, object_id: str, size: int, reference_type: str,
                   task_status: str, owner: str | None, storage: str, locations: list,
                   local: int, submitted: int, contained_in: int, borrowers: int) -> dict:
    """One record from a row (``OBJECT_COLUMNS`` order) and its process."""
    return {
        "object_id": object_id,
        "object_size": size,
        "task_status": task_status,
        "attempt_number": 0,
        "reference_type": reference_type,
        "call_site": CALL_SITE_DISABLED,
        "type": proc["type"],
        "pid": proc["pid"],
        "ip": proc["ip"],
        "node_id": proc["node_id"],
        "worker_id": proc["worker_id"],
        "owner": owner,
        "is_owner": False,
        "storage": storage,
        "locations": locations,
        "local_ref_count": local,
        "submitted_task_ref_count": submitted,
        "contained_in_count": contained_in,
        "borrower_count": borrowers,
    }


# ---- tasks ------------------------------------------------------------------------------
def task_records(reply: dict) -> list[dict]:
    pids = worker_pids(reply)
    actors = {a["actor_id"]: a for a in reply.get("actors", ())}
    running: dict[str, dict] = {}
    for proc in processes(reply):
        for task_id in proc.get("running", ()):
            running[task_id] = proc
    records = []
    seen = set()
    for proc in processes(reply):
        for row in proc.get("tasks", ()):
            rec = dict(row)
            if rec["task_id"] in seen:  # a task is owned by one process only
                continue
            seen.add(rec["task_id"])
            rec["func_or_class_name"] = rec["name"]
            executor = running.get(rec["task_id"])
            if rec["state"] == SUBMITTED_TO_WORKER and executor is not None:
                rec["state"] = RUNNING
                rec["worker_id"] = executor["worker_id"]
                rec["node_id"] = executor["node_id"]
                # when it really started there, not when its owner sent it
                rec["start_time_ms"] = executor.get("running_since", {}).get(
                    rec["task_id"], rec["start_time_ms"])
            actor = actors.get(rec["actor_id"] or "")
            if actor is not None and rec["worker_id"] is None and actor.get("worker_id"):
                rec["worker_id"] = actor["worker_id"]
                rec["node_id"] = actor.get("node_id") or None
            rec["worker_pid"] = pids.get(rec["worker_id"] or "")
            rec["attempt_number"] = 0
            records.append(rec)
    for task_id, proc in running.items():  # its owner did not answer (or is gone)
        if task_id not in seen:
            records.append(_orphan_running(task_id, proc))
    records.extend(actor_creation_records(reply.get("actors", ()), pids))
    return records


def _orphan_running(task_id: str, proc: dict) -> dict:
    return {"task_id": task_id, "name": "", "func_or_class_name": "", "state": RUNNING,
            "type": "ACTOR_TASK" if proc.get("actor_id") else "NORMAL_TASK",
            "actor_id": proc.get("actor_id"), "job_id": proc.get("job_id", ""),
            "node_id": proc["node_id"], "worker_id": proc["worker_id"],
            "worker_pid": proc["pid"], "error_type": None, "parent_task_id": "",
            "end_time_ms": None,
            "start_time_ms": proc.get("running_since", {}).get(task_id),
            "error_message": None, "required_resources": {}, "attempt_number": 0}


def actor_creation_records(actors: Iterable[dict], pids: dict[str, int]) -> list[dict]:
    """Actor creation runs through the control store, not an owner's task table:
    its record is derived from the actor's (the task id is the actor id)."""
    out = []
    for actor in actors:
        state = ActorState(actor["state"])
        placed = bool(actor.get("node_id"))
        if state is ActorState.DEPENDENCIES_UNREADY:
            task_state, error = PENDING_ARGS_AVAIL, None
        elif state in (ActorState.PENDING, ActorState.RESTARTING):
            task_state, error = PENDING_NODE_ASSIGNMENT, None
        elif state is ActorState.ALIVE or (state is ActorState.DEAD and placed):
            task_state, error = FINISHED, None
        else:  # dead before it was ever placed
            task_state, error = FAILED, "ACTOR_DIED"
        name = f"{actor['class_name']}.__init__"
        out.append({"task_id": actor["actor_id"], "name": name, "func_or_class_name": name,
                    "state": task_state, "type": "ACTOR_CREATION_TASK",
                    "actor_id": actor["actor_id"], "job_id": actor.get("job_id", ""),
                    "node_id": actor.get("node_id") or None,
                    "worker_id": actor.get("worker_id") or None,
                    "worker_pid": pids.get(actor.get("worker_id") or ""),
                    "error_type": error, "parent_task_id": "", "end_time_ms": None,
                    "start_time_ms": None, "error_message": None,
                    "required_resources": {}, "attempt_number": 0})
    return out


# ---- actors and nodes ----------------------------------------------------------------------
def actor_records(reply: dict) -> list[dict]:
    pids = worker_pids(reply)
    out = []
    for a in reply.get("actors", ()):
        dead = ActorState(a["state"]) is ActorState.DEAD
        out.append({
            "actor_id": a["actor_id"],
            "class_name": a["class_name"],
            "state": a["state"],
            "job_id": a.get("job_id", ""),
            "name": a.get("name") or "",
            "node_id": a.get("node_id") or None,
            "pid": pids.get(a.get("worker_id") or "") if not dead else None,
            "ray_namespace": a.get("namespace") or "default",
            "death_cause": ({"error_message": a.get("death_cause") or ""} if dead else None),
            "num_restarts": a.get("num_restarts", 0),
            "worker_id": a.get("worker_id") or None,
            "address": a.get("address") or None,
        })
    return out


def worker_records(reply: dict) -> list[dict]:
    """The worker processes in the live nodes' worker tables (drivers are jobs)."""
    out = []
    for ns in reply.get("node_states", ()):
        ip = (ns.get("address") or "").rsplit(":", 1)[0]
        for w in ns.get("workers", ()):
            out.append({"worker_id": w["worker_id"], "is_alive": w.get("is_alive", True),
                        "worker_type": "WORKER",
                        "node_id": ns.get("node_id"), "ip": ip, "pid": w.get("pid") or None,
                        "actor_id": w.get("actor_id") or None, "job_id": w.get("job_id") or None,
                        "address": w.get("address") or None,
                        "exit_type": w.get("exit_type"), "exit_detail": w.get("exit_detail")})
    return out


def job_records(reply: dict) -> list[dict]:
    return [{"job_id": j["job_id"], "type": "DRIVER", "status": "RUNNING",
             "driver_info": {"id": j["driver_worker_id"], "pid": j["driver_pid"],
                             "address": j["driver_address"]},
             "namespace": j.get("namespace") or "default", "entrypoint": "",
             "runtime_env": {}, "cwd": j.get("cwd") or ""}
            for j in reply.get("jobs", ())]


def node_records(reply: dict) -> list[dict]:
    out = []
    for n in reply.get("nodes", ()):
        ip = n["address"].rsplit(":", 1)[0]
        out.append({
            "node_id": n["node_id"],
            "node_ip": ip,
            "is_head_node": bool(n.get("is_head_node")),
            "state": "ALIVE" if n["alive"] else "DEAD",
            "state_message": n.get("death_cause") or None,
            "node_name": ip,
            "resources_total": {k: v for k, v in n.get("resources_total", {}).items()
                                if not k.startswith("node:")},
            "labels": {},
            "resources_available": n.get("resources_available", {}),
            "address": n["address"],
            "hostname": n.get("hostname", ""),
        })
    return out


# ---- filters and limit -------------------------------------------------------------------------
PREDICATES = ("=", "!=")


def matches(value: Any, predicate: str, wanted: Any) -> bool:
    """Ray's filter semantics: ``=`` / ``!=``, strings compared case-insensitively,
    the filter value converted to the column's type (``("pid", "=", "123")``)."""
    if predicate not in PREDICATES:
        raise ValueError(f"unsupported filter predicate {predicate!r}; use one of "
                         f"{', '.join(PREDICATES)}")
    equal = _equal(value, wanted)
    return equal if predicate == "=" else not equal


def _equal(value: Any, wanted: Any) -> bool:
    if value is None:
        return wanted is None or str(wanted).lower() in ("none", "null", "")
    if isinstance(value, bool):
        return value == (wanted if isinstance(wanted, bool)
                         else str(wanted).strip().lower() in ("true", "1", "yes"))
    if isinstance(value, (int, float)):
        try:
            return value == type(value)(wanted)
        except (TypeError, ValueError):
            return False
    return str(value).lower() == str(wanted).lower()


def apply_filters(records: list[dict], filters: Iterable | None,
                  columns: Iterable[str]) -> list[dict]:
    if not filters:
        return records
    columns = set(columns)
    checks = []
    for f in filters:
        try:
            key, predicate, wanted = f
        except (TypeError, ValueError):
            raise ValueError(f"a filter is a (key, predicate, value) tuple, got {f!r}"
                             ) from None
        if key not in columns:
            raise ValueError(f"cannot filter on {key!r}; filterable columns: "
                             f"{', '.join(sorted(columns))}")
        if predicate not in PREDICATES:
            raise ValueError(f"unsupported filter predicate {predicate!r}; use one of "
                             f"{', '.join(PREDICATES)}")
        checks.append((key, predicate, wanted))
    return [r for r in records if all(matches(r.get(k), p, w) for k, p, w in checks)]
