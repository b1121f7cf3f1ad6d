"""Range partitioning of Arrow tables by one or several key columns (sort,
groupby, map_groups): check the keys, sample them, cut the key space at the
sample's quantiles, and tell each row which range it falls in.

Why sampling: cuts spread evenly over the observed values balance the
partitions whatever the keys' distribution (a skewed key crowds its cuts where
its rows crowd).  Ordering is Arrow's (``sort_indices`` with nulls last), and a
row equal to a boundary goes to the range on its right (Ray's rule for
``boundaries``), so all rows of one key land in one range.

The general rule works for any key types and directions by sorting the
block's keys together with the boundaries (a boundary sorts before rows equal
to it); a row's range is the number of boundaries before it.  A single numeric
key without nulls or NaN takes a shortcut: ``np.searchsorted``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoal.data.block import arrow_of, concat, is_chunked, primitive_values, take_rows

SAMPLES_PER_RANGE = 64  # sampled rows per output range, over all inputs
MIN_SAMPLES_PER_INPUT = 16
_TIEBREAK = "__shoal_is_row"


@dataclass(frozen=True)
class SortKey:
    """Columns and their directions, as Arrow's ``sort_keys``."""

    columns: tuple[str, ...]
    descending: tuple[bool, ...]

    @classmethod
    def parse(cls, key: Any, descending: Any, what: str) -> SortKey:
        if isinstance(key, str):
            key = [key]
        if not isinstance(key, (list, tuple)) or not key or \
                not all(isinstance(k, str) for k in key):
            raise TypeError(f"{what}: key must be a column name or a non-empty list of "
                            f"names, got {key!r}")
        if isinstance(descending, bool):
            flags = [descending] * len(key)
        elif isinstance(descending, (list, tuple)) and \
                all(isinstance(d, bool) for d in descending):
            if len(descending) != len(key):
                raise ValueError(f"{what}: descending has {len(descending)} flags for "
                                 f"{len(key)} key columns {list(key)}")
            flags = list(descending)
        else:
            raise TypeError(f"{what}: descending must be a bool or a list of bools, got "
                            f"{descending!r}")
        return cls(tuple(key), tuple(flags))

    def arrow(self) -> list[tuple[str, str]]:
        return [(c, "descending" if d else "ascending")
                for c, d in zip(self.columns, self.descending, strict=True)]

    def first(self, columns: Sequence[str]) -> SortKey:
        """The leading key columns named in ``columns`` (boundaries may give only the
        first)."""
        n = 0
        while n < len(self.columns) and self.columns[n] in columns:
            n += 1
        return SortKey(self.columns[:n], self.descending[:n])

    def check(self, table: pa.Table, what: str) -> None:
        missing = [c for c in self.columns if c not in table.column_names]
        if missing:
            raise ValueError(f"{what}: no key column {missing} (columns: "
                             f"{table.column_names})")


def order(table: pa.Table, key: SortKey) -> np.ndarray:
    """Row positions of ``table`` in key order (nulls last)."""
    if table.num_rows < 2:
        return np.arange(table.num_rows)
    return primitive_values(pc.sort_indices(table, sort_keys=key.arrow()))


def sort_table(table: pa.Table, key: SortKey) -> pa.Table:
    return take_rows(table, order(table, key)) if table.num_rows > 1 else table


def sample(table: pa.Table, key: SortKey, count: int, seed: int) -> pa.Table:
    """Up to ``count`` random rows of the key columns."""
    key.check(table, "sort")
    keys = table.select(list(key.columns))
    if keys.num_rows <= count:
        return keys
    rows = np.random.default_rng(seed).choice(keys.num_rows, size=count, replace=False)
    return take_rows(keys, np.sort(rows))


def samples_per_input(num_inputs: int, num_ranges: int) -> int:
    return max(MIN_SAMPLES_PER_INPUT, -(-SAMPLES_PER_RANGE * num_ranges // max(1, num_inputs)))


@dataclass(frozen=True)
class BlockSampler:
    """Keys sampled from a block where it is made (the task that makes a sort's or
    a groupby's input), so the input is not read again just for its sample.
    Rows sampled grow with the block's bytes (one per ``bytes_per_sample``, at
    least MIN_SAMPLES_PER_INPUT); ``weight`` makes blocks count by their rows."""

    key: SortKey
    bytes_per_sample: int

    def __call__(self, table: pa.Table, seed: int) -> pa.Table | None:
        """The sample, or None if the block lacks a key column (the exchange then
        reports that error itself, naming the operation)."""
        if not table.num_rows or any(c not in table.column_names for c in self.key.columns):
            return None
        count = max(MIN_SAMPLES_PER_INPUT, -(-table.nbytes // max(1, self.bytes_per_sample)))
        return sample(table, self.key, count, seed)


def weight(block_rows: int, sampled: pa.Table) -> float:
    """Rows of its block each sampled row stands for."""
    return block_rows / sampled.num_rows if sampled.num_rows else 0.0


def boundaries(samples: Sequence[pa.Table], key: SortKey, num_ranges: int,
               weights: Sequence[float] | None = None) -> pa.Table:
    """``num_ranges - 1`` boundary rows (fewer if the sample is smaller) at the
    sample's quantiles, each sample's rows counting ``weights[i]`` (default 1);
    duplicates are kept, so a heavy key may leave a range empty."""
    if weights is None:
        weights = [1.0] * len(samples)
    kept = [(s, w) for s, w in zip(samples, weights, strict=True) if s.num_rows]
    rows = concat([s for s, _ in kept])
    if num_ranges <= 1 or rows.num_rows == 0:
        return rows.slice(0, 0)
    at = order(rows, key)
    cumulative = np.cumsum(np.concatenate([np.full(s.num_rows, w) for s, w in kept])[at])
    targets = np.arange(1, num_ranges) * (cumulative[-1] / num_ranges)
    picks = np.searchsorted(cumulative, targets * (1 + 1e-12), side="right")
    return take_rows(rows, at[np.minimum(picks, rows.num_rows - 1)])


def _numeric_values(column: Any) -> np.ndarray | None:
    """The column as a numpy array if the shortcut applies (numeric, no null, no NaN)."""
    values = primitive_values(column)
    if values is None:
        return None
    if values.dtype.kind == "f" and np.isnan(values).any():
        return None
    return values


def range_ids(table: pa.Table, bounds: pa.Table, key: SortKey) -> np.ndarray:
    """For each row of ``table``, its range: 0..len(bounds)."""
    n = table.num_rows
    if bounds.num_rows == 0 or n == 0:
        return np.zeros(n, dtype=np.int64)
    if len(key.columns) == 1:
        col = key.columns[0]
        values = _numeric_values(table.column(col))
        cuts = _numeric_values(bounds.column(col))
        if values is not None and cuts is not None:
            if not key.descending[0]:
                return np.searchsorted(cuts, values, side="right")
            # cuts descend; a row's range is the number of cuts >= it
            return len(cuts) - np.searchsorted(cuts[::-1], values, side="left")
    keys = table.select(list(key.columns)).append_column(
        _TIEBREAK, arrow_of(np.ones(n, dtype=np.int8)))
    cuts_t = bounds.select(list(key.columns)).append_column(
        _TIEBREAK, arrow_of(np.zeros(bounds.num_rows, dtype=np.int8)))
    both = concat([keys, cuts_t])
    tiebreak = [(_TIEBREAK, "ascending")]
    sorted_at = primitive_values(pc.sort_indices(both, sort_keys=key.arrow() + tiebreak))
    is_cut = sorted_at >= n
    ranges = np.cumsum(is_cut)[~is_cut]
    out = np.empty(n, dtype=np.int64)
    out[sorted_at[~is_cut]] = ranges
    return out


def split_grouped(table: pa.Table, part: np.ndarray, num_parts: int,
                  group: int) -> Iterator[tuple[pa.Table, list[int]]]:
    """``table``'s rows ordered by ``part`` and cut into one table per ``group``
    consecutive parts, each with its parts' row counts (rows keep their order
    within a part): one stable counting sort, then a gather per group, made as
    the caller asks for it (a shuffle map stores each before the next)."""
    counts = np.bincount(part, minlength=num_parts)[:num_parts] if len(part) else \
        np.zeros(num_parts, np.int64)
    if num_parts == 1:
        yield table, [table.num_rows]
        return
    order = np.argsort(narrow(part, num_parts), kind="stable")
    ends = np.cumsum(counts)
    gather = _chunked_gather(table) if is_chunked(table) else None
    for first in range(0, num_parts, group):
        last = min(num_parts, first + group)
        lo = int(ends[first - 1]) if first else 0
        counted = counts[first:last].tolist()
        rows = order[lo:int(ends[last - 1])]
        yield (take_rows(table, rows) if gather is None else gather(rows, counted)), counted


def _chunked_gather(table: pa.Table):
    """A gather from a table of several chunks (a partition of several blocks, a
    Parquet file's row groups): Arrow's take over chunks took 3.7x as long as
    over one.  The rows of each part ascend, so each part's are cut at the
    chunks' bounds and taken chunk by chunk."""
    batches = table.to_batches()
    bounds = np.cumsum([0] + [b.num_rows for b in batches])

    def gather(rows: np.ndarray, counts: list[int]) -> pa.Table:
        taken, start = [], 0
        for count in counts:
            mine = rows[start:start + count]
            start += count
            cuts = np.searchsorted(mine, bounds)
            for i, batch in enumerate(batches):
                if cuts[i + 1] > cuts[i]:
                    taken.append(batch.take(arrow_of(mine[cuts[i]:cuts[i + 1]] - bounds[i])))
        # one chunk, as a gather from one chunk makes: a piece of many small chunks
        # cost its reduce more than this copy
        return pa.Table.from_batches(taken, schema=table.schema).combine_chunks()
    return gather


def narrow(part: np.ndarray, num_parts: int) -> np.ndarray:
    """Part numbers in the smallest type that holds them (a copy only if wider)."""
    return part.astype(_small(num_parts), copy=False)


def _small(num_parts: int) -> type:
    return np.uint16 if num_parts <= 1 << 16 else np.int64
