"""ActorGroup (Ray's deprecated ``ray.util.actor_group.ActorGroup``): N actors of one
class, started together, a method called on all of them at once.

``group.method.remote(*args)`` calls ``method`` on every member and returns the
list of refs in member order.  ``get_actor_metadata()``, if the class has it, is
called once per member at start and kept as that member's ``metadata``.  Kept for
programs written against it; new code should use ``shoal.util.multiprocessing``
(stateless work) or ``Dataset.map_batches`` with an actor pool (stateful work).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import shoal

log = logging.getLogger("shoal.util")

DEPRECATION = ("ActorGroup is deprecated. For stateless/task processing, use "
               "ray.util.multiprocessing (shoal.util.multiprocessing); for stateful/actor "
               "processing such as batch prediction, use "
               "Dataset.map_batches(compute=ActorPoolStrategy, ...).")
GET_TIMEOUT_S = 300  # starting members (their metadata) never waits for ever


@dataclass
class Member:
    """One actor of the group and what its ``get_actor_metadata()`` said (or None)."""

    actor: Any
    metadata: Any = None


class _GroupMethod:
    def __init__(self, group: ActorGroup, name: str) -> None:
        self._group = group
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"ActorGroup methods cannot be called directly: use "
                        f"group.{self._name}.remote(...) instead of group.{self._name}(...)")

    def remote(self, *args: Any, **kwargs: Any) -> list:
        """Call the method on every member; the refs of their results, in order."""
        return [getattr(m.actor, self._name).remote(*args, **kwargs)
                for m in self._group.actors]


class ActorGroup:
    def __init__(self, actor_cls: type, num_actors: int = 1, num_cpus_per_actor: float = 1,
                 num_gpus_per_actor: float = 0,
                 resources_per_actor: dict[str, float] | None = None,
                 init_args: tuple | None = None, init_kwargs: dict | None = None) -> None:
        warnings.warn(DEPRECATION, DeprecationWarning, stacklevel=2)
        if not isinstance(num_actors, int) or num_actors < 1:
            raise ValueError(f"ActorGroup: num_actors must be a positive int, got {num_actors!r}")
        for name, value in (("num_cpus_per_actor", num_cpus_per_actor),
                            ("num_gpus_per_actor", num_gpus_per_actor)):
            if value < 0:
                raise ValueError(f"ActorGroup: {name} must be >= 0, got {value!r}")
        self.num_actors = num_actors
        self._methods = {n for n in dir(actor_cls) if not n.startswith("_")}
        self._has_metadata = callable(getattr(actor_cls, "get_actor_metadata", None))
        self._init_args = tuple(init_args or ())
        self._init_kwargs = dict(init_kwargs or {})
        self._remote_cls = shoal.remote(actor_cls).options(
            num_cpus=num_cpus_per_actor, num_gpus=num_gpus_per_actor,
            resources=resources_per_actor)
        self.actors: list[Member] = []
        self.start()

    # ---- members ---------------------------------------------------------------------
    def start(self) -> None:
        """Start the group's ``num_actors`` actors (again, after ``shutdown``)."""
        if self.actors:
            raise RuntimeError("this ActorGroup is already started: shutdown() it first")
        self.add_actors(self.num_actors)

    def add_actors(self, num_actors: int) -> None:
        """Start ``num_actors`` more members."""
        handles = [self._remote_cls.remote(*self._init_args, **self._init_kwargs)
                   for _ in range(num_actors)]
        metadata: list = [None] * len(handles)
        if self._has_metadata:
            metadata = shoal.get([h.get_actor_metadata.remote() for h in handles],
                                 timeout=GET_TIMEOUT_S)
        self.actors += [Member(h, m) for h, m in zip(handles, metadata, strict=True)]

    def remove_actors(self, actor_indexes: list[int]) -> None:
        """Leave out the members at these indexes (they are not killed)."""
        gone = set(actor_indexes)
        self.actors = [m for i, m in enumerate(self.actors) if i not in gone]

    def shutdown(self, patience_s: float = 5) -> None:
        """End every member: gracefully (``__ray_terminate__``) for up to
        ``patience_s`` seconds, then by kill; at once by kill if ``patience_s <= 0``."""
        members, self.actors = self.actors, []
        if patience_s > 0:
            ends = [m.actor.__ray_terminate__.remote() for m in members]
            _, late = shoal.wait(ends, num_returns=len(ends), timeout=patience_s)
            if not late:
                return
            log.debug("ActorGroup: %d members did not end in %g s: killing them",
                      len(late), patience_s)
        for m in members:
            shoal.kill(m.actor)

    @property
    def actor_metadata(self) -> list:
        return [m.metadata for m in self.actors]

    def __len__(self) -> int:
        return len(self.actors)

    def __getitem__(self, index: int) -> Member:
        return self.actors[index]

    def __getattr__(self, name: str) -> _GroupMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        if not self.__dict__.get("actors"):
            raise RuntimeError(f"this ActorGroup has no actors (shut down?): cannot call "
                               f"{name!r}; start() it again first")
        if name not in self._methods:
            raise AttributeError(f"the actors of this ActorGroup have no method {name!r}")
        return _GroupMethod(self, name)
