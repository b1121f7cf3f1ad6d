"""Which reducer each record goes to (pure numpy).

* Range partitioning (``sort``): the key space is cut at ``R - 1`` boundaries
  taken from a sample of the inputs' keys, so each partition receives about the
  same number of records however skewed the keys are.  Boundaries are key
  *prefixes* (8 bytes); records with equal prefixes always land together, and
  partition ``i`` holds prefixes in ``[b[i-1], b[i])``.
* Random partitioning (``random_shuffle``): each record picks a reducer
  uniformly, from a generator seeded by ``(seed, map index)`` so that a
  re-executed map (lineage) sends every record where the first run did.

Finding a record's range by binary search costs ~30 ns; ``RangePartitioner``
looks the top 16 bits of the prefix up in a 64 Ki-entry table instead and
searches only the records whose table slot a boundary falls inside.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shoal.shuffle.records import key_prefix

MAX_PARTITIONS = 65535  # partition numbers are uint16; 0xFFFF marks "search"
TABLE_BITS = 16
_SEARCH = np.uint16(0xFFFF)


def sample_prefixes(records: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``count`` key prefixes of ``records`` drawn at random (all of them if fewer)."""
    n = len(records)
    if n <= count:
        return key_prefix(records)
    rows = np.sort(np.random.default_rng(seed).choice(n, size=count, replace=False))
    return key_prefix(records[rows])


def boundaries_from_samples(samples: Sequence[np.ndarray], partitions: int) -> np.ndarray:
    """``partitions - 1`` cut points at the sample's quantiles (uniform cuts of
    the key space if there is no sample)."""
    if partitions < 1:
        raise ValueError(f"the number of partitions must be >= 1, got {partitions}")
    pooled = np.sort(np.concatenate([np.asarray(s, dtype=np.uint64) for s in samples])
                     if samples else np.zeros(0, dtype=np.uint64))
    if len(pooled) == 0:
        step = (1 << 64) // partitions
        return np.array([i * step for i in range(1, partitions)], dtype=np.uint64)
    picks = (np.arange(1, partitions) * len(pooled)) // partitions
    return pooled[picks]


class RangePartitioner:
    """Partition numbers of key prefixes for sorted ``boundaries``."""

    def __init__(self, boundaries: np.ndarray) -> None:
        self.boundaries = np.asarray(boundaries, dtype=np.uint64)
        if len(self.boundaries) + 1 > MAX_PARTITIONS:
            raise ValueError(f"at most {MAX_PARTITIONS} partitions, got "
                             f"{len(self.boundaries) + 1}")
        if np.any(self.boundaries[1:] < self.boundaries[:-1]):
            raise ValueError("range boundaries must be sorted")
        self.table = self._table()

    @property
    def partitions(self) -> int:
        return len(self.boundaries) + 1

    def _table(self) -> np.ndarray:
        shift = np.uint64(64 - TABLE_BITS)
        first = np.arange(1 << TABLE_BITS, dtype=np.uint64) << shift
        last = first | np.uint64((1 << (64 - TABLE_BITS)) - 1)
        lo = np.searchsorted(self.boundaries, first, side="right")
        hi = np.searchsorted(self.boundaries, last, side="right")
        return np.where(lo == hi, lo, _SEARCH).astype(np.uint16)

    def __call__(self, prefix: np.ndarray) -> np.ndarray:
        part = self.table[prefix >> np.uint64(64 - TABLE_BITS)]
        unsure = np.flatnonzero(part == _SEARCH)
        if len(unsure):
            part[unsure] = np.searchsorted(self.boundaries, prefix[unsure], side="right")
        return part


def random_parts(count: int, partitions: int, seed: int, map_index: int) -> np.ndarray:
    """A uniformly random partition number for each of ``count`` rows,
    the same on every run with the same ``(seed, map_index)``."""
    rng = np.random.default_rng([seed, map_index])
    return rng.integers(0, partitions, size=count, dtype=np.uint16)


def split_by_part(rows: np.ndarray, part: np.ndarray, partitions: int) -> list[np.ndarray]:
    """``partitions`` blocks: block ``r`` holds the rows with ``part == r``, in
    their input order.  One gather of the rows (a radix sort of the part numbers
    gives it); the blocks are views of the gathered array."""
    order = np.argsort(part, kind="stable")
    ends = np.cumsum(np.bincount(part, minlength=partitions))
    grouped = np.empty_like(rows)
    if len(rows):
        np.take(rows, order, axis=0, out=grouped, mode="clip")
    starts = np.concatenate(([0], ends[:-1]))
    return [grouped[s:e] for s, e in zip(starts, ends, strict=True)]
