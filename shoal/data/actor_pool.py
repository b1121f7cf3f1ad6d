"""A map stage's pool of actors and when it grows or shrinks: Ray Data's
``concurrency=(min, max)`` (or ``(min, max, initial)``; an int n is a fixed
pool of n) for callable classes.  Pure: the executor makes and kills the
actors and tells the scheduler the pool's capacity (``Schedule.resize``).

* The pool starts with ``initial`` actors (default ``min``).  Its capacity is
  ``per_actor`` calls in flight per actor (one running, one queued behind it).
* It **grows** by one actor when its stage is saturated (every slot taken)
  while inputs wait, up to ``max``, if the cluster has the new actor's
  resources free (the executor checks; an actor nobody can place would hold
  the calls given to it).
* It **shrinks** to ``min`` once its stage can get no more input: idle actors
  are killed, so their CPUs go to the stages after it.  While more input may
  come, idle actors stay (making one again costs its constructor).

::

    saturated and inputs waiting, below max, room -> grow(): one more actor
    no input waiting and none to come             -> idle_beyond_min(): kill
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class PoolActor:
    handle: Any
    in_flight: int = 0  # calls sent and not finished


def pool_bounds(concurrency: Any, default_size: int) -> tuple[int, int, int]:
    """(min, max, initial) from a stage's ``concurrency``; None: a fixed pool of
    ``default_size``; a max of None (``ActorPoolStrategy(min_size=)``): as many
    as ``default_size`` (the CPUs an actor's share allows)."""
    if concurrency is None:
        return default_size, default_size, default_size
    if isinstance(concurrency, int):
        return concurrency, concurrency, concurrency
    low, high = concurrency[0], concurrency[1]
    high = max(low, default_size) if high is None else high
    initial = concurrency[2] if len(concurrency) == 3 else low
    return low, high, initial


@dataclass
class ActorPool:
    min_size: int
    max_size: int
    per_actor: int
    actors: list[PoolActor] = field(default_factory=list)

    @property
    def capacity(self) -> int:
        """Calls in flight the scheduler may give this pool."""
        return len(self.actors) * self.per_actor

    @property
    def autoscaling(self) -> bool:
        return self.min_size != self.max_size

    def pick(self) -> PoolActor:
        return min(self.actors, key=lambda a: a.in_flight)

    def should_grow(self, waiting: bool, running: int) -> bool:
        return waiting and running >= self.capacity and len(self.actors) < self.max_size

    def idle_beyond_min(self) -> list[PoolActor]:
        idle = [a for a in self.actors if a.in_flight == 0]
        return idle[:max(0, len(self.actors) - self.min_size)]

    def remove(self, actor: PoolActor) -> None:
        self.actors.remove(actor)
