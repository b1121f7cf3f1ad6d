"""Utilities with Ray's paths: ``shoal.util.ActorPool``, scheduling strategies."""

from shoal.util import scheduling_strategies as scheduling_strategies
from shoal.util.actor_pool import ActorPool as ActorPool

__all__ = ["ActorPool", "scheduling_strategies"]
