"""ActorPool: spread work over a fixed set of actors (Ray's ``ray.util.ActorPool``).

Each submitted call takes an idle actor, or waits in ``_pending_submits`` until one
is returned (when its result is read).  A call's result is a ref, or a list of refs
for a method with ``num_returns > 1`` (read back as a list).

``map``/``map_unordered`` submit all their values at once (eagerly) and yield
only their own results: calls submitted before them are *set aside* — their
results are dropped, and their actors rejoin the pool as soon as those calls
finish, so a slow earlier call never delays the map.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any


def _first_ref(future: Any) -> Any:
    return future[0] if isinstance(future, list) else future


def _key(future: Any) -> Any:
    return tuple(future) if isinstance(future, list) else future


class ActorPool:
    def __init__(self, actors: list) -> None:
        self._idle_actors = list(actors)
        self._future_to_actor: dict = {}  # key -> (index, actor, future)
        self._index_to_future: dict[int, Any] = {}
        self._next_task_index = 0
        self._next_return_index = 0
        self._pending_submits: list[tuple[Callable, Any]] = []
        self._set_aside: dict = {}  # key -> (actor, future): results nobody will read

    # ---- submitting ------------------------------------------------------------------
    def submit(self, fn: Callable[[Any, Any], Any], value: Any) -> None:
        """Schedule ``fn(actor, value)`` (which must return a ref, or a list of refs)
        on an idle actor, or once one is free."""
        self._reclaim(0)
        if not self._idle_actors:
            self._pending_submits.append((fn, value))
            return
        actor = self._idle_actors.pop()
        future = fn(actor, value)
        self._future_to_actor[_key(future)] = (self._next_task_index, actor, future)
        self._index_to_future[self._next_task_index] = future
        self._next_task_index += 1

    def map(self, fn: Callable, values: Iterable) -> Iterator:
        """Results of ``fn(actor, v)`` for each value, in order (submitted now)."""
        self._set_aside_in_flight()
        for value in values:
            self.submit(fn, value)
        return self._results(self.get_next)

    def map_unordered(self, fn: Callable, values: Iterable) -> Iterator:
        """Results of ``fn(actor, v)`` for each value, as they finish (submitted now)."""
        self._set_aside_in_flight()
        for value in values:
            self.submit(fn, value)
        return self._results(self.get_next_unordered)

    def _results(self, get: Callable[[], Any]) -> Iterator:
        while self.has_next():
            yield get()

    # ---- state -------------------------------------------------------------------------
    def has_next(self) -> bool:
        """Whether a submitted call's result is still to be read."""
        return bool(self._future_to_actor) or bool(self._pending_submits)

    def has_free(self) -> bool:
        return bool(self._idle_actors) and not self._pending_submits

    def pop_idle(self) -> Any:
        """Take an idle actor out of the pool (None if none is free)."""
        return self._idle_actors.pop() if self.has_free() else None

    def push(self, actor: Any) -> None:
        """Add an actor to the pool; it takes a waiting call at once if there is one."""
        busy = [entry[1] for entry in self._future_to_actor.values()]
        busy += [entry[0] for entry in self._set_aside.values()]
        if actor in self._idle_actors or actor in busy:
            raise ValueError("Actor already belongs to current ActorPool")
        self._return_actor(actor)

    # ---- reading results ----------------------------------------------------------------
    def get_next(self, timeout: float | None = None, ignore_if_timedout: bool = False) -> Any:
        """The next result in submission order."""
        import shoal

        if not self.has_next():
            raise StopIteration("No more results to get")
        if self._next_return_index >= self._next_task_index and not self._pending_submits:
            raise ValueError("It is not allowed to call get_next() after get_next_unordered().")
        index = self._next_return_index
        while index not in self._index_to_future:  # still waiting for an actor
            if not self._reclaim(timeout):
                return self._timed_out(ignore_if_timedout)
        future = self._index_to_future[index]
        ready, _ = shoal.wait([_first_ref(future)], timeout=timeout)
        if not ready:
            return self._timed_out(ignore_if_timedout)
        del self._index_to_future[index]
        self._next_return_index += 1
        _, actor, _ = self._future_to_actor.pop(_key(future))
        self._return_actor(actor)
        return shoal.get(future)

    def get_next_unordered(self, timeout: float | None = None,
                           ignore_if_timedout: bool = False) -> Any:
        """Whichever submitted result finishes first."""
        import shoal

        if not self.has_next():
            raise StopIteration("No more results to get")
        while not self._future_to_actor:  # every call waits for an actor
            if not self._reclaim(timeout):
                return self._timed_out(ignore_if_timedout)
        by_ref = {_first_ref(entry[2]): key for key, entry in self._future_to_actor.items()}
        ready, _ = shoal.wait(list(by_ref), num_returns=1, timeout=timeout)
        if not ready:
            return self._timed_out(ignore_if_timedout)
        index, actor, future = self._future_to_actor.pop(by_ref[ready[0]])
        self._index_to_future.pop(index, None)
        self._next_return_index = max(self._next_return_index, index + 1)
        self._return_actor(actor)
        return shoal.get(future)

    @staticmethod
    def _timed_out(ignore: bool) -> None:
        if ignore:
            return None
        raise TimeoutError("Timed out waiting for result")

    # ---- actors coming back -------------------------------------------------------------
    def _return_actor(self, actor: Any) -> None:
        self._idle_actors.append(actor)
        if self._pending_submits:
            fn, value = self._pending_submits.pop(0)
            self.submit(fn, value)

    def _set_aside_in_flight(self) -> None:
        for key, (index, actor, future) in list(self._future_to_actor.items()):
            self._set_aside[key] = (actor, future)
            self._index_to_future.pop(index, None)
        self._future_to_actor.clear()
        self._next_return_index = self._next_task_index

    def _reclaim(self, timeout: float | None) -> bool:
        """Return the actors of set-aside calls that finished (waiting up to ``timeout``
        for one if none has); whether any came back."""
        import shoal

        if not self._set_aside:
            return False
        refs = {_first_ref(future): key for key, (_, future) in self._set_aside.items()}
        ready, _ = shoal.wait(list(refs), num_returns=1 if timeout != 0 else len(refs),
                              timeout=timeout)
        for ref in ready:
            actor, _ = self._set_aside.pop(refs[ref])
            self._return_actor(actor)
        return bool(ready)
