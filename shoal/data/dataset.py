"""``Dataset``: Ray Data's dataset API on shoal.  Lazy: every transform returns
a new Dataset holding a longer logical plan (plan.py); consuming calls
(take, count, iter_batches, write_*, materialize) run it with the streaming
executor (executor.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from shoal.data import consume, exchange, expr_text, shuffle_ops
from shoal.data.aggregate import AggregateFn, Max, Mean, Min, Std, Sum
from shoal.data.block import BatchFormat, rows_of, to_batch, to_pandas
from shoal.data.compute import map_settings
from shoal.data.datasink import WriteFiles, prepare_dir
from shoal.data.expr_ops import ExprFilter, WithColumns
from shoal.data.expressions import Expr
from shoal.data.grouped import GroupedData
from shoal.data.iterator import DEFAULT_BATCH_SIZE, DataIterator, check_batch_size
from shoal.data.iterator import iter_batches as _iter_batches
from shoal.data.iterator import iter_rows as _iter_rows
from shoal.data.plan import (
    InputData,
    Limit,
    LogicalOp,
    MapOp,
    Union,
    describe,
    known_num_rows,
)
from shoal.data.schema import Schema
from shoal.data.sort_keys import SortKey
from shoal.data.transforms import AddColumn, Columns, MapBatches, MapRows

DEFAULT_MAP_BATCH_SIZE = 1024  # map_batches(batch_size="default"), Ray's old default


def _fn_name(fn: Any) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def _names(cols: Any, what: str) -> list[str]:
    if isinstance(cols, str):
        cols = [cols]
    if not isinstance(cols, (list, tuple)) or not all(isinstance(c, str) for c in cols):
        raise TypeError(f"{what}: expected a column name or a list of names, got {cols!r}")
    if len(set(cols)) != len(cols):
        raise ValueError(f"{what}: duplicate column names in {list(cols)}")
    return list(cols)


class Dataset:
    """A lazy, distributed table of rows (Ray's ``ray.data.Dataset``)."""

    def __init__(self, op: LogicalOp) -> None:
        self._op = op
        self._last_stats: Any = None

    @property
    def plan(self) -> LogicalOp:
        """The logical plan this dataset runs (the parts of shoal.data build on it)."""
        return self._op

    def record_stats(self, stats: Any) -> None:
        """The executor running this dataset: ``stats()`` reports on it."""
        self._last_stats = stats

    # ---- transforms (lazy) -------------------------------------------------------

    def with_plan(self, op: LogicalOp) -> Dataset:
        return Dataset(op)

    def with_map_op(self, name: str, transform: Any, fn: Any, what: str, compute: Any,
                concurrency: Any, num_cpus: Any, num_gpus: Any, remote_args: dict,
                min_rows: int | None = None) -> Dataset:
        settings = map_settings(what, fn, compute, concurrency, num_cpus, num_gpus, remote_args)
        return self.with_plan(MapOp(input=self._op, name=name, transform=transform,
                                compute=settings.compute, concurrency=settings.concurrency,
                                remote_args=settings.remote_args,
                                min_rows_per_bundle=min_rows))

    @staticmethod
    def check_fn(fn: Any, what: str) -> None:
        if not callable(fn):
            raise TypeError(f"{what}: fn must be a function or a callable class, got "
                            f"{type(fn).__name__}")

    def map(self, fn: Callable, *, compute: Any = None, fn_args: Any = None,
            fn_kwargs: dict | None = None, fn_constructor_args: Any = None,
            fn_constructor_kwargs: dict | None = None, num_cpus: float | None = None,
            num_gpus: float | None = None, concurrency: Any = None,
            **ray_remote_args: Any) -> Dataset:
        """One row (a dict) in, one row out."""
        return self._rows("map", "Map", fn, compute, fn_args, fn_kwargs, fn_constructor_args,
                          fn_constructor_kwargs, num_cpus, num_gpus, concurrency,
                          ray_remote_args)

    def flat_map(self, fn: Callable, *, compute: Any = None, fn_args: Any = None,
                 fn_kwargs: dict | None = None, fn_constructor_args: Any = None,
                 fn_constructor_kwargs: dict | None = None, num_cpus: float | None = None,
                 num_gpus: float | None = None, concurrency: Any = None,
                 **ray_remote_args: Any) -> Dataset:
        """One row in, a list of rows out."""
        return self._rows("flat_map", "FlatMap", fn, compute, fn_args, fn_kwargs,
                          fn_constructor_args, fn_constructor_kwargs, num_cpus, num_gpus,
                          concurrency, ray_remote_args)

    def filter(self, fn: Callable | None = None, expr: Any = None, *, compute: Any = None,
               fn_args: Any = None, fn_kwargs: dict | None = None,
               fn_constructor_args: Any = None, fn_constructor_kwargs: dict | None = None,
               num_cpus: float | None = None, num_gpus: float | None = None,
               concurrency: Any = None, **ray_remote_args: Any) -> Dataset:
        """Keep the rows for which ``fn(row)`` is true, or for which the predicate
        ``expr`` is: an expression tree (``(col("x") > 5) & (col("y") == "a")``,
        expressions.py) or Ray's string form (``"x > 5 and y == 'a'"``,
        expr_text.py); an expression runs as Arrow compute on whole blocks."""
        if expr is not None:
            given = [n for n, v in (("fn", fn), ("fn_args", fn_args), ("fn_kwargs", fn_kwargs),
                                    ("fn_constructor_args", fn_constructor_args),
                                    ("fn_constructor_kwargs", fn_constructor_kwargs))
                     if v is not None]
            if given:
                raise ValueError(f"filter: give either expr or fn, not both ({given[0]} was "
                                 f"given with expr)")
            if isinstance(expr, Expr):
                transform = ExprFilter(predicate=expr, name=f"Filter({expr!r})")
            else:
                predicate = expr_text.parse(expr)
                transform = ExprFilter(predicate=predicate, name=f"Filter({predicate.text})")
            return self.with_map_op(transform.name, transform, None, "filter", compute,
                                concurrency, num_cpus, num_gpus, ray_remote_args)
        if fn is None:
            raise TypeError("filter: give a function fn(row) -> bool or an expression expr=")
        return self._rows("filter", "Filter", fn, compute, fn_args, fn_kwargs,
                          fn_constructor_args, fn_constructor_kwargs, num_cpus, num_gpus,
                          concurrency, ray_remote_args)

    def _rows(self, kind: str, label: str, fn: Any, compute: Any, fn_args: Any,
              fn_kwargs: Any, ctor_args: Any, ctor_kwargs: Any, num_cpus: Any, num_gpus: Any,
              concurrency: Any, remote_args: dict) -> Dataset:
        self.check_fn(fn, kind)
        name = f"{label}({_fn_name(fn)})"
        transform = MapRows(fn=fn, name=name, kind=kind, fn_args=tuple(fn_args or ()),
                            fn_kwargs=dict(fn_kwargs or {}),
                            ctor_args=tuple(ctor_args or ()),
                            ctor_kwargs=dict(ctor_kwargs or {}))
        return self.with_map_op(name, transform, fn, kind, compute, concurrency, num_cpus,
                            num_gpus, remote_args)

    def map_batches(self, fn: Callable, *, batch_size: int | None | str = None,
                    compute: Any = None, batch_format: str | None = "default",
                    zero_copy_batch: bool = True, fn_args: Any = None,
                    fn_kwargs: dict | None = None, fn_constructor_args: Any = None,
                    fn_constructor_kwargs: dict | None = None, num_cpus: float | None = None,
                    num_gpus: float | None = None, memory: float | None = None,
                    concurrency: Any = None, udf_modifying_row_count: bool = False,
                    **ray_remote_args: Any) -> Dataset:
        """``fn(batch) -> batch`` on batches of ``batch_size`` rows (None: whole
        blocks) in ``batch_format``; a callable class runs on a pool of actors
        (``concurrency`` of them), constructed once each."""
        what = "map_batches"
        self.check_fn(fn, what)
        if batch_size == "default":
            batch_size = DEFAULT_MAP_BATCH_SIZE
        batch_size = check_batch_size(batch_size, what)
        fmt = BatchFormat.parse(batch_format, what)
        if memory is not None:
            ray_remote_args["memory"] = memory
        name = f"MapBatches({_fn_name(fn)})"
        transform = MapBatches(fn=fn, name=name, batch_size=batch_size, batch_format=fmt,
                               fn_args=tuple(fn_args or ()), fn_kwargs=dict(fn_kwargs or {}),
                               ctor_args=tuple(fn_constructor_args or ()),
                               ctor_kwargs=dict(fn_constructor_kwargs or {}))
        return self.with_map_op(name, transform, fn, what, compute, concurrency, num_cpus,
                            num_gpus, ray_remote_args, min_rows=batch_size)

    def add_column(self, col: str, fn: Callable, *, batch_format: str | None = "pandas",
                   compute: Any = None, concurrency: Any = None,
                   **ray_remote_args: Any) -> Dataset:
        """A column ``col`` made by ``fn(batch)`` (replacing one of that name)."""
        if not isinstance(col, str):
            raise TypeError(f"add_column: col must be a column name, got {col!r}")
        self.check_fn(fn, "add_column")
        fmt = BatchFormat.parse(batch_format, "add_column")
        transform = AddColumn(col=col, fn=fn, batch_format=fmt, name=f"AddColumn({col})")
        return self.with_map_op(transform.name, transform, fn, "add_column", compute, concurrency,
                            None, None, ray_remote_args)

    def with_column(self, column_name: str, expr: Expr, *, compute: Any = None,
                    num_cpus: float | None = None, num_gpus: float | None = None,
                    concurrency: Any = None, **ray_remote_args: Any) -> Dataset:
        """A column ``column_name`` computed by the expression ``expr``
        (``col("id") * 2``), replacing one of that name; Arrow compute on
        whole blocks."""
        if not isinstance(column_name, str) or not column_name:
            raise TypeError(f"with_column: column_name must be a non-empty string, got "
                            f"{column_name!r}")
        return self.with_columns({column_name: expr}, compute=compute, num_cpus=num_cpus,
                                 num_gpus=num_gpus, concurrency=concurrency,
                                 **ray_remote_args)

    def with_columns(self, exprs: dict[str, Expr], *, compute: Any = None,
                     num_cpus: float | None = None, num_gpus: float | None = None,
                     concurrency: Any = None, **ray_remote_args: Any) -> Dataset:
        """Several columns at once, each computed from the input's columns."""
        if not isinstance(exprs, dict) or not exprs:
            raise TypeError(f"with_columns: expected a dict of column name -> expression, "
                            f"got {exprs!r}")
        for name, expr in exprs.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"with_columns: a column name must be a non-empty string, "
                                f"got {name!r}")
            if not isinstance(expr, Expr):
                raise TypeError(f"with_column({name!r}): expected an expression such as "
                                f"col('x') * 2 (from shoal.data.expressions), got "
                                f"{type(expr).__name__} {expr!r}")
        label = ", ".join(f"{n}={e!r}" for n, e in exprs.items())
        transform = WithColumns(exprs=dict(exprs), name=f"WithColumns({label})")
        return self.with_map_op(transform.name, transform, None, "with_column", compute,
                            concurrency, num_cpus, num_gpus, ray_remote_args)

    def _columns(self, kind: str, names: Any, label: str, remote_args: dict) -> Dataset:
        transform = Columns(kind=kind, names=names, name=label)
        return self.with_map_op(label, transform, None, label, None, None, None, None, remote_args)

    def select_columns(self, cols: list[str] | str, *, compute: Any = None,
                       concurrency: Any = None, **ray_remote_args: Any) -> Dataset:
        names = _names(cols, "select_columns")
        return self._columns("select", names, f"SelectColumns({names})", ray_remote_args)

    def drop_columns(self, cols: list[str] | str, *, compute: Any = None,
                     concurrency: Any = None, **ray_remote_args: Any) -> Dataset:
        names = _names(cols, "drop_columns")
        return self._columns("drop", names, f"DropColumns({names})", ray_remote_args)

    def rename_columns(self, names: list[str] | dict[str, str], *, concurrency: Any = None,
                       **ray_remote_args: Any) -> Dataset:
        if isinstance(names, dict):
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in names.items()):
                raise TypeError(f"rename_columns: expected a dict of str to str, got {names!r}")
            if len(set(names.values())) != len(names):
                raise ValueError(f"rename_columns: two columns renamed to one name: {names}")
            mapping: Any = dict(names)
        else:
            mapping = _names(names, "rename_columns")
        return self._columns("rename", mapping, "RenameColumns", ray_remote_args)

    def limit(self, limit: int) -> Dataset:
        """The first ``limit`` rows (stops reading once they have passed)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"limit: expected an int >= 0, got {limit!r}")
        return self.with_plan(Limit(input=self._op, limit=limit, name=f"Limit[{limit}]"))

    def union(self, *other: Dataset) -> Dataset:
        """This dataset's rows, then each other's, in order."""
        for o in other:
            if not isinstance(o, Dataset):
                raise TypeError(f"union: expected Datasets, got {type(o).__name__}")
        return self.with_plan(Union(children=(self._op, *(o.plan for o in other))))

    # ---- consuming ----------------------------------------------------------------

    def execution_source(self, op: LogicalOp | None = None) -> consume.ExecutionSource:
        return consume.ExecutionSource(op or self._op, self)

    def iter_rows(self, *, prefetch_batches: int = 1) -> Iterator[dict[str, Any]]:
        return _iter_rows(self.execution_source(), prefetch_batches)

    def iter_batches(self, *, prefetch_batches: int = 1,
                     batch_size: int | None = DEFAULT_BATCH_SIZE,
                     batch_format: str | None = "default", drop_last: bool = False,
                     local_shuffle_buffer_size: int | None = None,
                     local_shuffle_seed: int | None = None) -> Iterator[Any]:
        return _iter_batches(self.execution_source(), prefetch_batches=prefetch_batches,
                             batch_size=batch_size, batch_format=batch_format,
                             drop_last=drop_last,
                             local_shuffle_buffer_size=local_shuffle_buffer_size,
                             local_shuffle_seed=local_shuffle_seed)

    def iterator(self) -> DataIterator:
        return DataIterator(self.execution_source, describe(self._op),
                            MaterializedDataset.of_bundles)

    def take(self, limit: int = 20) -> list[dict[str, Any]]:
        """The first ``limit`` rows as dicts."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"take: limit must be an int >= 0, got {limit!r}")
        return [row for t in consume.tables(self.execution_source(Limit(self._op, limit)))
                for row in rows_of(t)]

    def take_all(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Every row; with ``limit``, raise if there are more."""
        op = self._op if limit is None else Limit(self._op, limit + 1)
        rows = [row for t in consume.tables(self.execution_source(op)) for row in rows_of(t)]
        if limit is not None and len(rows) > limit:
            raise ValueError(f"take_all: the dataset has more than the given limit of "
                             f"{limit} rows")
        return rows

    def take_batch(self, batch_size: int = 20, *,
                   batch_format: str | None = "default") -> Any:
        fmt = BatchFormat.parse(batch_format, "take_batch")
        check_batch_size(batch_size, "take_batch", allow_none=False)
        table = consume.concat_tables(self.execution_source(Limit(self._op, batch_size)))
        if table.num_rows == 0:
            raise ValueError("take_batch: the dataset is empty")
        return to_batch(table, fmt)

    def show(self, limit: int = 20) -> None:
        for row in self.take(limit):
            print(row)

    def count(self) -> int:
        """Rows; from the plan's metadata when it knows (no data is read)."""
        known = known_num_rows(self._op)
        if known is not None:
            return known
        return sum(b.metadata.num_rows for b in self.execution_source().bundles())

    def schema(self, fetch_if_missing: bool = True) -> Schema | None:
        schema = consume.known_schema(self._op)
        if schema is None and fetch_if_missing:
            schema = consume.first_schema(self.execution_source(Limit(self._op, 1)))
        return Schema(schema) if schema is not None else None

    def columns(self, fetch_if_missing: bool = True) -> list[str] | None:
        schema = self.schema(fetch_if_missing)
        return None if schema is None else list(schema.names)

    def to_pandas(self, limit: int | None = None) -> Any:
        op = self._op if limit is None else Limit(self._op, limit + 1)
        table = consume.concat_tables(self.execution_source(op))
        if limit is not None and table.num_rows > limit:
            raise ValueError(f"to_pandas: the dataset has more than the given limit of "
                             f"{limit} rows")
        return to_pandas(table)

    def to_arrow_refs(self) -> list[Any]:
        return [b.ref for b in self.materialize().bundles()]

    def to_numpy_refs(self, *, column: str | None = None) -> list[Any]:
        return [consume.remote_to_numpy.remote(b.ref, column)
                for b in self.materialize().bundles()]

    def to_pandas_refs(self) -> list[Any]:
        return [consume.remote_to_pandas.remote(b.ref) for b in self.materialize().bundles()]

    def materialize(self) -> MaterializedDataset:
        """Run the plan and keep every block in the object store."""
        bundles = list(self.execution_source().bundles())
        return MaterializedDataset(InputData(refs=tuple(b.ref for b in bundles),
                                             metadata=tuple(b.metadata for b in bundles),
                                             name="Materialized"), self._last_stats)

    def split(self, n: int, *, equal: bool = False,
              locality_hints: list | None = None) -> list[MaterializedDataset]:
        """``n`` disjoint materialized pieces in order; sizes differ by at most one
        row (``equal=True``: equal, dropping the < n rows left over).
        ``locality_hints``: an actor per piece; a piece is made of the blocks on
        its actor's node first."""
        from shoal.data import splitting

        return splitting.split(self.materialize(), n, equal, locality_hints)

    def streaming_split(self, n: int, *, equal: bool = False,
                        locality_hints: list | None = None) -> list[DataIterator]:
        """``n`` iterators over disjoint parts of one streaming run (for ``n``
        training workers); each may be passed to a task or an actor.
        ``locality_hints``: a node id per iterator; each is given the blocks made
        on its node where it can be (splitting.py)."""
        from shoal.data import splitting

        return splitting.streaming_split(self, n, equal, locality_hints,
                                         MaterializedDataset.of_bundles)

    def write_parquet(self, path: str, **arrow_parquet_args: Any) -> None:
        self._write("parquet", path, arrow_parquet_args)

    def write_csv(self, path: str, **arrow_csv_args: Any) -> None:
        self._write("csv", path, arrow_csv_args)

    def write_json(self, path: str, **kwargs: Any) -> None:
        self._write("json", path, {})

    def _write(self, fmt: str, path: str, kwargs: dict) -> None:
        what = f"write_{fmt}"
        folder = prepare_dir(path, what)
        for key in ("filesystem", "try_create_dir", "arrow_open_stream_args", "min_rows_per_file",
                    "num_rows_per_file", "ray_remote_args", "concurrency", "mode"):
            kwargs.pop(key, None)
        transform = WriteFiles(fmt=fmt, path=folder, name=f"Write{fmt.upper()}", kwargs=kwargs)
        op = MapOp(input=self._op, name=transform.name, transform=transform)
        for _ in self.execution_source(op).bundles():
            pass

    def stats(self) -> str:
        """What the last execution of this dataset did, per operator."""
        if self._last_stats is None:
            return "Dataset has not been executed yet: no stats."
        return self._last_stats.summary()

    # ---- description ----------------------------------------------------------------

    def __repr__(self) -> str:
        rows = known_num_rows(self._op)
        schema = consume.known_schema(self._op)
        fields = "?" if schema is None else "{" + ", ".join(
            f"{f.name}: {Schema.type_name(f.type)}" for f in schema) + "}"
        return f"{type(self).__name__}(num_rows={'?' if rows is None else rows}, " \
               f"schema={fields})"

    def __iter__(self) -> Iterator:
        raise TypeError("a Dataset is not iterable itself: use iter_rows() or iter_batches()")

    def input_files(self) -> list[str]:
        return consume.input_files(self._op)

    def num_blocks(self) -> int:
        return len(self.materialize().plan.refs)  # type: ignore[attr-defined]

    def size_bytes(self) -> int:
        return sum(m.size_bytes for m in self.materialize().plan.metadata)  # type: ignore

    # ---- all-to-all operations (exchange.py runs the shuffles) -------------------------

    def random_shuffle(self, *, seed: int | None = None, num_blocks: int | None = None,
                       **ray_remote_args: Any) -> Dataset:
        """The rows in a uniformly random order (the same ``seed``, the same order)."""
        op = exchange.random_shuffle(seed)
        if num_blocks is not None:
            op.num_outputs = shuffle_ops.check_count(num_blocks, "num_blocks", "random_shuffle")
        return shuffle_ops.all_to_all(self, op.name, op.run, op.sample_key)

    def sort(self, key: str | list[str], descending: bool | list[bool] = False,
             boundaries: list | None = None) -> Dataset:
        """Rows ordered by ``key`` (one column or several, each ascending or
        descending; nulls last); key ranges are sampled so skewed keys balance."""
        op = exchange.sort(SortKey.parse(key, descending, "sort"), boundaries)
        return shuffle_ops.all_to_all(self, op.name, op.run, op.sample_key)

    def groupby(self, key: str | list[str] | None,
                num_partitions: int | None = None) -> GroupedData:
        """Rows grouped by ``key`` columns, for aggregations and ``map_groups``."""
        return GroupedData(self, key)

    def repartition(self, num_blocks: int | None = None, *,
                    target_num_rows_per_block: int | None = None, shuffle: bool = False,
                    keys: list[str] | None = None, sort: bool = False) -> Dataset:
        """``num_blocks`` blocks: contiguous runs of equal size in order, or with
        ``shuffle=True`` each made of rows of every input block (a shuffle)."""
        if num_blocks is None and target_num_rows_per_block is not None:
            rows = shuffle_ops.check_count(target_num_rows_per_block,
                                           "target_num_rows_per_block", "repartition")
            num_blocks = max(1, -(-self.count() // rows))
        n = shuffle_ops.check_count(num_blocks, "num_blocks", "repartition")
        if shuffle:
            op = exchange.repartition_shuffle(n)
            return shuffle_ops.all_to_all(self, op.name, op.run, op.sample_key)
        return shuffle_ops.all_to_all(self, f"Repartition[{n}]",
                                      shuffle_ops.contiguous_split(n))

    def randomize_block_order(self, *, seed: int | None = None) -> Dataset:
        """The blocks in a random order (rows within a block keep theirs)."""
        return shuffle_ops.all_to_all(self, "RandomizeBlockOrder", shuffle_ops.block_order(seed))

    def unique(self, column: str) -> list[Any]:
        """The distinct values of ``column``."""
        return shuffle_ops.unique(self, column)

    def aggregate(self, *aggs: AggregateFn) -> dict[str, Any]:
        """Dataset-wide aggregations: ``{name: value}``."""
        return shuffle_ops.aggregate(self, aggs)

    def sum(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> Any:
        return shuffle_ops.on_columns(self, Sum, on, "sum", ignore_nulls=ignore_nulls)

    def min(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> Any:
        return shuffle_ops.on_columns(self, Min, on, "min", ignore_nulls=ignore_nulls)

    def max(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> Any:
        return shuffle_ops.on_columns(self, Max, on, "max", ignore_nulls=ignore_nulls)

    def mean(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> Any:
        return shuffle_ops.on_columns(self, Mean, on, "mean", ignore_nulls=ignore_nulls)

    def std(self, on: str | list[str] | None = None, ddof: int = 1,
            ignore_nulls: bool = True) -> Any:
        return shuffle_ops.on_columns(self, Std, on, "std", ddof=ddof,
                                      ignore_nulls=ignore_nulls)


class MaterializedDataset(Dataset):
    """A dataset whose blocks exist (``materialize()``, ``split()``)."""

    def __init__(self, op: InputData, stats: Any = None) -> None:
        super().__init__(op)
        self._last_stats = stats

    @classmethod
    def of_bundles(cls, bundles: list) -> MaterializedDataset:
        """The dataset of blocks already in the store (``DataIterator.materialize``)."""
        return cls(InputData(refs=tuple(b.ref for b in bundles),
                             metadata=tuple(b.metadata for b in bundles), name="Materialized"))

    def bundles(self) -> list[consume.Bundle]:
        op = self._op
        return [consume.Bundle(r, m) for r, m in zip(op.refs, op.metadata, strict=False)]  # type: ignore

    def num_blocks(self) -> int:
        return len(self._op.refs)  # type: ignore[attr-defined]

