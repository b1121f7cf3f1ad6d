"""Task records -> a Chrome trace (``chrome://tracing`` / Perfetto JSON), as
``ray timeline`` writes it (pure).

Each finished or running task with a start time becomes one complete event
(``"ph": "X"``): the process lane is the node, the thread lane the worker, so
the trace shows which worker ran what, when.  Times are the executing
worker's: it stamps when it began and finished the task and sends both in its
reply (a running task's start comes from the worker's state snapshot).  Only
a task whose worker never answered (it died) falls back to its owner's times:
when it pushed the task and when it recorded the failure.  Tasks not running
yet (pending, or queued at a worker) are left out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

FINISHED_STATES = {"FINISHED", "FAILED"}
DRAWN_STATES = FINISHED_STATES | {"RUNNING"}


def trace_events(tasks: Iterable[Any], now_ms: int) -> list[dict]:
    """One ``X`` event per task that started, plus the lane names (``M`` events).
    ``tasks`` are TaskState records or dicts with ``detail=True`` fields; a task
    still running ends at ``now_ms``."""
    events: list[dict] = []
    lanes: dict[tuple[str, str], tuple[int, int]] = {}
    nodes: dict[str, int] = {}
    for t in tasks:
        get = t.get
        start, state = get("start_time_ms"), get("state")
        if not start or state not in DRAWN_STATES:
            continue
        end = get("end_time_ms") if state in FINISHED_STATES else now_ms
        if not end:
            end = now_ms
        node = get("node_id") or "unknown node"
        worker = get("worker_id") or "unknown worker"
        pid = nodes.setdefault(node, len(nodes) + 1)
        if (node, worker) not in lanes:
            lanes[(node, worker)] = (pid, sum(1 for k in lanes if k[0] == node) + 1)
        _, tid = lanes[(node, worker)]
        events.append({
            "name": get("name") or get("func_or_class_name") or "?",
            "cat": get("type") or "NORMAL_TASK",
            "ph": "X",
            "ts": start * 1000,  # microseconds
            "dur": max(0, end - start) * 1000,
            "pid": pid,
            "tid": tid,
            "args": {"task_id": get("task_id"), "state": state,
                     "worker_id": get("worker_id"), "error_type": get("error_type")},
        })
    for node, pid in nodes.items():
        events.append({"name": "process_name", "ph": "M", "pid": pid,
                       "args": {"name": f"node {node[:12]}"}})
    for (_node, worker), (pid, tid) in lanes.items():
        events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
                       "args": {"name": f"worker {worker[:12]}"}})
    return events


def dumps(events: list[dict]) -> str:
    return json.dumps(events)
