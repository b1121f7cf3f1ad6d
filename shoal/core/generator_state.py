"""The owner's record of a generator task's items (streaming or dynamic).

Items arrive as GENERATOR_ITEM messages on the loop thread and are taken with
``next()`` from user threads (``wait_for_item``).  Back-pressure pauses the
executor's yields: its item's reply is held while too many items are untaken.
A retry or a rebuild yields the items again: ``lost`` says which of those the
owner stores (task_manager.py ``handle_generator_item``).
"""

from __future__ import annotations

import asyncio
import threading

from shoal import exceptions
from shoal.api.object_ref import ObjectRef


class GeneratorState:
    """Refs produced so far by a streaming task; consumed from user threads."""

    def __init__(self, task_id: bytes, backpressure: int = 0) -> None:
        self.task_id = task_id
        self.items: dict[int, ObjectRef] = {}
        self.finished_count: int | None = None
        # Loop side: items (indexes) whose every copy was lost, or whose value was
        # freed, that a reader needs again while the task has not finished: the next
        # run's yield of each is stored (recovery.py); other repeats are ignored.
        self.lost: set[int] = set()
        self.cond = threading.Condition()
        # Back-pressure (loop side): the executor waits for our reply to an item while
        # ``index - consumed >= backpressure``; ``released`` once nobody can consume.
        self.backpressure = backpressure
        self.consumed = 0
        self.released = False
        self.paused: list[tuple[int, asyncio.Future]] = []

    def hold_reply(self, index: int) -> asyncio.Future | None:
        """Loop: a future to answer item ``index`` with, or None to answer at once."""
        if not self._holds(index):
            return None
        fut = asyncio.get_running_loop().create_future()
        self.paused.append((index, fut))
        return fut

    def on_consumed(self, count: int) -> None:
        """Loop: the caller has taken ``count`` items with next()."""
        self.consumed = max(self.consumed, count)
        self._resume()

    def release(self) -> None:
        """Loop: the generator is gone (or the task ended): never pause again."""
        self.released = True
        self._resume()

    def _holds(self, index: int) -> bool:
        return (self.backpressure > 0 and not self.released
                and index - self.consumed >= self.backpressure)

    def _resume(self) -> None:
        still = []
        for index, fut in self.paused:
            if self._holds(index):
                still.append((index, fut))
            elif not fut.done():
                fut.set_result(None)
        self.paused = still

    def wait_for_item(self, index: int, timeout: float | None) -> ObjectRef | None:
        """User thread: the ref of item ``index`` once yielded, None once the task
        ended before it; GetTimeoutError after ``timeout`` seconds."""
        with self.cond:
            ok = self.cond.wait_for(
                lambda: index in self.items or (
                    self.finished_count is not None and index > self.finished_count),
                timeout,
            )
            if not ok:
                raise exceptions.GetTimeoutError("timed out waiting for the next generator item")
            ref = self.items.get(index)
            if ref is not None:  # taken: the caller's ref alone keeps the item (Ray's), the
                self.items[index] = ref.object_id  # state keeps its id (retries, lineage know it)
            return ref

    def add(self, index: int, ref: ObjectRef) -> None:
        with self.cond:
            if index not in self.items:
                self.items[index] = ref
            self.cond.notify_all()

    def finish(self, count: int) -> None:
        with self.cond:
            self.finished_count = count
            self.cond.notify_all()

    def item_ids(self) -> list[bytes]:
        return [r if isinstance(r, bytes) else r.object_id for r in self.items.values()]

    def for_lineage(self) -> GeneratorState:
        """The finished state as a lineage entry keeps it: item ids, not refs (refs
        there would keep the items alive as long as the entry, which lives as
        long as the items).  A rebuild's items are recognised by their index."""
        kept = GeneratorState(self.task_id)
        kept.items = dict(zip(self.items, self.item_ids(), strict=True))
        kept.finished_count = self.finished_count
        return kept
