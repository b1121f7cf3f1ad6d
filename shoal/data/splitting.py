"""``split`` (materialized pieces) and ``streaming_split`` (iterators over one
streaming run, for several consumers).

streaming_split runs the dataset inside a coordinator actor (a threaded
actor with one thread per consumer and one spare): each consumer asks it for
its next block and gets the block's ref (a borrowed ref: the block moves
straight from where it was made to the consumer, never through the actor).
Each iteration is an epoch: it starts when all ``n`` consumers have asked
(Ray's barrier), so every epoch runs the dataset once for all of them.
``equal=True`` cuts each block into ``n`` equal slices and keeps the rows
left over to share out at the end, dropping fewer than ``n`` rows.

``locality_hints`` (a node id per consumer, Ray's argument): without
``equal``, a consumer is given a block made on its node when one is waiting
or comes next; blocks for other nodes wait in a buffer of at most ``2 n``
(Ray's bound), and when it is full or the run is over the oldest goes to
whoever asks (a miss).  With ``equal`` every consumer gets a slice of every
block, so the hints change nothing.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import pyarrow as pa

import shoal
from shoal.data import locality
from shoal.data.block import BlockMetadata, compact, concat, metadata_of
from shoal.data.executor import RefBundle, StreamingExecutor
from shoal.data.iterator import DataIterator
from shoal.data.plan import InputData

EPOCH_BARRIER_TIMEOUT_S = 600.0


def _slice_ranges(ranges: list[tuple[int, int]], *blocks: pa.Table
                  ) -> tuple[pa.Table, BlockMetadata]:
    """Rows ``ranges[i]`` of ``blocks[i]``, as one block."""
    out = compact(concat([b.slice(a, z - a) for b, (a, z) in zip(blocks, ranges, strict=False)]))
    return out, metadata_of(out)


_remote_slice = shoal.remote(num_returns=2, max_retries=3)(_slice_ranges)


def _check_n(n: Any, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{what}: n must be an int >= 1, got {n!r}")
    return n


def split(materialized: Any, n: int, equal: bool,
          locality_hints: list | None = None) -> list[Any]:
    """``n`` pieces of rows (sizes differ by at most one row; ``equal``: equal,
    the rest dropped); with ``locality_hints`` (an actor per piece) each piece
    is made of the blocks on its actor's node first (locality.py).  The pieces
    are datasets of ``materialized``'s own class."""
    n = _check_n(n, "split")
    hints = None if locality_hints is None else locality.check_hints(locality_hints, n)
    bundles = materialized.bundles()
    rows = [b.metadata.num_rows for b in bundles]
    total = sum(rows)
    if equal:
        quotas = [total // n] * n
    else:
        quotas = [total // n + (1 if i < total % n else 0) for i in range(n)]
    if hints is None:
        spans = locality.assign(rows, quotas)
    else:
        spans = locality.assign(rows, quotas, locality.block_nodes([b.ref for b in bundles]),
                                locality.actor_nodes(hints))
    pieces: list[list[tuple[Any, Any]]] = []
    pending: list[Any] = []  # metadata refs of slices, resolved together
    for piece in spans:
        blocks = []
        for span in piece:
            b = bundles[span.block]
            if span.start == 0 and span.end == b.metadata.num_rows:
                blocks.append((b.ref, b.metadata))
            else:
                ref, meta_ref = _remote_slice.remote([(span.start, span.end)], b.ref)
                blocks.append((ref, None))
                pending.append(meta_ref)
        pieces.append(blocks)
    metas = iter(shoal.get(pending)) if pending else iter(())
    out = []
    for blocks in pieces:
        resolved = [(r, m if m is not None else next(metas)) for r, m in blocks]
        out.append(type(materialized)(InputData(refs=tuple(r for r, _ in resolved),
                                                metadata=tuple(m for _, m in resolved),
                                                name="Split")))
    return out


class SplitCoordinator:
    """Runs one dataset per epoch and deals its blocks to ``n`` consumers."""

    def __init__(self, op: Any, n: int, equal: bool,
                 locality_hints: list[str] | None = None) -> None:
        self.op, self.n, self.equal = op, n, equal
        self.hints = None if equal else locality_hints
        self.waiting: deque[tuple[Any, BlockMetadata]] = deque()  # blocks held for a node
        self.hits = self.misses = 0
        self.cond = threading.Condition()
        self.epoch = -1
        self.arrived: set[int] = set()
        self.queues: list[deque] = [deque() for _ in range(n)]
        self.stream: Any = None
        self.carry: list[tuple[Any, int, int]] = []
        self.exhausted = True
        self.rows_given = [0] * n

    def start_epoch(self, split: int) -> int:
        with self.cond:
            target = self.epoch + 1
            self.arrived.add(split)
            if len(self.arrived) == self.n:
                self._new_epoch()
            elif not self.cond.wait_for(lambda: self.epoch >= target,
                                        timeout=EPOCH_BARRIER_TIMEOUT_S):
                raise TimeoutError(f"streaming_split: only {len(self.arrived)} of {self.n} "
                                   f"consumers started epoch {target}")
            return self.epoch

    def _new_epoch(self) -> None:
        if self.stream is not None:
            self.stream.close()
        self.stream = StreamingExecutor(self.op).start().outputs()
        self.queues = [deque() for _ in range(self.n)]
        self.waiting.clear()
        self.carry, self.exhausted, self.rows_given = [], False, [0] * self.n
        self.arrived.clear()
        self.epoch += 1
        self.cond.notify_all()

    def next(self, split: int, epoch: int) -> list | None:
        """``[block ref, metadata]`` for ``split``, or None when its part is done."""
        with self.cond:
            if epoch != self.epoch:
                return None
            if self.hints is not None:
                return self._next_local(split)
            while not self.queues[split] and not self.exhausted:
                self._pull(split)
            if self.queues[split]:
                return list(self.queues[split].popleft())
            return None

    def _next_local(self, split: int) -> list | None:
        """A block made on ``split``'s node if one is waiting or comes before the
        buffer is full, else the oldest waiting one."""
        node = self.hints[split]  # type: ignore[index]
        while True:
            for i, (_, meta) in enumerate(self.waiting):
                if meta.node_id == node:
                    self.hits += 1
                    ref, meta = self.waiting[i]
                    del self.waiting[i]
                    return [ref, meta]
            if self.exhausted:
                return self._leftover(split)
            if len(self.waiting) >= 2 * self.n:
                self.misses += 1
                return list(self.waiting.popleft())
            bundle = next(self.stream, None)
            if bundle is None:
                self.exhausted = True
            else:
                self.waiting.append((bundle.ref, bundle.metadata))

    def _leftover(self, split: int) -> list | None:
        """After the run: a waiting block no other consumer is hinted to (those
        wait for their consumer, who asks until it gets None)."""
        others = {h for j, h in enumerate(self.hints or ()) if j != split}
        for i, (_, meta) in enumerate(self.waiting):
            if meta.node_id not in others:
                self.misses += 1
                ref, meta = self.waiting[i]
                del self.waiting[i]
                return [ref, meta]
        return None

    def locality(self) -> tuple[int, int]:
        """(hits, misses) of the blocks given out under ``locality_hints``."""
        with self.cond:
            return self.hits, self.misses

    def _pull(self, split: int) -> None:
        bundle = next(self.stream, None)
        if bundle is None:
            self.exhausted = True
            if self.equal:
                self._share_carry()
            return
        if not self.equal:
            self.queues[split].append((bundle.ref, bundle.metadata))
            return
        rows = bundle.metadata.num_rows
        per = rows // self.n
        if per:
            for j in range(self.n):
                self._give(j, [(bundle.ref, j * per, (j + 1) * per)])
        if rows > per * self.n:
            self.carry.append((bundle.ref, per * self.n, rows))

    def _give(self, j: int, ranges: list[tuple[Any, int, int]]) -> None:
        ref, meta_ref = _remote_slice.remote([(a, z) for _, a, z in ranges],
                                             *[r for r, _, _ in ranges])
        self.queues[j].append((ref, shoal.get(meta_ref)))

    def _share_carry(self) -> None:
        total = sum(z - a for _, a, z in self.carry)
        per = total // self.n
        flat = [(r, i) for r, a, z in self.carry for i in range(a, z)]
        for j in range(self.n if per else 0):
            rows = flat[j * per:(j + 1) * per]
            ranges: list[tuple[Any, int, int]] = []
            for r, i in rows:
                if ranges and ranges[-1][0] is r and ranges[-1][2] == i:
                    ranges[-1] = (r, ranges[-1][1], i + 1)
                else:
                    ranges.append((r, i, i + 1))
            self._give(j, ranges)
        self.carry = []


class _SplitSource:
    def __init__(self, coordinator: Any, split: int) -> None:
        self.coordinator, self.split = coordinator, split

    def bundles(self):
        epoch = shoal.get(self.coordinator.start_epoch.remote(self.split))
        while True:
            got = shoal.get(self.coordinator.next.remote(self.split, epoch))
            if got is None:
                return
            yield RefBundle(got[0], got[1])

    def stop(self) -> None:
        pass


class _SplitSourceFactory:
    """Picklable: a DataIterator of a split travels to tasks and actors."""

    def __init__(self, coordinator: Any, split: int) -> None:
        self.coordinator, self.split = coordinator, split

    def __call__(self) -> _SplitSource:
        return _SplitSource(self.coordinator, self.split)


def _check_node_hints(hints: Any, n: int) -> list[str] | None:
    if hints is None:
        return None
    if not isinstance(hints, (list, tuple)) or not all(isinstance(h, str) for h in hints):
        raise TypeError(f"streaming_split: locality_hints must be a list of node ids "
                        f"(strings, from ray.get_runtime_context().get_node_id()), got "
                        f"{hints!r}")
    if len(hints) != n:
        raise ValueError(f"streaming_split: locality_hints must have length n: "
                         f"len({list(hints)}) != {n}")
    return list(hints)


def streaming_split(dataset: Any, n: int, equal: bool, locality_hints: list[str] | None,
                    make_dataset: Callable[[list], Any]) -> list[DataIterator]:
    """``make_dataset(bundles)``: what each iterator's ``materialize`` returns."""
    n = _check_n(n, "streaming_split")
    hints = _check_node_hints(locality_hints, n)
    if not shoal.is_initialized():
        shoal.init()
    actor_cls = shoal.remote(num_cpus=0, max_concurrency=n + 1)(SplitCoordinator)
    coordinator = actor_cls.remote(dataset.plan, n, equal, hints)
    return [DataIterator(_SplitSourceFactory(coordinator, i), f"split {i} of {n}",
                         make_dataset)
            for i in range(n)]
