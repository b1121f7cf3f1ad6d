"""Ray's ``ray.actor`` path."""

from shoal.api.actor import ActorClass as ActorClass
from shoal.api.actor import ActorClassInheritanceException as ActorClassInheritanceException
from shoal.api.actor import ActorHandle as ActorHandle
from shoal.api.actor import ActorMethod as ActorMethod
from shoal.api.actor import method as method
from shoal.api.actor_exit import exit_actor as exit_actor

__all__ = ["ActorClass", "ActorClassInheritanceException", "ActorHandle", "ActorMethod",
           "exit_actor", "method"]
