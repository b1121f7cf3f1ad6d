"""Summaries of state records, in the shape of Ray's ``summarize_*`` (pure).

Used by :func:`shoal.util.state.summarize_tasks` (and actors, objects), by
``shoal summary tasks`` and by the dashboard, so all three count the same way.
Records may be the state API's dataclasses or plain dicts (both have ``get``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any


def task_summary(tasks: Iterable[Any]) -> dict:
    """``{"summary": {name: {"func_or_class_name", "type", "state_counts"}},
    "total_tasks", "state_counts"}`` (Ray's TaskSummaries, plus overall counts)."""
    per_name: dict[str, dict] = {}
    states: Counter = Counter()
    total = 0
    for t in tasks:
        name = t.get("func_or_class_name") or t.get("name") or "?"
        entry = per_name.setdefault(name, {"func_or_class_name": name,
                                           "type": t.get("type"), "state_counts": {}})
        counts = entry["state_counts"]
        counts[t.get("state")] = counts.get(t.get("state"), 0) + 1
        states[t.get("state")] += 1
        total += 1
    return {"summary": per_name, "total_tasks": total, "state_counts": dict(states)}


def actor_summary(actors: Iterable[Any]) -> dict:
    """``{"summary": {class: {"class_name", "state_counts"}}, "total_actors"}``."""
    per_class: dict[str, dict] = {}
    total = 0
    for a in actors:
        entry = per_class.setdefault(a.get("class_name"), {"class_name": a.get("class_name"),
                                                           "state_counts": {}})
        counts = entry["state_counts"]
        counts[a.get("state")] = counts.get(a.get("state"), 0) + 1
        total += 1
    return {"summary": per_class, "total_actors": total}


def object_summary(objects: Iterable[Any]) -> dict:
    """Totals per reference type and storage: ``{"total_objects", "total_size_bytes",
    "by_reference_type", "by_storage"}``; an object held by several processes is
    counted once, its size once."""
    sizes: dict[str, int] = {}
    by_type: Counter = Counter()
    by_storage: Counter = Counter()
    for o in objects:
        oid = o.get("object_id")
        by_type[o.get("reference_type")] += 1
        if oid not in sizes:
            sizes[oid] = max(0, o.get("object_size") or 0)
            by_storage[o.get("storage")] += 1
    return {"total_objects": len(sizes), "total_size_bytes": sum(sizes.values()),
            "by_reference_type": dict(by_type), "by_storage": dict(by_storage)}
