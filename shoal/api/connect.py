"""Finding a running cluster for ``shoal.init(address=...)``.

``address`` is ``HOST:PORT`` of the head (control store), or ``"auto"`` for
the cluster last started on this machine with ``shoal start --head`` (its
address and token are in ``/tmp/shoal/cluster.json``).  The token comes from
``SHOAL_TOKEN`` or that file.  The driver uses the node agent on its own host
for leases and its object store.
"""

from __future__ import annotations

import asyncio
import json
import os

from shoal.api.local_cluster import SESSION_ROOT
from shoal.rpc.messages import Method
from shoal.rpc.transport import Router, connect, split_address

CLUSTER_FILE = os.path.join(SESSION_ROOT, "cluster.json")


def read_cluster_file() -> dict | None:
    try:
        with open(CLUSTER_FILE) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def resolve_address(address: str, timeout: float = 10.0) -> tuple[str, str, str]:
    """Returns (control address, local node agent address, token)."""
    info = read_cluster_file() or {}
    if address == "auto":
        if not info:
            raise ConnectionError(
                "shoal.init(address='auto') found no running cluster on this machine "
                f"({CLUSTER_FILE} is missing); start one with 'shoal start --head'")
        address = info["address"]
    token = os.environ.get("SHOAL_TOKEN") or (
        info.get("token") if info.get("address") == address else None)
    if not token:
        raise ConnectionError(
            f"no cluster token for {address}: set SHOAL_TOKEN to the token printed by "
            "'shoal start --head'")
    host, port = split_address(address)

    async def find_node() -> str:
        try:
            conn = await connect(Router(), token, host, port, timeout=timeout)
        except (TimeoutError, OSError) as exc:
            raise ConnectionError(
                f"could not connect to a shoal cluster at {address}: {exc}") from None
        try:
            nodes = await asyncio.wait_for(conn.call(Method.GET_NODES), timeout)
        finally:
            conn.close()
        alive = [n for n in nodes if n["alive"]]
        local_hosts = {"127.0.0.1", "localhost", host}
        for n in alive:
            if split_address(n["address"])[0] in local_hosts:
                return n["address"]
        if alive:
            return alive[0]["address"]
        raise ConnectionError(f"the cluster at {address} has no live nodes")

    node_address = asyncio.run(find_node())
    return address, node_address, token
