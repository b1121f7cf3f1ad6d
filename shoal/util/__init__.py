"""Utilities with Ray's paths: ``shoal.util.ActorPool``, scheduling strategies,
``memory_summary`` (``shoal memory``); the state API is ``shoal.util.state``."""

from shoal.util import scheduling_strategies as scheduling_strategies
from shoal.util.actor_pool import ActorPool as ActorPool
from shoal.util.memory import memory_summary as memory_summary

__all__ = ["ActorPool", "memory_summary", "scheduling_strategies"]
