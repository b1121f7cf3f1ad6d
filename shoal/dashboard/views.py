"""What each dashboard page shows, as JSON, from the state replies (pure).

Every view takes the records the state API builds (:mod:`shoal.util.state_build`
over a LIST_STATE reply) or the CLUSTER_STATUS reply ``shoal status`` prints, so
the page and ``list_tasks()`` / ``shoal status`` cannot disagree.
"""

from __future__ import annotations

from typing import Any

from shoal.util import state_summary

TASK_ROWS_LIMIT = 500
OBJECT_ROWS_LIMIT = 500
STREAM_WINDOW_MS = 5 * 60 * 1000
PENDING_STATES = {"PENDING_ARGS_AVAIL", "PENDING_NODE_ASSIGNMENT",
                  "PENDING_ACTOR_TASK_ORDERING_OR_CONCURRENCY", "SUBMITTED_TO_WORKER"}


def overview(status: dict) -> dict:
    """Nodes with resources used/total and their object store (incl. spilled bytes),
    and the pending demand, from CLUSTER_STATUS."""
    nodes = []
    totals = {"object_store_used": 0, "object_store_capacity": 0, "spilled_bytes_total": 0,
              "bytes_on_disk": 0}
    for n in status.get("nodes", ()):
        store = n.get("store") or {}
        resources = {}
        for name, total in sorted(n.get("resources_total", {}).items()):
            if name.startswith("node:"):
                continue
            used = total - n.get("resources_available", {}).get(name, 0.0)
            resources[name] = {"used": used, "total": total}
        nodes.append({"node_id": n["node_id"], "address": n["address"],
                      "alive": n["alive"], "hostname": n.get("hostname", ""),
                      "death_cause": n.get("death_cause") or "", "resources": resources,
                      "store": store, "demand": n.get("demand") or []})
        if n["alive"]:
            totals["object_store_used"] += store.get("used", 0)
            totals["object_store_capacity"] += store.get("capacity", 0)
            totals["spilled_bytes_total"] += store.get("spilled_bytes_total", 0)
            totals["bytes_on_disk"] += store.get("bytes_on_disk", 0)
    demand = [{"shape": shape, "count": count, "infeasible": bool(infeasible),
               "node_id": n["node_id"]}
              for n in status.get("nodes", ()) if n["alive"]
              for shape, count, infeasible in (n.get("demand") or ())]
    return {"nodes": nodes, "totals": totals, "demand": demand,
            "pending_actors": status.get("pending_actors", []),
            "alive_nodes": sum(1 for n in nodes if n["alive"])}


def _task_row(t: dict) -> dict:
    return {k: t.get(k) for k in ("task_id", "name", "state", "type", "node_id",
                                  "worker_id", "worker_pid", "actor_id", "error_type",
                                  "start_time_ms", "end_time_ms")}


def tasks(records: list[dict], state: str = "", name: str = "") -> dict:
    """Counts by state and by function, and the rows matching the filters (substring
    of the name, exact state), newest first, at most TASK_ROWS_LIMIT."""
    summary = state_summary.task_summary(records)
    rows = [t for t in records
            if (not state or t.get("state") == state)
            and (not name or name.lower() in (t.get("name") or "").lower())]
    rows.sort(key=lambda t: -(t.get("start_time_ms") or t.get("end_time_ms") or 0))
    return {"state_counts": summary["state_counts"], "total": summary["total_tasks"],
            "by_function": summary["summary"], "matching": len(rows),
            "rows": [_task_row(t) for t in rows[:TASK_ROWS_LIMIT]]}


def task_detail(records: list[dict], task_id: str) -> dict | None:
    for t in records:
        if t.get("task_id") == task_id:
            return dict(t)
    return None


def actors(actor_records: list[dict], task_records: list[dict]) -> dict:
    """Each actor with its calls in flight (pending or running actor tasks)."""
    in_flight: dict[str, list[dict]] = {}
    for t in task_records:
        if t.get("type") == "ACTOR_TASK" and (t.get("state") in PENDING_STATES
                                              or t.get("state") == "RUNNING"):
            in_flight.setdefault(t.get("actor_id") or "", []).append(
                {"task_id": t["task_id"], "name": t.get("name"), "state": t.get("state")})
    rows = []
    for a in actor_records:
        row = {k: a.get(k) for k in ("actor_id", "class_name", "state", "name", "node_id",
                                     "pid", "num_restarts", "death_cause")}
        row["calls_in_flight"] = in_flight.get(a["actor_id"], [])
        rows.append(row)
    return {"actors": rows, "summary": state_summary.actor_summary(actor_records)}


def objects(object_records: list[dict]) -> dict:
    """The ``shoal memory`` view: one row per (object, holding process)."""
    rows = sorted(object_records, key=lambda o: -(o.get("object_size") or 0))
    keep = ("object_id", "object_size", "reference_type", "owner", "node_id", "pid", "type",
            "storage", "locations", "copies", "task_status")
    return {"summary": state_summary.object_summary(object_records),
            "rows": [{k: o.get(k) for k in keep} for o in rows[:OBJECT_ROWS_LIMIT]],
            "total_rows": len(rows)}


def task_stream(records: list[dict], now_ms: int, window_ms: int = STREAM_WINDOW_MS) -> dict:
    """Dask's task stream: per worker lane, the tasks that ran in the last
    ``window_ms`` (start, end - the worker's own times; a running one ends now)."""
    since = now_ms - window_ms
    lanes: dict[str, list[dict]] = {}
    for t in records:
        start = t.get("start_time_ms")
        if not start or t.get("state") not in ("RUNNING", "FINISHED", "FAILED"):
            continue
        end = t.get("end_time_ms") if t.get("state") in ("FINISHED", "FAILED") else now_ms
        end = end or now_ms
        if end < since:
            continue
        lane = f"{(t.get('node_id') or '?')[:8]}/{(t.get('worker_id') or '?')[:8]}"
        lanes.setdefault(lane, []).append({"name": t.get("name"), "start": start, "end": end,
                                           "state": t.get("state"),
                                           "task_id": t.get("task_id")})
    return {"now_ms": now_ms, "since_ms": since,
            "lanes": [{"lane": k, "tasks": v} for k, v in sorted(lanes.items())]}


SHUFFLE_STAGES = {"map_task": "map", "merge_task": "merge", "reduce_task": "reduce"}


def shuffle_progress(records: list[dict]) -> dict:
    """Counts by state of the shuffle library's tasks (``shoal.shuffle.tasks``:
    map_task, merge_task, reduce_task) for the live shuffle view."""
    stages: dict[str, dict[str, int]] = {}
    for t in records:
        stage = SHUFFLE_STAGES.get(t.get("name") or "")
        if stage is not None:
            counts = stages.setdefault(stage, {})
            counts[t.get("state")] = counts.get(t.get("state"), 0) + 1
    return {"stages": stages}


def records_as_dicts(records: list[Any]) -> list[dict]:
    return [r if isinstance(r, dict) else r.asdict() for r in records]
