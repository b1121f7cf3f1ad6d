"""``shoal logs``: the cluster's log files from the command line.

``shoal logs`` lists every node's files (as the dashboard's logs page does);
``shoal logs NAME`` prints the end of one (``--tail`` bytes), ``--follow`` keeps
printing what is appended until interrupted.  A name on several nodes (a node's
own log never is: the pid is in it) needs ``--node`` (a node id prefix).  All
of it goes through one connection to the control store, which forwards reads
to the node that has the file (READ_NODE_LOG).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from shoal.launch.commands import fail
from shoal.launch.control_client import ClusterConnectError, open_control
from shoal.launch.state_client import ClusterNotFound, resolve_cluster
from shoal.rpc.messages import Method
from shoal.rpc.protocol import VersionMismatchError
from shoal.rpc.transport import RemoteError, Router

FOLLOW_POLL_S = 0.5
CHUNK_BYTES = 1 << 20


def logs_command(args: Any) -> int:
    try:
        address, token = resolve_cluster(args.address, args.token)
        return asyncio.run(_run(args, address, token))
    except KeyboardInterrupt:
        return 0
    except (ClusterNotFound, ClusterConnectError, ConnectionError, TimeoutError,
            VersionMismatchError, RemoteError, LookupError, ValueError) as exc:
        return fail(str(exc) or type(exc).__name__)


async def _run(args: Any, address: str, token: str) -> int:
    conn = await open_control(Router(), token, address, name="shoal logs",
                              timeout=args.timeout)
    try:
        reply = await asyncio.wait_for(
            conn.call(Method.LIST_STATE, {"kinds": ["logs"], "timeout": args.timeout * 0.8}),
            args.timeout)
        files = [(ns["node_id"], f) for ns in reply.get("node_states", ())
                 for f in ns.get("logs", ())]
        if not args.name:
            _print_listing(files)
            return 0
        node_id = _pick_node(files, args.name, args.node)
        offset, want = -1, args.tail  # first the file's last ``--tail`` bytes
        while True:
            chunk = await asyncio.wait_for(
                conn.call(Method.READ_NODE_LOG, [node_id, args.name, offset,
                                                 want if offset < 0 else CHUNK_BYTES]),
                args.timeout)
            sys.stdout.write(bytes(chunk["data"]).decode(errors="replace"))
            sys.stdout.flush()
            offset = chunk["next"]
            if chunk["next"] < chunk["size"]:
                continue  # more is there already
            if not args.follow:
                return 0
            await asyncio.sleep(FOLLOW_POLL_S)
    finally:
        conn.close()


def _pick_node(files: list[tuple[str, dict]], name: str, node: str | None) -> str:
    nodes = sorted({node_id for node_id, f in files if f["name"] == name
                    and (not node or node_id.startswith(node))})
    if not nodes:
        where = f" on a node whose id starts with {node!r}" if node else ""
        raise LookupError(f"no log file named {name!r}{where} (shoal logs lists them)")
    if len(nodes) > 1:
        raise ValueError(f"{name!r} is on several nodes ({', '.join(n[:12] for n in nodes)}): "
                         "pick one with --node")
    return nodes[0]


def _print_listing(files: list[tuple[str, dict]]) -> None:
    print(f"{'NODE':<13} {'NAME':<44} {'PID':>7} {'SIZE':>10}  ACTOR / STATE", flush=True)
    for node_id, f in files:
        what = f.get("actor_id") or f.get("label") or ""
        if f.get("worker_id") and not f.get("alive"):
            what = (what + " (exited)").strip()
        print(f"{node_id[:12]:<13} {f['name']:<44} {f.get('pid') or '':>7} {f['size']:>10}  "
              f"{what}", flush=True)
