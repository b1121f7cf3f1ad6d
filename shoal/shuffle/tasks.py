"""The shuffle's tasks and its one actor, written against the public API.

* ``map_task`` runs ``map_fn`` on one input and returns its ``R`` blocks plus a
  small :class:`TaskInfo` (where it ran, bytes out) that the driver waits on;
  each block is stored as ``map_fn`` yields it.
* ``merge_task`` merges, for each of a few reducers, the blocks of a group of
  maps; it returns one block per reducer plus a :class:`TaskInfo`.
* ``reduce_task`` is each output's task (``reduce_generator_task`` when the
  reduce function yields several outputs).  It is submitted when ``shuffle`` is
  called, with one argument that does not exist yet: the ref of a
  ``Sources.sources(r)`` call.

``Sources`` is the *ref placeholder*: an async actor on the driver's node that
answers ``sources(r)`` only once the driver has sent ``fill(r, refs)`` with
reducer ``r``'s final blocks (or ``fail``).  So ``shuffle`` can hand out the
outputs' refs at once while its driver thread is still deciding, under
back-pressure, which maps and merges to run.  A reduce task whose argument is
not ready waits in its owner's queue and holds no worker.  The actor drops
each list as it answers, so it never keeps blocks alive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence, Sized
from dataclasses import dataclass
from typing import Any, NoReturn

import shoal

# Node losses a task survives (each loss that takes its output or kills it while
# it runs costs one); application errors are not retried.
TASK_MAX_RETRIES = 10


@dataclass(frozen=True)
class TaskInfo:
    node_id: str
    bytes_out: int


def _nbytes(blocks: Sequence[Any]) -> int:
    return sum(int(getattr(b, "nbytes", 0)) for b in blocks)


def _here() -> str:
    return shoal.get_runtime_context().get_node_id()


def _wrong_count(returned: str, num_reducers: int) -> NoReturn:
    raise ValueError(f"map_fn returned {returned} blocks for {num_reducers} reducers "
                     f"(it must return one block per reducer)")


@shoal.remote(max_retries=TASK_MAX_RETRIES)
def map_task(map_fn: Callable, partition: Any, num_reducers: int, *extra: Any) -> Iterator:
    """A generator (its caller says num_returns=R+1): each block goes to the store
    as it is yielded, so a ``map_fn`` that yields its blocks one by one holds one
    at a time, not all R."""
    blocks = map_fn(partition, num_reducers, *extra)
    if isinstance(blocks, Sized) and len(blocks) != num_reducers:  # before storing any
        _wrong_count(str(len(blocks)), num_reducers)
    count = bytes_out = 0
    for block in blocks:
        count += 1
        if count > num_reducers:
            break
        bytes_out += _nbytes([block])
        yield block
        del block
    if count != num_reducers:  # a generator (the driver fails every output either way)
        _wrong_count(f"more than {num_reducers}" if count > num_reducers else str(count),
                     num_reducers)
    yield TaskInfo(_here(), bytes_out)


@shoal.remote(max_retries=TASK_MAX_RETRIES)
def merge_task(merge_fn: Callable, group: int, *blocks: Any) -> tuple:
    """``blocks`` are reducer-major: ``group`` blocks (one per map) per reducer."""
    merged = [merge_fn(*blocks[i:i + group]) for i in range(0, len(blocks), group)]
    return (*merged, TaskInfo(_here(), _nbytes(merged)))


@shoal.remote(max_retries=TASK_MAX_RETRIES)
def reduce_task(reduce_fn: Callable, sources: list, *extra: Any) -> Any:
    blocks = shoal.get(list(sources)) if sources else []
    del sources
    return reduce_fn(*blocks, *extra)


@shoal.remote(max_retries=TASK_MAX_RETRIES)
def reduce_generator_task(reduce_fn: Callable, sources: list, *extra: Any) -> Any:
    """``reduce_task`` for a generator ``reduce_fn`` (``num_returns="dynamic"``):
    each output is stored as it is yielded."""
    blocks = shoal.get(list(sources)) if sources else []
    del sources
    yield from reduce_fn(*blocks, *extra)


class SourcesFailed(RuntimeError):
    """The shuffle's driver stopped before it gave this reducer its blocks."""


@shoal.remote(num_cpus=0)
class Sources:
    def __init__(self, num_reducers: int) -> None:
        self.lists: dict[int, list] = {}
        self.error: str | None = None
        self.ready: dict[int, asyncio.Event] = {}
        self.num_reducers = num_reducers

    def _event(self, reducer: int) -> asyncio.Event:
        if reducer not in self.ready:
            self.ready[reducer] = asyncio.Event()
        return self.ready[reducer]

    async def sources(self, reducer: int) -> list:
        await self._event(reducer).wait()
        if reducer not in self.lists:
            raise SourcesFailed(self.error or "no blocks were sent for this reducer")
        return self.lists.pop(reducer)

    async def fill(self, reducer: int, refs: list) -> None:
        self.lists[reducer] = refs  # refs inside a list argument arrive as refs
        self._event(reducer).set()

    async def fail(self, message: str) -> None:
        self.error = message
        for reducer in range(self.num_reducers):
            self._event(reducer).set()
