"""Concurrency groups of an actor (``@remote(concurrency_groups={"io": 2})``).

Each named group runs its calls apart from the others, with its own limit:

* a sync (or threaded) actor: a thread pool of ``limit`` threads per group;
* an async actor: an event loop on its own thread per group, at most ``limit``
  calls at once on it (a sync method of an async actor runs on its group's loop
  thread, so a blocked group does not block the others).

A call's group is the one named by ``.options(concurrency_group=)``, else by its
method's ``@method(concurrency_group=)``, else the default group, which is what
the executor runs without groups (main thread, ``max_concurrency`` pool or the
actor's loop).  ``_ray_system`` always exists (one thread): Ray's group for
calls that must not wait behind user calls.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from dataclasses import dataclass

from shoal.core.context import new_event_loop

SYSTEM_GROUP = "_ray_system"


@dataclass
class _GroupLoop:
    loop: asyncio.AbstractEventLoop
    semaphore: asyncio.Semaphore


class ConcurrencyGroups:
    """The groups of one actor and the threads/loops they run on (made at first use)."""

    def __init__(self, limits: dict[str, int], method_groups: dict[str, str],
                 is_async: bool) -> None:
        self.limits = {SYSTEM_GROUP: 1, **limits}
        self.method_groups = {m: g for m, g in method_groups.items() if g in self.limits}
        self.is_async = is_async
        self._pools: dict[str, concurrent.futures.ThreadPoolExecutor] = {}
        self._loops: dict[str, _GroupLoop] = {}
        self._lock = threading.Lock()

    def group_for(self, method: str, requested: str = "") -> str | None:
        """The named group a call runs in, or None for the default group."""
        name = requested or self.method_groups.get(method, "")
        return name if name in self.limits else None

    def submit(self, group: str, run: Callable[[], None]) -> None:
        """Run a sync actor's call on its group's threads."""
        with self._lock:
            pool = self._pools.get(group)
            if pool is None:
                pool = self._pools[group] = started_pool(self.limits[group],
                                                         f"shoal-group-{group}")
        pool.submit(run)

    def loop(self, group: str) -> tuple[asyncio.AbstractEventLoop, asyncio.Semaphore]:
        """An async actor's group: its event loop (running on its own thread) and the
        semaphore that bounds its calls."""
        with self._lock:
            entry = self._loops.get(group)
            if entry is None:
                entry = self._loops[group] = self._start_loop(self.limits[group], group)
        return entry.loop, entry.semaphore

    @staticmethod
    def _start_loop(limit: int, group: str) -> _GroupLoop:
        made: list[_GroupLoop] = []
        ready = threading.Event()

        def run() -> None:
            loop = new_event_loop()
            asyncio.set_event_loop(loop)
            made.append(_GroupLoop(loop, asyncio.Semaphore(limit)))
            ready.set()
            loop.run_forever()

        threading.Thread(target=run, name=f"shoal-group-{group}", daemon=True).start()
        ready.wait()
        return made[0]


def started_pool(threads: int, prefix: str) -> concurrent.futures.ThreadPoolExecutor:
    """A thread pool with all its threads running now (Ray starts a threaded actor's
    threads up front): a pool that starts them on demand grows while calls come in,
    which reads as a leak to anyone watching the process's threads.  Each thread
    waits at a barrier, so every submit finds no idle thread and starts one."""
    pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix=prefix)
    barrier = threading.Barrier(threads)

    def hold() -> None:
        try:
            barrier.wait(timeout=STARTUP_WAIT_S)
        except threading.BrokenBarrierError:
            pass  # started anyway; the pool still works with the threads it has

    for _ in range(threads):
        pool.submit(hold)
    return pool


STARTUP_WAIT_S = 10.0


def method_groups_of(cls: type) -> dict[str, str]:
    """``{method name: group}`` from the class's ``@method(concurrency_group=)``."""
    out = {}
    for name in dir(cls):
        member = getattr(cls, name, None)
        group = getattr(member, "__shoal_method_options__", {}).get("concurrency_group")
        if group:
            out[name] = group
    return out
