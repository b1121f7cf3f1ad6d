"""``GroupedData`` (what ``Dataset.groupby`` returns, Ray's name): grouped
aggregations and ``map_groups``.

An aggregation is one shuffle (exchange.py): each map aggregates its
partition's groups into state rows and range-partitions them by key; each
reduce combines the states of its key range.  Only state rows cross the
shuffle, so 100M rows in 1k groups move ~1k rows per map.  ``map_groups``
sorts by the keys (every row of a key lands in one block, contiguous) and
then runs the user function once per group in an ordinary map stage (tasks,
or actors for a callable class).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

import shoal
from shoal.data import exchange, sort_keys
from shoal.data.aggregate import (
    AggregateFn,
    AggregationSpec,
    Count,
    Max,
    Mean,
    Min,
    Std,
    Sum,
    check_aggs,
    group_ranges,
)
from shoal.data.block import BatchFormat, metadata_of, table_from_rows, to_batch, to_block
from shoal.data.plan import AllToAll, InputData
from shoal.data.transforms import UserFunction, _call_user, _fn_name, _short

if TYPE_CHECKING:
    from shoal.data.dataset import Dataset


def key_list(key: Any, what: str) -> list[str]:
    if key is None:
        return []
    if isinstance(key, str):
        return [key]
    if isinstance(key, (list, tuple)) and key and all(isinstance(k, str) for k in key):
        if len(set(key)) != len(key):
            raise ValueError(f"{what}: duplicate key columns in {list(key)}")
        return list(key)
    raise TypeError(f"{what}: key must be a column name, a list of names or None, got {key!r}")


class GroupedData:
    """A dataset grouped by key columns; every method returns a new Dataset."""

    def __init__(self, dataset: Dataset, key: Any) -> None:
        self._dataset = dataset
        self._keys = key_list(key, "groupby")

    def __repr__(self) -> str:
        return f"GroupedData(dataset={self._dataset!r}, key={self._keys!r})"

    def aggregate(self, *aggs: AggregateFn) -> Dataset:
        """One row per group: the keys, then one column per aggregation; rows in
        key order."""
        spec = AggregationSpec(tuple(self._keys), tuple(check_aggs(aggs, "aggregate")))
        if not self._keys:
            return self._one_row(self._dataset.aggregate(*spec.aggs))
        op = exchange.aggregate(spec)
        return self._dataset.with_plan(AllToAll(input=self._dataset.plan, name=op.name, run=op.run,
                                            sample_key=op.sample_key, combiner=op.combiner))

    def _one_row(self, row: dict[str, Any]) -> Dataset:
        """A keyless aggregate's result as a dataset of one block (made here, not
        through read_api.from_items, which imports Dataset: no import cycle)."""
        table = table_from_rows([row])
        return self._dataset.with_plan(InputData(refs=(shoal.put(table),),
                                             metadata=(metadata_of(table),), name="FromItems"))

    def _on(self, cls: type, on: Any, what: str, **kwargs: Any) -> Dataset:
        if on is None:
            columns = self._dataset.columns() or []
            on = [c for c in columns if c not in self._keys]
            if not on:
                raise ValueError(f"{what}: the dataset has no column besides the keys "
                                 f"{self._keys} to aggregate")
        names = [on] if isinstance(on, str) else on
        if not isinstance(names, (list, tuple)) or not all(isinstance(c, str) for c in names):
            raise TypeError(f"{what}: on must be a column name or a list of names, got {on!r}")
        return self.aggregate(*(cls(c, **kwargs) for c in names))

    def count(self) -> Dataset:
        """Rows per group (column ``count()``)."""
        return self.aggregate(Count())

    def sum(self, on: Any = None, ignore_nulls: bool = True) -> Dataset:
        return self._on(Sum, on, "sum", ignore_nulls=ignore_nulls)

    def min(self, on: Any = None, ignore_nulls: bool = True) -> Dataset:
        return self._on(Min, on, "min", ignore_nulls=ignore_nulls)

    def max(self, on: Any = None, ignore_nulls: bool = True) -> Dataset:
        return self._on(Max, on, "max", ignore_nulls=ignore_nulls)

    def mean(self, on: Any = None, ignore_nulls: bool = True) -> Dataset:
        return self._on(Mean, on, "mean", ignore_nulls=ignore_nulls)

    def std(self, on: Any = None, ddof: int = 1, ignore_nulls: bool = True) -> Dataset:
        return self._on(Std, on, "std", ddof=ddof, ignore_nulls=ignore_nulls)

    def map_groups(self, fn: Callable, *, zero_copy_batch: bool = False, compute: Any = None,
                   batch_format: str | None = "default", fn_args: Any = None,
                   fn_kwargs: dict | None = None, fn_constructor_args: Any = None,
                   fn_constructor_kwargs: dict | None = None, num_cpus: float | None = None,
                   num_gpus: float | None = None, memory: float | None = None,
                   concurrency: Any = None, **ray_remote_args: Any) -> Dataset:
        """``fn(batch) -> batch`` once per group (all of the group's rows in one
        batch of ``batch_format``); groups come in key order."""
        self._dataset.check_fn(fn, "map_groups")
        fmt = BatchFormat.parse(batch_format, "map_groups")
        if memory is not None:
            ray_remote_args["memory"] = memory
        ds = self._dataset
        ds = ds.sort(self._keys) if self._keys else ds.repartition(1)
        name = f"MapGroups({_fn_name(fn)[:-2]})"
        transform = MapGroups(fn=fn, name=name, keys=list(self._keys), batch_format=fmt,
                              fn_args=tuple(fn_args or ()), fn_kwargs=dict(fn_kwargs or {}),
                              ctor_args=tuple(fn_constructor_args or ()),
                              ctor_kwargs=dict(fn_constructor_kwargs or {}))
        return ds.with_map_op(name, transform, fn, "map_groups", compute, concurrency, num_cpus,
                          num_gpus, ray_remote_args)


@dataclass
class MapGroups(UserFunction):
    """Each block is sorted by the keys and holds whole groups: call the user
    function on each group's rows."""

    fn: Any
    name: str
    keys: list[str]
    batch_format: BatchFormat
    fn_args: tuple = ()
    fn_kwargs: dict = field(default_factory=dict)
    ctor_args: tuple = ()
    ctor_kwargs: dict = field(default_factory=dict)
    preserves_rows: bool = False

    def apply(self, blocks: Iterator[pa.Table]) -> Iterator[pa.Table]:
        fn = self.user_fn()
        for table in blocks:
            if not table.num_rows:
                continue
            if self.keys:
                sort_keys.SortKey(tuple(self.keys), (False,) * len(self.keys)).check(
                    table, "map_groups")
                ranges = zip(*group_ranges(table, self.keys), strict=True)
            else:
                ranges = iter([(0, table.num_rows)])
            for start, length in ranges:
                group = table.slice(start, length)
                key = {k: group.column(k)[0].as_py() for k in self.keys}
                out = _call_user(self.name, fn, f"the group {_short(key)} "
                                 f"({length} rows)", to_batch(group, self.batch_format),
                                 *self.fn_args, **self.fn_kwargs)
                yield to_block(out, f"{self.name}: {_fn_name(fn)}")
