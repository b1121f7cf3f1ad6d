"""How many actors are in each state, per class, and how many dead records to keep.

Why counts beside the records: ``/metrics`` exports Ray's ``ray_actors`` gauge
(``shoal_actors{State, Name}``), and a dead actor must stay counted after its
record is dropped from the actor table (the table keeps at most
``max_dead_actors`` dead records, oldest dropped first, so a long-lived cluster
that makes millions of short actors does not grow without bound).  The
control store calls :meth:`ActorCounts.moved` on every state change; nothing
here does I/O.

Example::

    counts = ActorCounts()
    counts.moved("Worker", None, ActorState.PENDING)          # created
    counts.moved("Worker", ActorState.PENDING, ActorState.ALIVE)
    counts.rows()  -> [("ALIVE", "Worker", 1), ("DEAD", "Worker", 0), ...]
"""

from __future__ import annotations

import collections
import os

from shoal.control.actor_lifecycle import ActorState

DEFAULT_MAX_DEAD_ACTORS = 100_000
# shoal's name first; Ray's (``maximum_gcs_destroyed_actor_cached_count``) is honoured
# so a program tuned for Ray keeps its bound
MAX_DEAD_ACTORS_ENV = ("SHOAL_MAX_DEAD_ACTORS", "RAY_maximum_gcs_destroyed_actor_cached_count")


def max_dead_actors_from_env(env: dict | None = None) -> int:
    """The bound on dead actor records; a bad value is an error naming the variable."""
    env = os.environ if env is None else env
    for name in MAX_DEAD_ACTORS_ENV:
        raw = env.get(name)
        if raw is None or raw == "":
            continue
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{name} must be an integer number of dead actors to keep, "
                             f"got {raw!r}") from None
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
        return value
    return DEFAULT_MAX_DEAD_ACTORS


class ActorCounts:
    """Actors per (state, class name): live states follow the records; DEAD only grows
    (a dropped dead record stays counted)."""

    def __init__(self) -> None:
        self.by_state: collections.Counter[tuple[ActorState, str]] = collections.Counter()
        self.class_names: set[str] = set()

    def moved(self, class_name: str, was: ActorState | None, new: ActorState) -> None:
        """An actor of ``class_name`` went from ``was`` (None: it was just created)
        to ``new``."""
        self.class_names.add(class_name)
        if was is not None:
            self.by_state[(was, class_name)] -= 1
        self.by_state[(new, class_name)] += 1

    def rows(self) -> list[tuple[str, str, int]]:
        """``(state, class name, count)`` for every state of every class seen, zeros
        included (a gauge that drops a series would leave scrapers its last value)."""
        return [(state.value, name, self.by_state[(state, name)])
                for name in sorted(self.class_names) for state in ActorState]


class DeadActorLog:
    """The order actors died in, to drop the oldest dead records past the bound."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.order: collections.deque[str] = collections.deque()

    def died(self, actor_id: str) -> list[str]:
        """Record a death; returns the actor ids whose records should be dropped now
        (the caller keeps any it still needs, e.g. one holding its name)."""
        self.order.append(actor_id)
        out = []
        while len(self.order) > self.limit:
            out.append(self.order.popleft())
        return out
