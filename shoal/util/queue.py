"""A first-in first-out queue shared by tasks and actors (Ray's ``ray.util.queue``).

The items live in one async actor holding an :class:`asyncio.Queue`; a
:class:`Queue` is a handle on it and can be passed to tasks and actors.  A
blocking ``put``/``get`` waits inside the actor (an awaited call, so other
callers proceed meanwhile), its ``timeout`` counted there; ``Full``/``Empty``
come back as the caller's exceptions.

    q = Queue(maxsize=10)
    q.put(1)
    q.get(timeout=1.0)
"""

from __future__ import annotations

import asyncio
import queue as _stdlib_queue
from collections.abc import Iterable
from typing import Any

import shoal


class Empty(_stdlib_queue.Empty):
    """``get`` found no item (non-blocking, or none came within the timeout)."""


class Full(_stdlib_queue.Full):
    """``put`` found no room (non-blocking, or none freed within the timeout)."""


class _QueueActor:
    """The actor that holds the items; its methods answer ``("ok", value)`` or
    ``("empty"|"full", None)`` so the caller raises its own exception type."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.queue: asyncio.Queue = asyncio.Queue(maxsize)

    def qsize(self) -> int:
        return self.queue.qsize()

    def empty(self) -> bool:
        return self.queue.empty()

    def full(self) -> bool:
        return self.queue.full()

    async def put(self, item: Any, timeout: float | None = None) -> tuple:
        try:
            await asyncio.wait_for(self.queue.put(item), timeout)
        except TimeoutError:
            return ("full", None)
        return ("ok", None)

    async def get(self, timeout: float | None = None) -> tuple:
        try:
            return ("ok", await asyncio.wait_for(self.queue.get(), timeout))
        except TimeoutError:
            return ("empty", None)

    def put_nowait(self, item: Any) -> tuple:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            return ("full", None)
        return ("ok", None)

    def put_nowait_batch(self, items: list) -> tuple:
        if self.maxsize > 0 and len(items) + self.qsize() > self.maxsize:
            return ("full", None)
        for item in items:
            self.queue.put_nowait(item)
        return ("ok", None)

    def get_nowait(self) -> tuple:
        try:
            return ("ok", self.queue.get_nowait())
        except asyncio.QueueEmpty:
            return ("empty", None)

    def get_nowait_batch(self, num_items: int) -> tuple:
        if num_items > self.qsize():
            return ("empty", None)
        return ("ok", [self.queue.get_nowait() for _ in range(num_items)])


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout < 0):
        raise ValueError(f"'timeout' must be a non-negative number or None, got {timeout!r}")


def _unwrap(reply: tuple, what: str) -> Any:
    status, value = reply
    if status == "full":
        raise Full(what)
    if status == "empty":
        raise Empty(what)
    return value


class Queue:
    """A queue whose items live in an actor.

    ``maxsize <= 0`` means unbounded.  ``actor_options`` are passed to the
    actor's ``.options()`` (e.g. ``{"num_cpus": 0}``, which is the default)."""

    def __init__(self, maxsize: int = 0, hint_type_actor_options: Any = None,
                 actor_options: dict | None = None) -> None:
        if not isinstance(maxsize, int):
            raise TypeError(f"Queue: maxsize must be an int, got {maxsize!r}")
        options = {"num_cpus": 0, **(actor_options or {})}
        self.maxsize = maxsize
        self.actor = shoal.remote(_QueueActor).options(**options).remote(maxsize)

    def __len__(self) -> int:
        return self.size()

    def size(self) -> int:
        """The number of items in the queue."""
        return shoal.get(self.actor.qsize.remote())

    def qsize(self) -> int:
        return self.size()

    def empty(self) -> bool:
        return shoal.get(self.actor.empty.remote())

    def full(self) -> bool:
        return shoal.get(self.actor.full.remote())

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Add ``item``; if the queue is full, wait up to ``timeout`` seconds (forever
        if None) for room when ``block``, else raise :class:`Full` at once."""
        _check_timeout(timeout)
        if not block:
            return self.put_nowait(item)
        _unwrap(shoal.get(self.actor.put.remote(item, timeout)), "the queue is full")

    async def put_async(self, item: Any, block: bool = True,
                        timeout: float | None = None) -> None:
        _check_timeout(timeout)
        if not block:
            _unwrap(await self.actor.put_nowait.remote(item), "the queue is full")
            return
        _unwrap(await self.actor.put.remote(item, timeout), "the queue is full")

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return an item; if there is none, wait up to ``timeout`` seconds
        (forever if None) when ``block``, else raise :class:`Empty` at once."""
        _check_timeout(timeout)
        if not block:
            return self.get_nowait()
        return _unwrap(shoal.get(self.actor.get.remote(timeout)), "the queue is empty")

    async def get_async(self, block: bool = True, timeout: float | None = None) -> Any:
        _check_timeout(timeout)
        if not block:
            return _unwrap(await self.actor.get_nowait.remote(), "the queue is empty")
        return _unwrap(await self.actor.get.remote(timeout), "the queue is empty")

    def put_nowait(self, item: Any) -> None:
        _unwrap(shoal.get(self.actor.put_nowait.remote(item)), "the queue is full")

    def put_nowait_batch(self, items: Iterable) -> None:
        """Add all of ``items`` or, if they do not all fit, none (raises :class:`Full`)."""
        if not isinstance(items, Iterable):
            raise TypeError("put_nowait_batch: items must be an iterable")
        _unwrap(shoal.get(self.actor.put_nowait_batch.remote(list(items))),
                "the queue has no room for all the items")

    def get_nowait(self) -> Any:
        return _unwrap(shoal.get(self.actor.get_nowait.remote()), "the queue is empty")

    def get_nowait_batch(self, num_items: int) -> list:
        """Remove ``num_items`` items, or none if there are fewer (raises :class:`Empty`)."""
        if not isinstance(num_items, int) or num_items < 0:
            raise ValueError(f"get_nowait_batch: num_items must be an int >= 0, "
                             f"got {num_items!r}")
        return _unwrap(shoal.get(self.actor.get_nowait_batch.remote(num_items)),
                       f"the queue has fewer than {num_items} items")

    def shutdown(self, force: bool = False, grace_period_s: int = 5) -> None:
        """End the queue's actor: at once if ``force``, else after the calls already
        sent to it (then killed if not gone within ``grace_period_s``)."""
        if self.actor is None:
            return
        if force:
            shoal.kill(self.actor, no_restart=True)
        else:
            done = self.actor.__ray_terminate__.remote()
            ready, _ = shoal.wait([done], timeout=grace_period_s)
            if not ready:
                shoal.kill(self.actor, no_restart=True)
        self.actor = None


__all__ = ["Empty", "Full", "Queue"]
