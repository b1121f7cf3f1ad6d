"""Utilities with Ray's paths: ``shoal.util.ActorPool``, scheduling strategies,
``memory_summary`` (``shoal memory``); the state API is ``shoal.util.state``."""

from shoal.util import scheduling_strategies as scheduling_strategies
from shoal.util.actor_pool import ActorPool as ActorPool


def __getattr__(name: str):
    # memory_summary pulls in the state client (~40 ms): only for those who call it
    if name == "memory_summary":
        from shoal.util.memory import memory_summary

        return memory_summary
    if name == "list_named_actors":
        from shoal.util.named_actors import list_named_actors

        return list_named_actors
    if name == "inspect_serializability":
        from shoal.util.check_serialize import inspect_serializability

        return inspect_serializability
    raise AttributeError(f"module 'shoal.util' has no attribute {name!r}")


__all__ = ["ActorPool", "inspect_serializability", "list_named_actors", "memory_summary",
           "scheduling_strategies"]
