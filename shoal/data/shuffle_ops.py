"""The all-to-all Dataset operations that need no shuffle, and the
dataset-wide aggregations.

* ``repartition(n)`` without ``shuffle`` cuts the dataset's rows into ``n``
  contiguous, equal runs (order kept): one task per output slices the blocks
  it overlaps; nothing else moves.
* ``randomize_block_order`` permutes the block list: no data moves.
* ``aggregate`` / ``sum`` / ``unique`` ...: a map stage makes one state row
  per block (aggregate.py) and the driver combines the states, which are one
  row per block; no shuffle.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import shoal
from shoal.data import consume
from shoal.data.aggregate import AggregateFn, AggregationSpec, check_aggs
from shoal.data.block import BlockMetadata, compact, concat, metadata_of
from shoal.data.plan import AllToAll, MapOp
from shoal.data.transforms import BlockFn

if TYPE_CHECKING:
    from shoal.data.dataset import Dataset

TASK_MAX_RETRIES = 3


def _slices(spans: list[tuple[int, int]], *blocks: pa.Table) -> tuple[pa.Table, BlockMetadata]:
    out = compact(concat([b.slice(s, n) for b, (s, n) in zip(blocks, spans, strict=True)]))
    return out, metadata_of(out)


_remote_slices = shoal.remote(num_returns=2, max_retries=TASK_MAX_RETRIES)(_slices)


def check_count(n: Any, name: str, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{what}: {name} must be an int >= 1, got {n!r}")
    return n


def contiguous_split(num_blocks: int):
    """``AllToAll.run`` of repartition(num_blocks, shuffle=False)."""
    def run(refs: list, metas: Sequence[BlockMetadata]) -> tuple[list, list]:
        rows = np.array([m.num_rows for m in metas], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(rows)])
        total = int(starts[-1])
        cuts = [total * r // num_blocks for r in range(num_blocks + 1)]
        out_refs, meta_refs = [], []
        for r in range(num_blocks):
            lo, hi = cuts[r], cuts[r + 1]
            spans, args = [], []
            for b in range(len(refs)):
                s, e = max(lo, starts[b]), min(hi, starts[b + 1])
                if e > s:
                    spans.append((int(s - starts[b]), int(e - s)))
                    args.append(refs[b])
            if not args and refs:  # an empty output keeps the schema
                spans, args = [(0, 0)], [refs[0]]
            block, meta = _remote_slices.remote(spans, *args)
            out_refs.append(block)
            meta_refs.append(meta)
        return out_refs, meta_refs
    return run


def block_order(seed: int | None):
    """``AllToAll.run`` of randomize_block_order(seed)."""
    if seed is None:
        seed = secrets.randbits(63)

    def run(refs: list, metas: list) -> tuple[list, list]:
        order = np.random.default_rng(seed).permutation(len(refs))
        return [refs[i] for i in order], [metas[i] for i in order]
    return run


def all_to_all(ds: Dataset, name: str, run: Any, sample_key: Any = None) -> Dataset:
    return ds.with_plan(AllToAll(input=ds.plan, name=name, run=run, sample_key=sample_key))


# ---- dataset-wide aggregation ------------------------------------------------------------
def _per_block(ds: Dataset, name: str, fn: Any) -> list[pa.Table]:
    op = MapOp(input=ds.plan, name=name, transform=BlockFn(fn=fn, name=name))
    return list(consume.tables(ds.execution_source(op)))


def aggregate(ds: Dataset, aggs: Sequence[AggregateFn]) -> dict[str, Any]:
    spec = AggregationSpec((), tuple(check_aggs(aggs, "aggregate")))
    states = _per_block(ds, "Aggregate", spec.partial)
    result = spec.combine(states)
    if result.num_rows == 0:
        return {a.name: None for a in spec.aggs}
    return {name: result.column(name)[0].as_py() for name in result.column_names}


def on_columns(ds: Dataset, cls: type, on: Any, what: str, **kwargs: Any) -> Any:
    """``ds.sum(on)`` and friends: a value for one column, a dict for several."""
    names = on
    if on is None:
        names = ds.columns() or []
    elif isinstance(on, str):
        names = [on]
    if not isinstance(names, (list, tuple)) or not all(isinstance(c, str) for c in names) \
            or not names:
        raise TypeError(f"{what}: on must be a column name or a list of names, got {on!r}")
    result = aggregate(ds, [cls(c, **kwargs) for c in names])
    return next(iter(result.values())) if isinstance(on, str) else result


def unique(ds: Dataset, column: str) -> list[Any]:
    if not isinstance(column, str):
        raise TypeError(f"unique: column must be a column name, got {column!r}")

    def distinct(table: pa.Table) -> pa.Table:
        if column not in table.column_names:
            if not table.num_rows:
                return pa.table({})
            raise ValueError(f"unique: no column {column!r} (columns: {table.column_names})")
        return pa.table({column: pc.unique(table.column(column))})

    values = concat(_per_block(ds, f"Unique({column})", distinct))
    if values.num_columns == 0:
        return []
    return pc.unique(values.column(column)).to_pylist()
