"""``shoal memory`` and ``shoal.util.memory_summary()``: every live object, who
holds it, where it is and why it is alive, grouped like ``ray memory``.

The data is :func:`shoal.util.state.list_objects`'s (one row per object and
holding process); :func:`format_memory_summary` is a pure function of the
LIST_STATE reply, so its layout is unit-tested without a cluster.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from shoal.launch.state_client import fetch_state
from shoal.launch.status import format_spilling
from shoal.util import state_build

GROUP_BY = ("NODE_ADDRESS", "STACK_TRACE")
SORT_BY = ("OBJECT_SIZE", "PID", "REFERENCE_TYPE")
UNITS = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}

# summary columns: (title, reference types counted)
SUMMARY = (
    ("Local References", ("LOCAL_REFERENCE",)),
    ("Pinned in Memory", ("PINNED_IN_MEMORY",)),
    ("Used by Pending Tasks", ("USED_BY_PENDING_TASK",)),
    ("Captured in Objects", ("CAPTURED_IN_OBJECT",)),
    ("Borrowed Elsewhere", ("BORROWED",)),
)


def memory_summary(address: str | None = None, group_by: str = "NODE_ADDRESS",
                   sort_by: str = "OBJECT_SIZE", units: str | None = None,
                   stats_only: bool = False, num_entries: int | None = None,
                   timeout: float = 30.0) -> str:
    """The ``shoal memory`` report as a string (``ray memory``'s options)."""
    reply = fetch_state(["objects"], address, timeout=timeout)
    return format_memory_summary(reply, group_by, sort_by, units, stats_only, num_entries)


def format_size(n: int, units: str | None) -> str:
    if n < 0:
        return "?"
    if units:
        value = n / UNITS[units]
        return f"{n} B" if units == "B" else f"{value:.2f} {units}"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    rows = [header] + [list(r) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in rows]


def _holders(reply: dict) -> dict[str, str]:
    """``{core worker address: "driver pid=N" | "worker pid=N"}``, to name owners."""
    return {p["address"]: f"{p['type'].lower()} pid={p['pid']}"
            for p in state_build.processes(reply)}


def _owner(rec: dict, holders: dict[str, str]) -> str:
    if rec["is_owner"]:
        return "(this process)"
    if rec["owner"] is None:  # only mapped, and no process reports owning it
        return "(freed, still mapped)"
    return holders.get(rec["owner"], rec["owner"])


def _where(rec: dict) -> str:
    if rec["storage"] == "INLINE":
        return "inline (owner's memory)"
    if rec["storage"] == "SHARED_MEMORY":
        copies = rec.get("copies") or {}
        nodes = ", ".join(n[:8] + (" (spilled)" if copies.get(n) == "DISK" else "")
                          for n in rec["locations"]) or "?"
        return f"shm on {nodes}"
    return "not ready"


def _sort(records: list[dict], sort_by: str) -> list[dict]:
    if sort_by == "PID":
        return sorted(records, key=lambda r: (r["pid"], -r["object_size"]))
    if sort_by == "REFERENCE_TYPE":
        return sorted(records, key=lambda r: (r["reference_type"], -r["object_size"]))
    return sorted(records, key=lambda r: -r["object_size"])  # largest first


def format_memory_summary(reply: dict, group_by: str = "NODE_ADDRESS",
                          sort_by: str = "OBJECT_SIZE", units: str | None = None,
                          stats_only: bool = False, num_entries: int | None = None,
                          now: datetime.datetime | None = None) -> str:
    if group_by not in GROUP_BY:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_BY)}, got {group_by!r}")
    if sort_by not in SORT_BY:
        raise ValueError(f"sort_by must be one of {', '.join(SORT_BY)}, got {sort_by!r}")
    if units is not None and units not in UNITS:
        raise ValueError(f"units must be one of {', '.join(UNITS)}, got {units!r}")
    records = state_build.object_records(reply)
    stamp = (now or datetime.datetime.now()).strftime("%Y-%m-%d %H:%M:%S")
    lines = [f"======== Object references status: {stamp} ========"]
    if not stats_only:
        lines += _grouped(reply, records, group_by, sort_by, units, num_entries)
    lines += _aggregate(reply, records, units)
    return "\n".join(lines)


def _group_key(rec: dict, group_by: str, node_ips: dict[str, str]) -> str:
    if group_by == "STACK_TRACE":
        return f"call site: {rec['call_site']}"
    node = rec["node_id"]
    return f"node address: {node_ips.get(node, rec['ip'])} (node {node[:12]})"


def _grouped(reply: dict, records: list[dict], group_by: str, sort_by: str,
             units: str | None, num_entries: int | None) -> list[str]:
    node_ips = {n["node_id"]: n["address"].rsplit(":", 1)[0] for n in reply.get("nodes", ())}
    holders = _holders(reply)
    groups: dict[str, list[dict]] = {}
    for rec in records:
        groups.setdefault(_group_key(rec, group_by, node_ips), []).append(rec)
    lines = [f"Grouping by {group_by.lower().replace('_', ' ')}...        "
             f"Sorting by {sort_by.lower().replace('_', ' ')}..."]
    if not groups:
        lines += ["", "No live object references in the cluster."]
    for key in sorted(groups):
        group = groups[key]
        distinct = {r["object_id"]: max(r["object_size"], 0) for r in group}
        summary = [format_size(sum(distinct.values()), units)]
        for _title, types in SUMMARY:
            hit = [r for r in group if r["reference_type"] in types]
            size = sum(max(r["object_size"], 0) for r in hit)
            summary.append(f"{len(hit)}, ({format_size(size, units)})")
        lines += ["", f"--- Summary for {key} ---"]
        lines += _table(["Mem Used by Objects"] + [t for t, _ in SUMMARY], [summary])
        lines += ["", f"--- Object references for {key} ---"]
        shown = _sort(group, sort_by)[:num_entries] if num_entries else _sort(group, sort_by)
        rows = [[r["ip"], str(r["pid"]), r["type"].capitalize(), r["object_id"],
                 format_size(r["object_size"], units), r["reference_type"],
                 _owner(r, holders),
                 _where(r), r["call_site"]] for r in shown]
        lines += _table(["IP Address", "PID", "Type", "Object Ref", "Size", "Reference Type",
                         "Owner", "Where", "Call Site"], rows)
        if len(shown) < len(group):
            lines.append(f"... {len(group) - len(shown)} more (num_entries={num_entries})")
    lines += ["", "Call sites are not recorded: 'disabled' (as in Ray without "
                  "RAY_record_ref_creation_sites)."]
    return lines


def _aggregate(reply: dict, records: list[dict], units: str | None) -> list[str]:
    lines = ["", "--- Aggregate object store stats across all nodes ---"]
    for ns in reply.get("node_states", ()):
        store = ns["store"]
        full = 100.0 * store["used"] / store["capacity"] if store["capacity"] else 0.0
        lines.append(f"node {ns['node_id'][:12]} ({ns['address']}): shared-memory store "
                     f"{format_size(store['used'], units)} used of "
                     f"{format_size(store['capacity'], units)} ({full:.1f}% full), "
                     f"{store['num_objects']} objects")
        lines += [f"  {line}" for line in format_spilling(store)]
    distinct: dict[str, dict] = {}
    for rec in records:
        if rec["object_id"] not in distinct or rec["is_owner"]:
            distinct[rec["object_id"]] = rec
    inline = sum(max(r["object_size"], 0) for r in distinct.values()
                 if r["storage"] == "INLINE")
    shm = sum(max(r["object_size"], 0) for r in distinct.values()
              if r["storage"] == "SHARED_MEMORY")
    lines.append(f"Total: {len(records)} references to {len(distinct)} objects; "
                 f"{format_size(shm, units)} in shared memory, "
                 f"{format_size(inline, units)} inline in their owners' memory")
    missing = reply.get("missing") or []
    if missing:
        lines.append(f"WARNING: incomplete, {len(missing)} did not answer: "
                     + "; ".join(missing[:5]))
    return lines
