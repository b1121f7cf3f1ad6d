"""Refs produced by generator tasks.

``num_returns="streaming"``: ``.remote()`` returns an :class:`ObjectRefGenerator`
at once; each ``next()`` blocks until the task has yielded that item and
returns its ref.  ``num_returns="dynamic"``: the task's single ref resolves,
once the task finishes, to a :class:`DynamicObjectRefGenerator` of all refs.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any


class ObjectRefGenerator:
    def __init__(self, state: Any, worker: Any, completion: Any = None) -> None:
        self._state = state
        self._worker = worker
        self._completion = completion  # ready when the task ends (its error if it failed)
        self._next_index = 1
        self._ended = False  # next() raised StopIteration

    def __iter__(self) -> ObjectRefGenerator:
        return self

    def __next__(self) -> Any:
        return self._next(None)

    def _next(self, timeout: float | None) -> Any:
        if self.next_wont_block():
            ref = self._state.wait_for_item(self._next_index, timeout)
        else:  # a task waiting for the stream lends its CPU, as a blocked get does
            self._worker.set_blocked(True)
            try:
                ref = self._state.wait_for_item(self._next_index, timeout)
            finally:
                self._worker.set_blocked(False)
        if ref is None:
            self._ended = True
            raise StopIteration
        self._next_index += 1
        if self._state.backpressure:  # the paused task may go on
            self._worker.post(self._state.on_consumed, self._next_index - 1)
        return ref

    def __del__(self) -> None:
        state = getattr(self, "_state", None)
        if state is not None and state.backpressure and not state.released:
            try:  # nobody can consume any more: a paused task must not wait for ever
                self._worker.post(state.release)
            except Exception:  # interpreter shutdown
                pass

    def __aiter__(self) -> ObjectRefGenerator:
        return self

    async def __anext__(self) -> Any:
        # StopIteration cannot cross a future: the end comes back as None
        ref = await asyncio.get_running_loop().run_in_executor(None, self._next_or_none)
        if ref is None:
            raise StopAsyncIteration
        return ref

    def _next_or_none(self) -> Any:
        try:
            return self._next(None)
        except StopIteration:
            return None

    def completed(self) -> Any:
        """A ref that is ready once the task has ended: ``get`` of it gives None, or
        raises the task's error (a worker crash, a cancel, an exception it raised)."""
        return self._completion

    @property
    def _generator_ref(self) -> Any:  # Ray's name of the same ref
        return self._completion

    def is_finished(self) -> bool:
        """Whether the task has ended and every item (an error included) was taken:
        next() would raise StopIteration (Ray's meaning)."""
        state = self._state
        return self._ended or (state.finished_count is not None
                               and self._next_index > state.finished_count)

    def next_ready(self) -> bool:
        """Whether next() would return a ref at once."""
        return self._next_index in self._state.items

    def next_wont_block(self) -> bool:
        """Would next() return (or stop) at once? (what wait() calls ready)"""
        state = self._state
        return self._next_index in state.items or (
            state.finished_count is not None and self._next_index > state.finished_count)

    def task_id(self) -> str:
        """The hex id of the generator's task (a str with Ray's ``hex()``/``binary()``)."""
        from shoal.api.id_types import HexId

        return HexId(self._state.task_id.hex())

    def __repr__(self) -> str:
        return f"ObjectRefGenerator(task={self._state.task_id.hex()})"


WAIT_POLL_S = 0.005


def wait_with_generators(items: list, num_returns: int, timeout: float | None,
                         wait_refs) -> tuple[list, list]:
    """``wait`` over refs and streaming generators (Ray accepts both): polls, as a
    generator's readiness is its next item's."""
    import time

    deadline = None if timeout is None else time.monotonic() + timeout
    refs = [r for r in items if type(r) is not ObjectRefGenerator]
    while True:
        ready_refs = set(wait_refs(refs, 0)[0]) if refs else set()
        ready = [r for r in items if (r.next_wont_block() if type(r) is ObjectRefGenerator
                                      else r in ready_refs)]
        if len(ready) >= num_returns or (deadline is not None
                                         and time.monotonic() >= deadline):
            ready = ready[:num_returns]
            return ready, [r for r in items if r not in ready]
        time.sleep(WAIT_POLL_S)


class DynamicObjectRefGenerator:
    """The refs a ``num_returns="dynamic"`` task yielded.  Iterating hands each ref
    over and forgets it (Ray's): an item the program consumed and dropped is freed
    even while the generator object lives; ``len`` counts the refs not taken yet."""

    def __init__(self, refs: list) -> None:
        self._refs = collections.deque(refs)

    def __iter__(self):
        while self._refs:
            yield self._refs.popleft()

    def __len__(self) -> int:
        return len(self._refs)

    def peek(self) -> list:
        """The refs not taken yet, without taking them (``get`` of the generator)."""
        return list(self._refs)


# Ray's older name
StreamingObjectRefGenerator = ObjectRefGenerator
