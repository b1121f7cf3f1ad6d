"""Consuming blocks: fetch ahead, re-cut into batches, shuffle locally, format.

A ``BlockSource`` is anything that yields ``RefBundle``s and can be stopped
(a running executor, a streaming split's coordinator).  Fetching runs on a
thread ``prefetch_batches`` blocks ahead of the consumer, so the next block
moves to this node while the user's loop works on the current one; the
queue between them is bounded, which is the consumer's share of the memory
(the executor stops counting a block once the consumer has taken it).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

import shoal
from shoal.data.block import (
    BatchFormat,
    batches_of,
    concat,
    release_unused_memory,
    rows_of,
    to_batch,
)

DEFAULT_BATCH_SIZE = 256
_END = object()


class BlockSource(Protocol):
    def bundles(self) -> Iterator[Any]: ...

    def stop(self) -> None: ...


class _Error:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def fetch_blocks(source: BlockSource, prefetch: int) -> Iterator[pa.Table]:
    """The blocks of ``source`` as tables, fetched ``prefetch`` ahead on a thread
    (0: on the caller's thread)."""
    if prefetch <= 0:
        try:
            for bundle in source.bundles():
                yield shoal.get(bundle.ref)
        finally:
            source.stop()
        return
    out: queue.Queue = queue.Queue(maxsize=prefetch)
    stopping = threading.Event()

    def put(value: Any) -> bool:
        while not stopping.is_set():
            try:
                out.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def fetch() -> None:
        try:
            for bundle in source.bundles():
                if not put(shoal.get(bundle.ref)):
                    return
            put(_END)
        except BaseException as exc:
            put(_Error(exc))

    thread = threading.Thread(target=fetch, name="shoal-data-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            got = out.get()
            if got is _END:
                return
            if isinstance(got, _Error):
                raise got.error
            yield got
    finally:
        stopping.set()
        source.stop()
        thread.join(timeout=30)


def shuffled(tables: Iterator[pa.Table], buffer_rows: int, seed: int | None) -> Iterator[pa.Table]:
    """Rows in a random order within a window: whenever ``2 * buffer_rows`` rows
    are held, permute them and pass on all but ``buffer_rows``."""
    rng = np.random.default_rng(seed)
    held: list[pa.Table] = []
    count = 0

    def permute(table: pa.Table) -> pa.Table:
        return table.take(rng.permutation(table.num_rows))

    for table in tables:
        held.append(table)
        count += table.num_rows
        if count >= 2 * buffer_rows:
            mixed = permute(concat(held))
            keep = mixed.slice(count - buffer_rows)
            yield mixed.slice(0, count - buffer_rows)
            held, count = [keep], keep.num_rows
            del mixed
            release_unused_memory()  # the last window's pages (Arrow's pool keeps them)
    if count:
        yield permute(concat(held))


def check_batch_size(batch_size: Any, what: str, allow_none: bool = True) -> int | None:
    if batch_size is None and allow_none:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"{what}: batch_size must be an int >= 1"
                         f"{' or None' if allow_none else ''}, got {batch_size!r}")
    return batch_size


def iter_batches(source: BlockSource, *, prefetch_batches: int = 1,
                 batch_size: int | None = DEFAULT_BATCH_SIZE,
                 batch_format: str | None = "default", drop_last: bool = False,
                 local_shuffle_buffer_size: int | None = None,
                 local_shuffle_seed: int | None = None) -> Iterator[Any]:
    what = "iter_batches"
    fmt = BatchFormat.parse(batch_format, what)
    batch_size = check_batch_size(batch_size, what)
    if isinstance(prefetch_batches, bool) or not isinstance(prefetch_batches, int) \
            or prefetch_batches < 0:
        raise ValueError(f"{what}: prefetch_batches must be an int >= 0, got "
                         f"{prefetch_batches!r}")
    if local_shuffle_buffer_size is not None and (
            not isinstance(local_shuffle_buffer_size, int) or local_shuffle_buffer_size < 1):
        raise ValueError(f"{what}: local_shuffle_buffer_size must be an int >= 1 or None, "
                         f"got {local_shuffle_buffer_size!r}")
    tables = fetch_blocks(source, prefetch_batches)
    try:
        if local_shuffle_buffer_size:
            tables = shuffled(tables, local_shuffle_buffer_size, local_shuffle_seed)
        for table in batches_of(tables, batch_size):
            if drop_last and batch_size and table.num_rows < batch_size:
                return
            yield to_batch(table, fmt)
    finally:
        tables.close()


def iter_rows(source: BlockSource, prefetch_batches: int = 1) -> Iterator[dict]:
    tables = fetch_blocks(source, prefetch_batches)
    try:
        for table in tables:
            yield from rows_of(table)
    finally:
        tables.close()


class DataIterator:
    """Ray's ``DataIterator``: iterate a dataset (or one split of it) one or more
    times; each iteration runs it anew.  ``make_source`` makes a fresh
    ``BlockSource`` per iteration."""

    def __init__(self, make_source: Callable[[], BlockSource], name: str,
                 make_dataset: Callable[[list], Any]) -> None:
        """``make_dataset(bundles)``: the dataset ``materialize`` returns (its
        creator knows the dataset classes; this module sits below them)."""
        self._make_source = make_source
        self._name = name
        self._make_dataset = make_dataset

    def iter_batches(self, *, prefetch_batches: int = 1,
                     batch_size: int | None = DEFAULT_BATCH_SIZE,
                     batch_format: str | None = "default", drop_last: bool = False,
                     local_shuffle_buffer_size: int | None = None,
                     local_shuffle_seed: int | None = None) -> Iterator[Any]:
        return iter_batches(self._make_source(), prefetch_batches=prefetch_batches,
                            batch_size=batch_size, batch_format=batch_format,
                            drop_last=drop_last,
                            local_shuffle_buffer_size=local_shuffle_buffer_size,
                            local_shuffle_seed=local_shuffle_seed)

    def iter_rows(self, *, prefetch_batches: int = 1) -> Iterator[dict]:
        return iter_rows(self._make_source(), prefetch_batches)

    def __iter__(self) -> Iterator[dict]:
        return self.iter_rows()

    def materialize(self) -> Any:
        """One iteration's blocks, kept in the object store (Ray's
        ``DataIterator.materialize``): a ``MaterializedDataset``."""
        source = self._make_source()
        try:
            bundles = list(source.bundles())
        finally:
            source.stop()
        return self._make_dataset(bundles)

    def __repr__(self) -> str:
        return f"DataIterator({self._name})"
