"""Utilities with Ray's paths: ``shoal.util.ActorPool``, scheduling strategies,
placement groups, ``memory_summary`` (``shoal memory``); the state API is
``shoal.util.state``."""

from shoal.util import scheduling_strategies as scheduling_strategies
from shoal.util.actor_pool import ActorPool as ActorPool
from shoal.util.defer_sigint import DeferSigint as DeferSigint
from shoal.util.placement_group import PlacementGroup as PlacementGroup
from shoal.util.placement_group import get_current_placement_group as get_current_placement_group
from shoal.util.placement_group import get_placement_group as get_placement_group
from shoal.util.placement_group import placement_group as placement_group  # the function, as Ray
from shoal.util.placement_group import placement_group_table as placement_group_table
from shoal.util.placement_group import remove_placement_group as remove_placement_group


def __getattr__(name: str):
    # memory_summary pulls in the state client (~40 ms): only for those who call it
    if name == "memory_summary":
        from shoal.util.memory import memory_summary

        return memory_summary
    if name == "list_named_actors":
        from shoal.util.named_actors import list_named_actors

        return list_named_actors
    if name == "get_resource_demand":
        from shoal.util.resource_demand import get_resource_demand

        return get_resource_demand
    if name == "subscribe_warnings":
        from shoal.util.cluster_warnings import subscribe_warnings

        return subscribe_warnings
    if name == "inspect_serializability":
        from shoal.util.check_serialize import inspect_serializability

        return inspect_serializability
    raise AttributeError(f"module 'shoal.util' has no attribute {name!r}")


__all__ = ["ActorPool", "DeferSigint", "PlacementGroup", "get_current_placement_group",
           "get_placement_group", "get_resource_demand",
           "inspect_serializability", "list_named_actors", "memory_summary", "placement_group",
           "placement_group_table", "remove_placement_group", "scheduling_strategies",
           "subscribe_warnings"]
