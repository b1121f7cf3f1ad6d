"""Finding a running cluster for ``shoal.init(address=...)``.

``address`` is ``HOST:PORT`` of the head's control store, or ``"auto"`` for the
head last started on this machine with ``shoal start --head`` (see
:mod:`shoal.launch.sessions`).  The cluster token is, in this order: ``_token=``
given to ``init``, ``SHOAL_TOKEN``, or the token this machine remembers for that
head (started here by ``shoal start`` or ``cluster_utils.Cluster``).

A driver needs a node on its own machine: it writes large objects into that
node's shared-memory store and maps them from there.  It uses a live node whose
object store it can open, preferring one on its own address (the head, when
the head runs here).  On a machine that runs no node, ``init`` fails at once
with an error that says so and how to start one (``shoal start --address``).
Ray does the same outside Ray Client.  (A driver without a node, keeping its
values inline, needs the core worker to run without a store; see
docs/design.md, "Membership and failure detection".)
"""

from __future__ import annotations

import asyncio
import os
import socket
from dataclasses import dataclass

from shoal.launch import sessions
from shoal.launch.control_client import DEFAULT_TIMEOUT_S, open_control
from shoal.rpc.messages import Method
from shoal.rpc.transport import Router, split_address

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass
class ClusterAddress:
    control_address: str
    node_address: str  # the node agent this driver uses (leases, object store)
    token: str
    host: str  # the address this driver listens on, reachable from the cluster


def resolve_address(address: str, token: str | None = None,
                    node_ip_address: str | None = None,
                    timeout: float = DEFAULT_TIMEOUT_S) -> ClusterAddress:
    if address == "auto":
        record = sessions.default_cluster()
        if record is None:
            raise ConnectionError(
                "shoal.init(address='auto') found no running cluster on this machine "
                f"({sessions.cluster_file()} is missing); start one with 'shoal start --head'")
        if sessions.live_cluster(record) is None:
            raise ConnectionError(
                f"shoal.init(address='auto'): the head recorded in {sessions.cluster_file()} "
                f"(pid {record.get('pid')}, {record.get('address')}) is no longer running; "
                "start one with 'shoal start --head'")
        address = record["address"]
    host, _ = split_address(address)
    token = token or os.environ.get("SHOAL_TOKEN") or sessions.known_token(address)
    if not token:
        raise ConnectionError(
            f"no cluster token for {address}: set SHOAL_TOKEN (or pass _token=) to the token "
            "printed by 'shoal start --head'")
    my_host = node_ip_address or local_ip_towards(host)

    async def list_nodes() -> list[dict]:
        conn = await open_control(Router(), token, address, name="driver", timeout=timeout,
                                  who="this driver")
        try:
            return await asyncio.wait_for(conn.call(Method.GET_NODES), timeout)
        finally:
            conn.close()

    nodes = [n for n in asyncio.run(list_nodes()) if n["alive"]]
    if not nodes:
        raise ConnectionError(f"the cluster at {address} has no live nodes")
    node = pick_local_node(nodes, my_host)
    if node is None:
        raise ConnectionError(
            f"shoal.init(address={address!r}): none of the cluster's {len(nodes)} live "
            "node(s) runs on this machine (their object stores are not visible here), and "
            "a driver needs a node on its own machine for now. Start one here first: "
            f"'shoal start --address {address}' (with the same token)")
    return ClusterAddress(address, node["address"], token, my_host)


def pick_local_node(nodes: list[dict], my_host: str) -> dict | None:
    """A node whose object store this process can map, preferring one on
    ``my_host``; None if no node runs on this machine."""
    local = [n for n in nodes if n.get("store_path") and os.path.exists(n["store_path"])]
    for n in local:
        if split_address(n["address"])[0] == my_host:
            return n
    return local[0] if local else None


def local_ip_towards(host: str) -> str:
    """The address of this machine that ``host`` can reach us on."""
    if host in LOOPBACK:
        return "127.0.0.1"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((host, 9))  # no packet is sent: this only picks a route
            return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"
