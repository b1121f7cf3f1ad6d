"""``shoal.util.list_named_actors``: the names of the cluster's live named actors."""

from __future__ import annotations

from shoal.control.actor_lifecycle import ActorState
from shoal.rpc.messages import Method


def list_named_actors(all_namespaces: bool = False) -> list:
    """Names of the named actors not dead, in this job's namespace; with
    ``all_namespaces`` a list of ``{"name", "namespace"}`` dicts of every namespace."""
    from shoal.api.session import control_call, ensure_worker

    namespace = ensure_worker().namespace
    records = [r for r in control_call(Method.LIST_ACTORS)
               if r["name"] and ActorState(r["state"]) is not ActorState.DEAD]
    if all_namespaces:
        return [{"name": r["name"], "namespace": r["namespace"]} for r in records]
    return [r["name"] for r in records if r["namespace"] == namespace]
