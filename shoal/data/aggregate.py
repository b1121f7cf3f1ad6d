"""Aggregations (Ray's ``ray.data.aggregate``): the built-ins ``Count``, ``Sum``,
``Min``, ``Max``, ``Mean``, ``Std``, ``AbsMax``, ``Quantile``, ``Unique`` and the
accumulator-style ``AggregateFn``, Ray's ``AggregateFnV2`` interface for custom
aggregations (and ``ApproximateQuantile``, a KLL sketch, on it),
and the two kernels that run them: ``partial`` on one block (in a shuffle's
map: rows -> one row of *state* per group) and ``combine`` on the states of
one key range (in its reduce: states -> one result row per group).

Built-ins keep small numeric states and run in Arrow's hash ``group_by``:

==========  ==========================  ====================================
aggregate   state per group             combined as
==========  ==========================  ====================================
Count       n                           sum n
Sum         s (null if no value)        sum s
Min / Max   m                           min / max m
Mean        s, n                        sum s / sum n
Std         n, mean, m2 (Welford)       Chan et al.: m2 = sum(m2_i +
                                        n_i (mean_i - mean)^2), in numpy
AbsMax      min, max                    max(|min of mins|, |max of maxes|)
Quantile    the values (a list)         the lists joined; numpy's linear
                                        interpolation (Ray's result)
Unique      the distinct values (list)  the lists joined, distinct again
==========  ==========================  ====================================

Quantile keeps every value of a group (as Ray's does: an exact quantile
needs them); Unique keeps nulls as a value unless ``ignore_nulls`` (Ray's
default for it is False).

With ``ignore_nulls=False`` a state also counts the group's nulls and the
result is null if there was one.  NaN counts as null (Ray's rule), so a float
column's NaNs are made nulls before aggregating.  ``AggregateFn`` keeps one
Python accumulator per group (a pickled-object column), built by
``accumulate_block`` or ``accumulate_row`` on each group's rows.
"""

from __future__ import annotations

import abc
import enum
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoal.data.block import PythonObjectType, column_to_numpy, concat, rows_of, to_arrow_column
from shoal.data.errors import UserCodeException
from shoal.data.hash_group import dense_group_by, group_by

_ONE = "__shoal_all"  # the constant key of a dataset-wide aggregation
_ROW = "__shoal_row"


class Kind(enum.Enum):
    COUNT = "count"
    SUM = "sum"
    MIN = "min"
    MAX = "max"
    MEAN = "mean"
    STD = "std"
    ABS_MAX = "abs_max"
    QUANTILE = "quantile"
    UNIQUE = "unique"
    CUSTOM = "custom"


class AggregateFn:
    """An accumulator-style aggregation (Ray's ``AggregateFn``): ``init(key)``
    makes a group's accumulator, ``accumulate_block(acc, table)`` or
    ``accumulate_row(acc, row)`` adds rows to it, ``merge(a, b)`` joins two,
    ``finalize(acc)`` makes the result (column ``name``)."""

    kind = Kind.CUSTOM

    def __init__(self, init: Callable, merge: Callable, name: str | None = None,
                 accumulate_row: Callable | None = None,
                 accumulate_block: Callable | None = None,
                 finalize: Callable | None = None) -> None:
        if (accumulate_row is None) == (accumulate_block is None):
            raise ValueError("AggregateFn: give exactly one of accumulate_row and "
                             "accumulate_block")
        for label, fn in (("init", init), ("merge", merge)):
            if not callable(fn):
                raise TypeError(f"AggregateFn: {label} must be callable, got {fn!r}")
        self.init = init
        self.merge = merge
        self.accumulate_row = accumulate_row
        self.accumulate_block = accumulate_block
        self.finalize = finalize or (lambda a: a)
        self.name = name or "AggregateFn"
        self.on: str | None = None

    def columns(self) -> list[str]:
        return []

    # The hooks the kernels call (V2 overrides them with Ray's null rules).
    def group_state(self, key: Any, group: pa.Table) -> Any:
        acc = self.init(key)
        if self.accumulate_block is not None:
            return self.accumulate_block(acc, group)
        for row in rows_of(group):
            acc = self.accumulate_row(acc, row)  # type: ignore[misc]
        return acc

    def fold(self, accs: Sequence[Any]) -> Any:
        acc = accs[0]
        for other in accs[1:]:
            acc = self.merge(acc, other)
        return self.finalize(acc)


def is_null(value: Any) -> bool:
    """Ray's null for accumulators: None, a float NaN or pandas' NA."""
    if value is None or type(value).__name__ == "NAType":
        return True
    return isinstance(value, (float, np.floating)) and bool(np.isnan(value))


class AggregateFnV2(AggregateFn, abc.ABC):
    """Ray's interface for a custom aggregation: subclass it and implement
    ``aggregate_block(block) -> accumulator`` (a group's rows, an Arrow table)
    and ``combine(current_accumulator, new) -> accumulator``; ``finalize(acc)``
    (default: the accumulator) makes the result, column ``name``.

    Nulls follow Ray's rules, so a user's combine never sees one: with
    ``ignore_nulls`` a group starts empty (None) and a null partial result
    is skipped; without, a group starts at ``zero_factory()`` and any null
    partial result makes the group's result null.  Finalize is not called on
    a null accumulator."""

    def __init__(self, name: str, zero_factory: Callable[[], Any], *, on: str | None,
                 ignore_nulls: bool) -> None:
        what = type(self).__name__
        if not isinstance(name, str) or not name:
            raise ValueError(f"{what}: name must be a non-empty string, got {name!r}")
        if not callable(zero_factory):
            raise TypeError(f"{what}: zero_factory must be callable, got {zero_factory!r}")
        if on is not None and not isinstance(on, str):
            raise TypeError(f"{what}: on must be a column name or None, got {on!r}")
        self.name = name
        self.zero_factory = zero_factory
        self.on = on
        self.ignore_nulls = bool(ignore_nulls)
        self.accumulate_row = None
        self.accumulate_block = None

    def get_target_column(self) -> str | None:
        return self.on

    def get_agg_name(self) -> str:
        """The name before any parenthesis ('sum' of 'sum(x)'), as Ray's."""
        return self.name.split("(", 1)[0]

    def columns(self) -> list[str]:
        return [self.on] if self.on else []

    @abc.abstractmethod
    def aggregate_block(self, block: pa.Table) -> Any:
        """A partial result for the rows of ``block`` (one group's, or a whole
        block's for a dataset-wide aggregation)."""

    @abc.abstractmethod
    def combine(self, current_accumulator: Any, new: Any) -> Any:
        """Two partial results joined."""

    def finalize(self, accumulator: Any) -> Any:  # type: ignore[override]
        return accumulator

    def _zero(self) -> Any:
        return None if self.ignore_nulls else self.zero_factory()

    def _combine_safe(self, current: Any, new: Any) -> Any:
        if self.ignore_nulls:
            if is_null(current):
                return new
            return current if is_null(new) else self.combine(current, new)
        if is_null(current) or is_null(new):
            return None
        return self.combine(current, new)

    def group_state(self, key: Any, group: pa.Table) -> Any:
        state = self.aggregate_block(group)
        return None if self.ignore_nulls and is_null(state) else state

    def fold(self, accs: Sequence[Any]) -> Any:
        acc = self._zero()
        for other in accs:
            acc = self._combine_safe(acc, other)
        return None if is_null(acc) else self.finalize(acc)


class _Builtin(AggregateFn):
    kind: Kind

    def __init__(self, on: str | None = None, ignore_nulls: bool = True,
                 alias_name: str | None = None) -> None:
        if on is not None and not isinstance(on, str):
            raise TypeError(f"{type(self).__name__}: on must be a column name, got {on!r}")
        if on is None and self.kind is not Kind.COUNT:
            raise ValueError(f"{type(self).__name__}: on= must name a column")
        self.on = on
        self.ignore_nulls = bool(ignore_nulls)
        self.name = alias_name or f"{self.kind.value}({on or ''})"

    def columns(self) -> list[str]:
        return [self.on] if self.on else []


class Count(_Builtin):
    """Rows per group (``on=None``), or a column's non-null values."""

    kind = Kind.COUNT

    def __init__(self, on: str | None = None, ignore_nulls: bool = False,
                 alias_name: str | None = None) -> None:
        super().__init__(on, ignore_nulls, alias_name)


class Sum(_Builtin):
    kind = Kind.SUM


class Min(_Builtin):
    kind = Kind.MIN


class Max(_Builtin):
    kind = Kind.MAX


class Mean(_Builtin):
    kind = Kind.MEAN


class AbsMax(_Builtin):
    """The largest absolute value."""

    kind = Kind.ABS_MAX


class Quantile(_Builtin):
    """The ``q`` quantile (0 <= q <= 1; 0.5: the median), interpolated linearly
    between the two values around it."""

    kind = Kind.QUANTILE

    def __init__(self, on: str | None = None, q: float = 0.5, ignore_nulls: bool = True,
                 alias_name: str | None = None) -> None:
        super().__init__(on, ignore_nulls, alias_name)
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 <= q <= 1:
            raise ValueError(f"Quantile: q must be a number in [0, 1], got {q!r}")
        self.q = float(q)


class Unique(_Builtin):
    """The distinct values of a group, as a list (nulls included unless
    ``ignore_nulls``)."""

    kind = Kind.UNIQUE

    def __init__(self, on: str | None = None, ignore_nulls: bool = False,
                 alias_name: str | None = None) -> None:
        super().__init__(on, ignore_nulls, alias_name)


class Std(_Builtin):
    """Standard deviation with ``ddof`` (Welford states, combined exactly)."""

    kind = Kind.STD

    def __init__(self, on: str | None = None, ddof: int = 1, ignore_nulls: bool = True,
                 alias_name: str | None = None) -> None:
        super().__init__(on, ignore_nulls, alias_name)
        if isinstance(ddof, bool) or not isinstance(ddof, int) or ddof < 0:
            raise ValueError(f"Std: ddof must be an int >= 0, got {ddof!r}")
        self.ddof = ddof


class ApproximateQuantile(AggregateFnV2):
    """Quantiles of a numeric column from a KLL sketch (datasketches'
    ``kll_floats_sketch``, as Ray's): each group keeps a sketch of
    ``quantile_precision`` (K) items, so memory stays bounded however many
    rows it has; the rank error is about 1.33% at K=200, 0.35% at K=800.
    Nulls and NaN are skipped.  The result is a list, one value per entry of
    ``quantiles``."""

    def __init__(self, on: str, quantiles: list[float], quantile_precision: int = 800,
                 alias_name: str | None = None) -> None:
        try:
            from datasketches import kll_floats_sketch
        except ImportError as exc:
            raise ImportError("ApproximateQuantile needs the datasketches package: "
                              "pip install datasketches") from exc
        if not isinstance(on, str):
            raise TypeError(f"ApproximateQuantile: on must be a column name, got {on!r}")
        if not isinstance(quantiles, (list, tuple)) or not quantiles or not all(
                isinstance(q, (int, float)) and not isinstance(q, bool) and 0 <= q <= 1
                for q in quantiles):
            raise ValueError(f"ApproximateQuantile: quantiles must be a list of numbers in "
                             f"[0, 1], got {quantiles!r}")
        if isinstance(quantile_precision, bool) or not isinstance(quantile_precision, int) \
                or not 8 <= quantile_precision <= 65535:
            raise ValueError(f"ApproximateQuantile: quantile_precision must be an int in "
                             f"8..65535, got {quantile_precision!r}")
        self._sketch = kll_floats_sketch
        self.quantiles = [float(q) for q in quantiles]
        self.quantile_precision = quantile_precision
        super().__init__(alias_name or f"approx_quantile({on})", self._empty, on=on,
                         ignore_nulls=True)

    def _empty(self) -> bytes:
        return self._sketch(k=self.quantile_precision).serialize()

    def aggregate_block(self, block: pa.Table) -> bytes:
        sketch = self._sketch(k=self.quantile_precision)
        values = pc.drop_null(block.column(self.on)).to_numpy().astype(np.float64,
                                                                        copy=False)
        values = values[~np.isnan(values)]
        if len(values):
            sketch.update(values)
        return sketch.serialize()

    def combine(self, current_accumulator: bytes, new: bytes) -> bytes:
        sketch = self._sketch.deserialize(current_accumulator)
        sketch.merge(self._sketch.deserialize(new))
        return sketch.serialize()

    def finalize(self, accumulator: bytes) -> list[float]:
        return list(self._sketch.deserialize(accumulator).get_quantiles(self.quantiles))


def check_aggs(aggs: Sequence[Any], what: str) -> list[AggregateFn]:
    if not aggs:
        raise ValueError(f"{what}: give at least one aggregation")
    for a in aggs:
        if not isinstance(a, AggregateFn):
            raise TypeError(f"{what}: expected AggregateFn objects (Count, Sum, ...), got "
                            f"{type(a).__name__}")
    names = [a.name for a in aggs]
    if len(set(names)) != len(names):
        raise ValueError(f"{what}: two aggregations make the column name in {names}; pass "
                         f"alias_name= to tell them apart")
    return list(aggs)


# ---- the map side: rows -> states ----------------------------------------------------------
def _state_names(i: int, agg: AggregateFn) -> list[str]:
    base = f"__a{i}"
    names = {Kind.COUNT: ["n"], Kind.SUM: ["s"], Kind.MIN: ["m"], Kind.MAX: ["m"],
             Kind.MEAN: ["s", "n"], Kind.STD: ["n", "mean", "m2"], Kind.CUSTOM: ["acc"],
             Kind.ABS_MAX: ["mn", "mx"], Kind.QUANTILE: ["vals"], Kind.UNIQUE: ["vals"]}
    out = [f"{base}{s}" for s in names[agg.kind]]
    if _null_poisons(agg):
        out.append(f"{base}nulls")
    return out


def _null_poisons(agg: AggregateFn) -> bool:
    """With ignore_nulls=False a null makes the result null (Unique keeps it as
    a value instead; Count counts it)."""
    return not getattr(agg, "ignore_nulls", True) and \
        agg.kind not in (Kind.COUNT, Kind.UNIQUE)


def _nan_to_null(table: pa.Table, columns: set[str]) -> pa.Table:
    for name in columns:
        col = table.column(name)
        if pa.types.is_floating(col.type) and pc.any(pc.is_nan(col)).as_py():
            fixed = pc.if_else(pc.is_nan(col), pa.scalar(None, col.type), col)
            table = table.set_column(table.column_names.index(name), name, fixed)
    return table


def _arrow_specs(i: int, agg: AggregateFn) -> list[tuple]:
    """Arrow ``group_by().aggregate`` specs making agg ``i``'s states."""
    on = agg.on
    valid = pc.CountOptions(mode="only_valid")
    if agg.kind is Kind.COUNT:
        if on is None or not agg.ignore_nulls:  # type: ignore[attr-defined]
            specs: list[tuple] = [([], "count_all")]
        else:
            specs = [(on, "count", valid)]
    elif agg.kind is Kind.SUM:
        specs = [(on, "sum")]
    elif agg.kind in (Kind.MIN, Kind.MAX):
        specs = [(on, agg.kind.value)]
    elif agg.kind is Kind.MEAN:
        specs = [(on, "sum"), (on, "count", valid)]
    elif agg.kind is Kind.ABS_MAX:
        specs = [(on, "min"), (on, "max")]
    elif agg.kind is Kind.QUANTILE:
        specs = [(on, "list")]
    elif agg.kind is Kind.UNIQUE:
        keep = "only_valid" if agg.ignore_nulls else "all"  # type: ignore[attr-defined]
        specs = [(on, "distinct", pc.CountOptions(mode=keep))]
    else:  # STD
        specs = [(on, "count", valid), (on, "mean"), (on, "variance", pc.VarianceOptions(ddof=0))]
    if _null_poisons(agg):
        specs.append((on, "count", pc.CountOptions(mode="only_null")))
    return specs


def _group_by(table: pa.Table, keys: list[str], specs: list[tuple],
              names: list[str]) -> pa.Table:
    """Arrow's hash aggregation with the outputs renamed to ``names`` (keys first)."""
    return _keys_first(group_by(table, keys, specs), keys, specs, names)


def _keys_first(out: pa.Table, keys: list[str], specs: list[tuple],
                names: list[str]) -> pa.Table:
    """A group_by result with its keys first (Arrow versions differ), renamed."""
    if keys and out.column_names[:len(keys)] == keys:
        return out.rename_columns(keys + names)
    return out.select([*range(len(specs), out.num_columns), *range(len(specs))]
                      ).rename_columns(keys + names)


def group_ranges(sorted_table: pa.Table, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(start, length) of each group of a table sorted by ``keys`` (Arrow's notion
    of equal keys: nulls together), in order."""
    rows = sorted_table.select(keys).append_column(
        _ROW, pa.array(np.arange(sorted_table.num_rows, dtype=np.int64)))
    g = _group_by(rows, keys, [(_ROW, "min"), ([], "count_all")], ["start", "length"])
    starts = g.column("start").to_numpy()
    lengths = g.column("length").to_numpy()
    by_start = np.argsort(starts, kind="stable")
    return starts[by_start], lengths[by_start]


def _sorted(table: pa.Table, keys: list[str]) -> pa.Table:
    if table.num_rows < 2 or not keys:
        return table
    at = pc.sort_indices(table, sort_keys=[(k, "ascending") for k in keys])
    return table.take(at)


def partial(table: pa.Table, keys: list[str], aggs: list[AggregateFn]) -> pa.Table:
    """One row of states per group of ``table`` (keys first)."""
    if not keys:
        table = table.append_column(_ONE, pa.array(np.zeros(table.num_rows, np.int8)))
        keys = [_ONE]
    # built-ins only: a custom aggregation sees the values as they are
    table = _nan_to_null(table, {c for a in aggs if a.kind is not Kind.CUSTOM
                                 for c in a.columns()})
    specs, names = [], []
    for i, agg in enumerate(aggs):
        if agg.kind is not Kind.CUSTOM:
            specs += _arrow_specs(i, agg)
            names += _state_names(i, agg)
    custom = [(i, a) for i, a in enumerate(aggs) if a.kind is Kind.CUSTOM]
    if not custom:
        out = _group_by(table, keys, specs, names)
        return _finish_std_states(out, aggs)
    table = _sorted(table, keys)
    starts, lengths = group_ranges(table, keys)
    out = _group_by(table, keys, specs, names) if specs else \
        _group_by(table, keys, [([], "count_all")], ["__drop"]).drop_columns(["__drop"])
    for i, agg in custom:
        accs = []
        for start, length in zip(starts, lengths, strict=True):
            group = table.slice(start, length)
            accs.append(_accumulate(agg, _key_of(group, keys), group))
        out = out.append_column(_state_names(i, agg)[0], _objects(accs))
    return _finish_std_states(out, aggs)


def _finish_std_states(states: pa.Table, aggs: list[AggregateFn]) -> pa.Table:
    """Arrow gives a group's variance; the state keeps m2 = variance * n."""
    for i, agg in enumerate(aggs):
        if agg.kind is Kind.STD:
            n_name, _, m2_name = _state_names(i, agg)[:3]
            n = pc.cast(states.column(n_name), pa.float64())
            # zeros made from n, not a scalar 0.0 (that conversion imports pandas:
            # block.arrow_of)
            m2 = pc.multiply(pc.coalesce(states.column(m2_name), pc.subtract(n, n)), n)
            states = states.set_column(states.column_names.index(m2_name), m2_name, m2)
    return states


def _key_of(group: pa.Table, keys: list[str]) -> Any:
    if keys == [_ONE]:
        return None
    values = tuple(group.column(k)[0].as_py() for k in keys)
    return values[0] if len(values) == 1 else values


def _objects(values: list[Any]) -> pa.Array:
    """Accumulators as a pickled-object column (whatever their type)."""
    storage = pa.array([pickle.dumps(v, protocol=5) for v in values], type=pa.binary())
    return pa.ExtensionArray.from_storage(PythonObjectType(), storage)


def _accumulate(agg: AggregateFn, key: Any, group: pa.Table) -> Any:
    try:
        return agg.group_state(key, group)
    except Exception as exc:
        raise UserCodeException(f"Aggregate({agg.name}): the user function raised "
                                f"{type(exc).__name__}: {exc} (on the group with key "
                                f"{key!r}, {group.num_rows} rows)") from exc


# ---- the reduce side: states -> results ------------------------------------------------------
def _combine_specs(i: int, agg: AggregateFn) -> list[tuple]:
    names = _state_names(i, agg)
    if agg.kind in (Kind.MIN, Kind.MAX):
        specs = [(names[0], agg.kind.value)]
    elif agg.kind is Kind.ABS_MAX:
        specs = [(names[0], "min"), (names[1], "max")]
    elif agg.kind in (Kind.QUANTILE, Kind.UNIQUE):
        specs = []  # the lists are joined per group range (_from_values)
    elif agg.kind is Kind.STD:
        specs = [(names[0], "sum")]  # n; mean and m2 are combined in numpy
    else:
        specs = [(n, "sum") for n in names[:2 if agg.kind is Kind.MEAN else 1]]
    if len(names) > len(specs) and names[-1].endswith("nulls"):
        specs.append((names[-1], "sum"))
    return specs


def combine(states: Sequence[pa.Table], keys: list[str], aggs: list[AggregateFn]) -> pa.Table:
    """The result rows (keys, then one column per aggregation) of every group in
    ``states``, sorted by key."""
    table = concat([s for s in states if s.num_columns])
    group_keys = keys or [_ONE]
    if table.num_columns == 0:
        return pa.table({})
    specs, names = [], []
    for i, agg in enumerate(aggs):
        if agg.kind is not Kind.CUSTOM:
            for spec in _combine_specs(i, agg):
                specs.append(spec)
                names.append(f"{spec[0]}@")
    if not specs:
        specs, names = [([], "count_all")], ["__drop@"]
    needs_ranges = any(a.kind in (Kind.STD, Kind.CUSTOM, Kind.QUANTILE, Kind.UNIQUE)
                       for a in aggs)
    # counted groups come out in key order: no sort of the states (30M rows in a
    # full-size 1M-group mean) unless an aggregation reads each group's rows
    dense = None if needs_ranges else dense_group_by(table, group_keys, specs)
    if dense is not None:
        grouped = _keys_first(dense, group_keys, specs, names)
    else:
        table = _sorted(table, group_keys)
        grouped = _group_by(table, group_keys, specs, names)
    ranges = group_ranges(table, group_keys) if needs_ranges else None
    out = {k: grouped.column(k) for k in keys}
    for i, agg in enumerate(aggs):
        out[agg.name] = _result(i, agg, table, grouped, ranges)
    return pa.table(out)


def _result(i: int, agg: AggregateFn, table: pa.Table, grouped: pa.Table,
            ranges: tuple[np.ndarray, np.ndarray] | None) -> Any:
    names = _state_names(i, agg)
    if agg.kind is Kind.CUSTOM:
        return _custom_result(agg, table.column(names[0]), ranges)  # type: ignore[arg-type]
    if agg.kind in (Kind.QUANTILE, Kind.UNIQUE):
        result = _from_values(agg, table.column(names[0]), ranges)  # type: ignore[arg-type]
        return _poisoned(agg, result, grouped, names)
    first = grouped.column(f"{names[0]}@")
    if agg.kind in (Kind.COUNT, Kind.SUM, Kind.MIN, Kind.MAX):
        result = first
    elif agg.kind is Kind.ABS_MAX:
        result = pc.max_element_wise(pc.abs(first), pc.abs(grouped.column(f"{names[1]}@")))
    elif agg.kind is Kind.MEAN:
        n = grouped.column(f"{names[1]}@")
        # no scalars (Arrow converting a Python scalar imports pandas: see take_rows)
        result = pc.divide(pc.cast(first, pa.float64()),
                           pc.if_else(pc.equal(n, pc.subtract(n, n)), pa.nulls(len(n), n.type),
                                      n))
    else:
        result = _std(table, names, ranges, agg.ddof)  # type: ignore[attr-defined,arg-type]
    return _poisoned(agg, result, grouped, names)


def _poisoned(agg: AggregateFn, result: Any, grouped: pa.Table, names: list[str]) -> Any:
    if not _null_poisons(agg):
        return result
    had_null = pc.greater(grouped.column(f"{names[-1]}@"), 0)
    return pc.if_else(had_null, pa.scalar(None, result.type), result)


def _from_values(agg: AggregateFn, lists: Any, ranges: tuple[np.ndarray, np.ndarray]
                 ) -> pa.Array:
    """Quantile and Unique: each group's lists of values (one per state row)
    joined, then the quantile or the distinct values."""
    lists = lists.combine_chunks() if isinstance(lists, pa.ChunkedArray) else lists
    values = lists.flatten()
    ends = np.cumsum(pc.fill_null(pc.list_value_length(lists), 0).to_numpy())
    out: list[Any] = []
    for start, length in zip(*ranges, strict=True):
        lo = int(ends[start - 1]) if start else 0
        group = values.slice(lo, int(ends[start + length - 1]) - lo)
        if agg.kind is Kind.UNIQUE:
            out.append(pc.unique(group).to_pylist())
            continue
        group = pc.drop_null(group)
        out.append(float(np.quantile(group.to_numpy(zero_copy_only=False),
                                     agg.q)) if len(group) else None)  # type: ignore[attr-defined]
    return pa.array(out, pa.float64()) if agg.kind is Kind.QUANTILE else \
        pa.array(out, pa.list_(values.type))


def _std(table: pa.Table, names: list[str], ranges: tuple[np.ndarray, np.ndarray],
         ddof: int) -> pa.Array:
    starts, _ = ranges
    n = table.column(names[0]).to_numpy(zero_copy_only=False).astype(np.float64)
    mean = pc.fill_null(table.column(names[1]), 0.0).to_numpy(zero_copy_only=False)
    m2 = pc.fill_null(table.column(names[2]), 0.0).to_numpy(zero_copy_only=False)
    if len(n) == 0:
        return pa.array([], pa.float64())
    total = np.add.reduceat(n, starts)
    weighted = np.add.reduceat(n * mean, starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        group_mean = weighted / total
        group_of_row = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(n))))
        spread = m2 + n * (mean - group_mean[group_of_row]) ** 2
        m2_total = np.add.reduceat(spread, starts)
        var = m2_total / (total - ddof)
    valid = total - ddof > 0
    return pa.array(np.sqrt(np.maximum(var, 0.0)), mask=~valid)


def _custom_result(agg: AggregateFn, accs: Any,
                   ranges: tuple[np.ndarray, np.ndarray]) -> pa.Array:
    values = column_to_numpy(accs)
    out = []
    for start, length in zip(*ranges, strict=True):
        try:
            out.append(agg.fold(list(values[start:start + length])))
        except Exception as exc:
            raise UserCodeException(f"Aggregate({agg.name}): merge or finalize raised "
                                    f"{type(exc).__name__}: {exc}") from exc
    return to_arrow_column(out)


@dataclass(frozen=True)
class AggregationSpec:
    """What a grouped aggregation runs: its keys and aggregations (pickled into
    the shuffle's map and reduce tasks)."""

    keys: tuple[str, ...]
    aggs: tuple[AggregateFn, ...]

    def partial(self, table: pa.Table) -> pa.Table:
        missing = [c for c in (*self.keys, *(c for a in self.aggs for c in a.columns()))
                   if c not in table.column_names]
        if missing and table.num_rows:
            raise ValueError(f"aggregate: no column {sorted(set(missing))} (columns: "
                             f"{table.column_names})")
        if missing:
            return pa.table({})
        return partial(table, list(self.keys), list(self.aggs))

    def combine(self, states: Sequence[pa.Table]) -> pa.Table:
        return combine(states, list(self.keys), list(self.aggs))
