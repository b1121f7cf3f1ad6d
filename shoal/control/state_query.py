"""The control store's part of the state API (LIST_STATE).

The control store answers what it owns itself - the node table and the actor
table - and, for objects, tasks and worker processes, asks every live node's
agent at once (NODE_STATE), which asks its core workers (see
:mod:`shoal.node.state_service`).  It keeps nothing: every query is a fresh
snapshot, and it costs the cluster nothing between queries.  Like the rest of
the control store, this is never on the per-task path::

    caller (driver / CLI)    control store          node agents          core workers
      | LIST_STATE(kinds) --> | NODE_STATE ------->  | WORKER_STATE -----> |
      |                       |                      | <--------- snapshot |
      |                       | <-- node's part ---  |
      | <-- {nodes, actors, node_states, missing}
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from shoal.rpc.fanout import fan_out
from shoal.rpc.loopback import LoopbackConnection
from shoal.rpc.messages import Method

if TYPE_CHECKING:
    from shoal.control.control_store import ControlStore

NODE_KINDS = {"objects", "tasks", "workers", "logs"}
DEFAULT_TIMEOUT_S = 10.0


def handle_list_state(store: ControlStore, conn: Any, body: Any) -> Any:
    """``{"kinds": [...], "timeout": s}``; kinds: objects, tasks, workers, actors, jobs,
    placement_groups, logs (each node's log files)."""
    body = body or {}
    kinds = set(body.get("kinds", ()))
    timeout = float(body.get("timeout", DEFAULT_TIMEOUT_S))
    reply: dict[str, Any] = {
        "nodes": [dict(n.public(), is_head_node=isinstance(n.conn, LoopbackConnection))
                  for n in store.nodes.values()],
        "node_states": [],
        "missing": [],
    }
    if "actors" in kinds:
        reply["actors"] = [a.public() for a in store.actors.values()]
    if "jobs" in kinds:  # the drivers connected now (a job ends with its driver)
        reply["jobs"] = [{"job_id": job_id, "driver_worker_id": c.get("worker_id", ""),
                          "driver_address": c.get("address", ""), "driver_pid": c.get("pid"),
                          "namespace": c.get("namespace", ""), "cwd": c.get("cwd", "")}
                         for job_id, c in store.jobs.items()]
    if "placement_groups" in kinds:
        reply["placement_groups"] = store.placement.handle_list(conn, None)
    wanted = sorted(kinds & NODE_KINDS)
    if not wanted:
        return reply
    return _gather(store, reply, wanted, timeout)


async def _gather(store: ControlStore, reply: dict, kinds: list, timeout: float) -> dict:
    peers = [(n.node_id, n.conn) for n in store.nodes.values() if n.alive]
    # The agents get most of the time for their own fan-out; we wait a little longer.
    result = await fan_out(peers, Method.NODE_STATE, [kinds, timeout * 0.8], timeout)
    for _node_id, node_state in result.replies:
        reply["node_states"].append(node_state)
        reply["missing"].extend(node_state.get("missing", ()))
    reply["missing"].extend(f"node {m}" for m in result.missing)
    return reply


def handle_read_node_log(store: ControlStore, conn: Any, body: Any) -> Any:
    """``[node id, name, offset, max bytes]``: that node's NODE_LOG_READ, forwarded
    (callers hold a connection to the control store, not to every agent)."""
    node_id, name, offset, max_bytes = body
    node = store.nodes.get(node_id)
    if node is None or not node.alive:
        raise LookupError(f"no live node {node_id!r}")
    return asyncio.wait_for(node.conn.call(Method.NODE_LOG_READ, [name, offset, max_bytes]),
                            DEFAULT_TIMEOUT_S)
