"""Where a map runs: ``compute=`` / ``concurrency=`` / resource arguments to a
stage's settings.  Functions run as tasks; callable classes on a pool of
actors, constructed once per actor (Ray's rule)."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from shoal.data.plan import Compute


@dataclass(frozen=True)
class ActorPoolStrategy:
    """Ray's ``ActorPoolStrategy``: ``size`` actors, or between ``min_size`` and
    ``max_size`` (no max: as many as the CPUs allow), autoscaled (actor_pool.py)."""

    size: int | None = None
    min_size: int | None = None
    max_size: int | None = None

    def concurrency(self) -> Any:
        if self.size:
            return int(self.size)
        low = int(self.min_size or 1)
        return (low, None if self.max_size is None else max(low, int(self.max_size)))


@dataclass(frozen=True)
class TaskPoolStrategy:
    size: int | None = None


@dataclass(frozen=True)
class MapSettings:
    compute: Compute
    concurrency: Any
    remote_args: dict


def _check_concurrency(concurrency: Any, what: str) -> Any:
    if concurrency is None:
        return None
    if isinstance(concurrency, tuple) and 2 <= len(concurrency) <= 3 and all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in concurrency):
        low, high = concurrency[0], concurrency[1]
        if low > high or (len(concurrency) == 3 and not low <= concurrency[2] <= high):
            raise ValueError(f"{what}: concurrency (min, max[, initial]) needs min <= "
                             f"initial <= max, got {concurrency!r}")
        return concurrency
    if isinstance(concurrency, int) and not isinstance(concurrency, bool) and concurrency >= 1:
        return concurrency
    raise ValueError(f"{what}: concurrency must be an int >= 1 or a (min, max) tuple, got "
                     f"{concurrency!r}")


def map_settings(what: str, fn: Any, compute: Any, concurrency: Any, num_cpus: Any,
                 num_gpus: Any, remote_args: dict) -> MapSettings:
    concurrency = _check_concurrency(concurrency, what)
    args = dict(remote_args)
    for name, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus)):
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{what}: {name} must be a number >= 0, got {value!r}")
            args[name] = value
    is_class = inspect.isclass(fn)
    if isinstance(compute, ActorPoolStrategy):
        return MapSettings(Compute.ACTORS, compute.concurrency(), args)
    if isinstance(compute, TaskPoolStrategy):
        if is_class:
            raise ValueError(f"{what}: a callable class needs actors, not TaskPoolStrategy")
        return MapSettings(Compute.TASKS, compute.size or concurrency, args)
    if compute not in (None, "tasks", "actors"):
        raise ValueError(f"{what}: compute must be ActorPoolStrategy(...), "
                         f"TaskPoolStrategy(...) or None, got {compute!r}")
    if is_class or compute == "actors":
        return MapSettings(Compute.ACTORS, concurrency or 1, args)
    return MapSettings(Compute.TASKS, concurrency, args)
