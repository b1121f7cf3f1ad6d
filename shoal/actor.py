"""Ray's ``ray.actor`` path."""

from shoal.api.actor import ActorClass as ActorClass
from shoal.api.actor import ActorHandle as ActorHandle
from shoal.api.actor import ActorMethod as ActorMethod
from shoal.api.actor import method as method

__all__ = ["ActorClass", "ActorHandle", "ActorMethod", "method"]
