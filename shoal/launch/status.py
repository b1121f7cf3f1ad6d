"""``shoal status`` output, from the control store's CLUSTER_STATUS reply (pure)."""

from __future__ import annotations

BYTE_RESOURCES = {"memory", "object_store_memory"}


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def format_amount(name: str, value: float) -> str:
    if name in BYTE_RESOURCES:
        return format_bytes(value)
    return f"{value:g}"


def format_shape(shape: dict) -> str:
    return "{" + ", ".join(f"{k}: {format_amount(k, v)}" for k, v in sorted(shape.items())) + "}"


def format_usage(total: dict, available: dict) -> str:
    """``CPU 1/2, gpu_box 0/1, ...`` as used/total, without ``node:*`` markers."""
    parts = []
    names = sorted(k for k in total if not k.startswith("node:"))
    # the common ones first, in a fixed order
    names.sort(key=lambda k: {"CPU": 0, "GPU": 1, "object_store_memory": 8, "memory": 9}
               .get(k, 5))
    for name in names:
        used = total[name] - available.get(name, 0.0)
        parts.append(f"{name} {format_amount(name, used)}/{format_amount(name, total[name])}")
    return ", ".join(parts)


def format_spilling(store: dict) -> list[str]:
    """Ray's spill lines ("Spilled N MiB, M objects, avg write throughput X MiB/s")
    from an object store's counters; nothing if it never spilled."""
    lines = []
    for verb, what, seconds, direction in (("Spilled", "spilled", "spill_seconds", "write"),
                                           ("Restored", "restored", "restore_seconds",
                                            "read")):
        size = store.get(f"{what}_bytes_total", 0)
        if not size:
            continue
        rate = size / store[seconds] / (1 << 20) if store.get(seconds) else 0.0
        lines.append(f"{verb} {size / (1 << 20):.0f} MiB, {store[f'{what}_objects_total']} "
                     f"objects, avg {direction} throughput {rate:.0f} MiB/s")
    if lines:
        lines.append(f"On disk now: {store.get('bytes_on_disk', 0) / (1 << 20):.0f} MiB, "
                     f"{store.get('objects_on_disk', 0)} objects")
    return lines


def format_status(address: str, status: dict) -> str:
    nodes = status["nodes"]
    alive = [n for n in nodes if n["alive"]]
    lines = [
        f"shoal cluster at {address} (shoal {status.get('version', '?')}, a node is "
        f"declared dead after {status.get('node_timeout_s', 0):g} s without a heartbeat)",
        f"Nodes: {len(alive)} alive, {len(nodes) - len(alive)} dead",
    ]
    for n in nodes:
        role = " (head)" if n["address"] == address else ""
        if n["alive"]:
            usage = format_usage(n["resources_total"], n["resources_available"])
            lines.append(f"  {n['node_id'][:12]}  alive  {n['address']}{role}")
            lines.append(f"      used/total: {usage}")
            lines += [f"      object store: {line}" for line in format_spilling(n.get("store")
                                                                                or {})]
        else:
            lines.append(f"  {n['node_id'][:12]}  DEAD   {n['address']}{role}: "
                         f"{n.get('death_cause') or 'dead'}")
    lines.append("Pending demand (lease requests and actors that do not fit now):")
    demand = []
    for n in alive:
        for shape, count, infeasible in n.get("demand") or ():
            why = "no node has these resources" if infeasible else "waiting for resources"
            demand.append(f"  {count} x {format_shape(shape)} queued at node "
                          f"{n['node_id'][:12]} ({why})")
    for actor in status.get("pending_actors", ()):
        name = f" {actor['name']!r}" if actor.get("name") else ""
        demand.append(f"  actor {actor['class_name']}{name} {format_shape(actor['resources'])} "
                      "waiting for a node that fits")
    lines.extend(demand or ["  (none)"])
    return "\n".join(lines)
