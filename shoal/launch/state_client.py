"""Fetching a state snapshot (LIST_STATE) from a cluster, from a driver or from
the CLI, and finding the cluster the way ``shoal status`` does: ``--address``,
else ``SHOAL_ADDRESS``, else the head ``shoal start`` left running here."""

from __future__ import annotations

import os
from typing import Any

from shoal.core import context
from shoal.launch import control_client, sessions
from shoal.rpc.messages import Method

# The fan-out below the control store gets this share of the caller's timeout,
# so a slow process is reported as missing instead of failing the whole query.
FAN_OUT_SHARE = 0.8


class ClusterNotFound(ConnectionError):
    """No address given, and no cluster to default to."""


def resolve_cluster(address: str | None, token: str | None) -> tuple[str, str]:
    """``(address, token)`` of the cluster to query; raises :class:`ClusterNotFound`."""
    if address in (None, "", "auto"):
        address = os.environ.get("SHOAL_ADDRESS") or None
    if address and address.startswith("ray://"):
        raise ValueError(f"Ray Client addresses are not supported ({address!r}); give the "
                         "head's HOST:PORT")
    if address in (None, "auto"):
        record = sessions.live_cluster(sessions.default_cluster())
        if record is None:
            raise ClusterNotFound(
                "no running cluster found on this machine; pass --address HOST:PORT "
                "(and --token, or set SHOAL_TOKEN)")
        address = record["address"]
    token = token or os.environ.get("SHOAL_TOKEN") or sessions.known_token(address)
    if not token:
        raise ClusterNotFound(f"no cluster token for {address}: pass --token or set "
                              "SHOAL_TOKEN")
    return address, token


def fetch_state(kinds: list[str], address: str | None = None, token: str | None = None,
                timeout: float = 30.0) -> dict:
    """The LIST_STATE reply for ``kinds`` (objects, tasks, workers, actors).  Uses this
    process's own connection when it is a connected driver and no address is given."""
    body: dict[str, Any] = {"kinds": list(kinds), "timeout": timeout * FAN_OUT_SHARE}
    worker = context.current_worker_or_none()
    if worker is not None and address is None:
        return worker.control_call(Method.LIST_STATE, body, timeout=timeout)
    address, token = resolve_cluster(address, token)
    return control_client.call(address, token, Method.LIST_STATE, body, timeout=timeout)
