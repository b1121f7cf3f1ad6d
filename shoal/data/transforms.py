"""The transforms a map stage runs inside a task or an actor: each takes an
iterator of blocks and yields blocks, so a fused chain (read -> map -> filter
-> map_batches) is one generator pipeline in one task, with no block stored
between its steps.

Every call into user code goes through :func:`_call_user`, which turns an
exception into a :class:`UserCodeException` naming the operator and the rows
it was given, with the original as the cause (its traceback reaches the
driver with the task's error).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from shoal.data.block import (
    BatchFormat,
    batches_of,
    column_to_numpy,
    rows_of,
    table_from_rows,
    to_arrow_column,
    to_batch,
    to_block,
)
from shoal.data.errors import DataError, UserCodeException

ROWS_PER_OUTPUT_BLOCK = 4096  # rows buffered by row-wise transforms before a block is made


def _short(value: Any, limit: int = 200) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


def _call_user(op: str, fn: Callable, what: str, arg: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(arg, *args, **kwargs)
    except UserCodeException:
        raise
    except Exception as exc:
        raise UserCodeException(
            f"{op}: the user function {_fn_name(fn)} raised {type(exc).__name__}: {exc} "
            f"(on {what})") from exc


def _fn_name(fn: Any) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(type(fn), "__qualname__", "?")
    return f"{name}()"


def _describe_batch(table: pa.Table, first_row: int) -> str:
    head = next(rows_of(table.slice(0, 1)), {}) if table.num_rows else {}
    return (f"a batch of {table.num_rows} rows, rows {first_row}..{first_row + table.num_rows - 1} "
            f"of the task's input; first row {_short(head)}")


class Transform:
    """Base: ``apply(blocks) -> blocks``; ``setup()`` runs once where the stage
    runs (an actor's constructor), for callable classes."""

    if TYPE_CHECKING:
        name: str
        preserves_rows: bool

    def setup(self) -> None:
        pass

    def apply(self, blocks: Iterator[pa.Table]) -> Iterator[pa.Table]:
        raise NotImplementedError


def _resolve_callable(fn: Any, ctor_args: tuple, ctor_kwargs: dict, op: str) -> Callable:
    if not inspect.isclass(fn):
        return fn
    try:
        return fn(*ctor_args, **ctor_kwargs)
    except Exception as exc:
        raise UserCodeException(f"{op}: constructing {fn.__qualname__}() raised "
                                f"{type(exc).__name__}: {exc}") from exc


@dataclass
class MapBatches(Transform):
    fn: Any
    name: str
    batch_size: int | None
    batch_format: BatchFormat
    fn_args: tuple = ()
    fn_kwargs: dict = field(default_factory=dict)
    ctor_args: tuple = ()
    ctor_kwargs: dict = field(default_factory=dict)
    preserves_rows: bool = False

    def setup(self) -> None:
        self._callable = _resolve_callable(self.fn, self.ctor_args, self.ctor_kwargs, self.name)

    def apply(self, blocks: Iterator[pa.Table]) -> Iterator[pa.Table]:
        fn = getattr(self, "_callable", None)
        if fn is None:
            self.setup()
            fn = self._callable
        seen = 0
        for table in batches_of(blocks, self.batch_size):
            batch = to_batch(table, self.batch_format)
            out = _call_user(self.name, fn, _describe_batch(table, seen), batch,
                             *self.fn_args, **self.fn_kwargs)
            seen += table.num_rows
            for produced in _outputs(out, self.name):
                yield to_block(produced, f"{self.name}: {_fn_name(fn)}")


def _outputs(out: Any, op: str) -> Iterator[Any]:
    """A batch, or each batch of a generator the user function returned."""
    if isinstance(out, (Mapping, pa.Table)) or type(out).__name__ == "DataFrame":
        yield out
    elif inspect.isgenerator(out) or isinstance(out, Iterator):
        yield from out
    elif out is None:
        raise DataError(f"{op}: the user function returned None; return a batch (a dict of "
                        f"columns, a pandas DataFrame or a pyarrow Table)")
    else:
        yield out


@dataclass
class MapRows(Transform):
    """map (one row in, one row out), flat_map (a list of rows out) and filter
    (a bool out)."""

    fn: Any
    name: str
    kind: str  # "map" | "flat_map" | "filter"
    fn_args: tuple = ()
    fn_kwargs: dict = field(default_factory=dict)
    ctor_args: tuple = ()
    ctor_kwargs: dict = field(default_factory=dict)

    @property
    def preserves_rows(self) -> bool:  # type: ignore[override]
        return self.kind == "map"

    def setup(self) -> None:
        self._callable = _resolve_callable(self.fn, self.ctor_args, self.ctor_kwargs, self.name)

    def apply(self, blocks: Iterator[pa.Table]) -> Iterator[pa.Table]:
        fn = getattr(self, "_callable", None)
        if fn is None:
            self.setup()
            fn = self._callable
        out: list[dict] = []
        seen = 0
        for table in blocks:
            if self.kind == "filter":
                yield self._filter(fn, table, seen)
                seen += table.num_rows
                continue
            for row in rows_of(table):
                result = _call_user(self.name, fn, f"row {seen}: {_short(row)}", row,
                                    *self.fn_args, **self.fn_kwargs)
                seen += 1
                if self.kind == "map":
                    if not isinstance(result, Mapping):
                        raise DataError(f"{self.name}: the user function must return a dict "
                                        f"(one row), got {type(result).__name__}")
                    out.append(result)
                else:
                    out.extend(self._rows(result))
                if len(out) >= ROWS_PER_OUTPUT_BLOCK:
                    yield table_from_rows(out)
                    out = []
        if out:
            yield table_from_rows(out)

    def _rows(self, result: Any) -> list:
        try:
            rows = list(result)
        except TypeError:
            raise DataError(f"{self.name}: the user function must return a list of dicts, "
                            f"got {type(result).__name__}") from None
        for row in rows:
            if not isinstance(row, Mapping):
                raise DataError(f"{self.name}: the user function must return a list of dicts, "
                                f"got an element of type {type(row).__name__}")
        return rows

    def _filter(self, fn: Callable, table: pa.Table, seen: int) -> pa.Table:
        keep = []
        for i, row in enumerate(rows_of(table)):
            verdict = _call_user(self.name, fn, f"row {seen + i}: {_short(row)}", row,
                                 *self.fn_args, **self.fn_kwargs)
            keep.append(bool(verdict))
        return table.filter(pa.array(keep, type=pa.bool_())) if keep else table


@dataclass
class AddColumn(Transform):
    col: str
    fn: Any
    batch_format: BatchFormat
    name: str = "AddColumn"
    preserves_rows: bool = True

    def apply(self, blocks: Iterator[pa.Table]) -> Iterator[pa.Table]:
        seen = 0
        for table in blocks:
            batch = to_batch(table, self.batch_format)
            values = _call_user(self.name, self.fn, _describe_batch(table, seen), batch)
            seen += table.num_rows
            column = to_arrow_column(values)
            if len(column) != table.num_rows:
                raise DataError(f"{self.name}: the function made {len(column)} values for a "
                                f"batch of {table.num_rows} rows")
            if self.col in table.column_names:
                table = table.set_column(table.column_names.index(self.col), self.col, column)
            else:
                table = table.append_column(self.col, column)
            yield table


@dataclass
class Columns(Transform):
    """select_columns / drop_columns / rename_columns: Arrow metadata only."""

    kind: str  # "select" | "drop" | "rename"
    names: Any  # list[str] or dict[str, str]
    name: str = "Project"
    preserves_rows: bool = True

    def apply(self, blocks: Iterator[pa.Table]) -> Iterator[pa.Table]:
        for table in blocks:
            yield self._one(table)

    def _one(self, table: pa.Table) -> pa.Table:
        have = table.column_names
        if self.kind == "rename":
            if isinstance(self.names, Mapping):
                missing = [c for c in self.names if c not in have]
                new = [self.names.get(c, c) for c in have]
            else:
                if len(self.names) != len(have):
                    raise DataError(f"{self.name}: {len(self.names)} new names for "
                                    f"{len(have)} columns {have}")
                missing, new = [], list(self.names)
            if missing:
                raise DataError(f"{self.name}: no column {missing} (columns: {have})")
            return table.rename_columns(new)
        missing = [c for c in self.names if c not in have]
        if missing:
            raise DataError(f"{self.name}: no column {missing} (columns: {have})")
        if self.kind == "select":
            return table.select(list(self.names))
        return table.drop_columns(list(self.names))


@dataclass
class BlockFn(Transform):
    """An internal table -> table function (slicing, writing)."""

    fn: Callable[[pa.Table], pa.Table]
    name: str
    preserves_rows: bool = False

    def apply(self, blocks: Iterator[pa.Table]) -> Iterator[pa.Table]:
        for table in blocks:
            yield self.fn(table)


def numpy_columns(table: pa.Table) -> dict[str, Any]:
    return {n: column_to_numpy(table.column(n)) for n in table.column_names}
