"""The map, merge and reduce functions of ``sort`` and ``random_shuffle``, and the
default merge of ``shuffle`` (plain functions: they run inside tasks)."""

from __future__ import annotations

import ctypes
import functools
import os
from typing import Any

import numpy as np

from shoal.shuffle.partitioning import (
    RangePartitioner,
    random_parts,
    sample_prefixes,
    split_by_part,
)
from shoal.shuffle.records import check_records, concat, key_prefix, sort_records

# glibc's mallopt parameters
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
KEEP_FREED_BYTES = 256 << 20


@functools.cache
def tune_allocator() -> bool:
    """Once per worker process: let glibc keep up to 256 MiB of freed memory for
    reuse (buffers up to that size come from the heap, not fresh mmaps).  A map
    or reduce allocates a few arrays of its partition's size; fresh ones page-
    fault on first touch (62.5 MB: ~7 ms with huge pages, 28 without), reused
    ones do not (2 ms).  Measured on a 62.5 MB reduce: 62 -> 50 ms median.
    SHOAL_SHUFFLE_KEEP_FREED=0 turns it off."""
    if os.environ.get("SHOAL_SHUFFLE_KEEP_FREED", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, KEEP_FREED_BYTES)
                and libc.mallopt(_M_TRIM_THRESHOLD, KEEP_FREED_BYTES))


def concat_blocks(*blocks: Any) -> Any:
    """The default ``merge_fn``: numpy arrays concatenated along axis 0, lists and
    tuples joined."""
    if not blocks:
        raise ValueError("merge_fn called with no blocks")
    if all(isinstance(b, np.ndarray) for b in blocks):
        return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
    if all(isinstance(b, list) for b in blocks):
        return [item for b in blocks for item in b]
    if all(isinstance(b, tuple) for b in blocks):
        return tuple(item for b in blocks for item in b)
    kinds = sorted({type(b).__name__ for b in blocks})
    raise TypeError(f"the default merge_fn concatenates numpy arrays, lists or tuples, "
                    f"got blocks of type {', '.join(kinds)}: pass merge_fn= to combine them")


# ---- sort --------------------------------------------------------------------------------
def sample_input(records: Any, count: int, seed: int) -> tuple[np.ndarray, int]:
    """A sample of one input's key prefixes, and its size in bytes."""
    records = check_records(records, "each input of sort")
    return sample_prefixes(records, count, seed), records.nbytes


def sort_map(records: Any, num_reducers: int, boundaries: np.ndarray) -> list[np.ndarray]:
    tune_allocator()
    records = check_records(records, "each input of sort")
    part = RangePartitioner(boundaries)(key_prefix(records))
    return split_by_part(records, part, num_reducers)


def merge_records(*blocks: np.ndarray | tuple) -> tuple[np.ndarray, ...]:
    """sort's merge: the blocks as one object, not concatenated.  Storing the
    object copies every block into it once (on the merge's node); a
    concatenation first would copy them twice, and the reduce concatenates
    anyway."""
    return tuple(b for b in _flat(blocks) if len(b))


def sort_reduce(*blocks: np.ndarray | tuple) -> np.ndarray:
    tune_allocator()
    return sort_records(concat(list(_flat(blocks))))


def _flat(blocks: tuple) -> list[np.ndarray]:
    """Arrays and tuples of arrays (merged blocks) as one list of arrays."""
    out: list[np.ndarray] = []
    for block in blocks:
        out.extend(block if isinstance(block, tuple) else (block,))
    return out


# ---- random_shuffle ----------------------------------------------------------------------
# A random_shuffle block is ``(rows, segments)``: ``segments`` lists ``[map id, length]``
# of the runs of rows in it.  The reduce puts the runs in map order before it permutes,
# so its output does not depend on which maps a premerge happened to group together:
# the same seed gives the same result.
def array_size(value: Any) -> int:
    return int(getattr(value, "nbytes", 0))


def random_map(rows: Any, num_reducers: int, seed: int, map_index: int) -> list[tuple]:
    if not isinstance(rows, np.ndarray) or rows.ndim < 1:
        raise TypeError(f"each input of random_shuffle must be a numpy array with at "
                        f"least one dimension, got {type(rows).__name__}")
    tune_allocator()
    part = random_parts(len(rows), num_reducers, seed, map_index)
    return [(block, np.array([[map_index, len(block)]], dtype=np.int64))
            for block in split_by_part(rows, part, num_reducers)]


def merge_tagged(*blocks: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return (concat_blocks(*[rows for rows, _ in blocks]),
            np.concatenate([segments for _, segments in blocks]))


def random_reduce(*blocks_then_seed: Any) -> np.ndarray:
    """``(*blocks, seed, reducer)``: the blocks' rows in a random order."""
    *blocks, seed, reducer = blocks_then_seed
    tune_allocator()
    runs = []
    for rows, segments in blocks:
        ends = np.cumsum(segments[:, 1])
        runs += [(int(m), rows[end - n:end]) for (m, n), end in zip(segments, ends, strict=True)]
    runs.sort(key=lambda run: run[0])
    rows = concat_blocks(*[run for _, run in runs])
    order = np.random.default_rng([seed, reducer, 1]).permutation(len(rows))
    out = np.empty_like(rows)
    if len(rows):
        np.take(rows, order, axis=0, out=out, mode="clip")
    return out
