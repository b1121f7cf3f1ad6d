"""The map-stage transforms that evaluate expressions on whole blocks:
``filter(expr=...)`` (a string predicate, expr_text.py, or an expression
tree, expressions.py) and ``with_column`` / ``with_columns`` (trees).  They
fuse with the stage like any map; errors name the operator."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from shoal.data.errors import DataError
from shoal.data.expr_text import Predicate
from shoal.data.expressions import Expr, ExpressionError
from shoal.data.transforms import Transform


def _missing(table: pa.Table, columns: Any) -> list[str]:
    return sorted(c for c in columns if c not in table.column_names)


@dataclass
class ExprFilter(Transform):
    """Keep the rows whose predicate is true (null counts as false, Arrow's rule)."""

    predicate: Predicate | Expr
    name: str
    preserves_rows: bool = False

    def apply(self, blocks: Iterator[pa.Table]) -> Iterator[pa.Table]:
        if isinstance(self.predicate, Expr):
            yield from self._tree(blocks, self.predicate)
        else:
            yield from self._text(blocks, self.predicate)

    def _tree(self, blocks: Iterator[pa.Table], tree: Expr) -> Iterator[pa.Table]:
        for table in blocks:
            if not table.num_rows:
                yield table
                continue
            try:
                mask = tree.evaluate(table)
            except ExpressionError as exc:
                raise DataError(f"{self.name}: {exc}") from None
            if not isinstance(mask, (pa.Array, pa.ChunkedArray)):
                raise DataError(f"{self.name}: the predicate reads no column (it is the "
                                f"constant {mask!r})")
            if not pa.types.is_boolean(mask.type):
                raise DataError(f"{self.name}: a predicate must be boolean, this one is "
                                f"{mask.type}")
            yield table.filter(mask)

    def _text(self, blocks: Iterator[pa.Table], predicate: Predicate) -> Iterator[pa.Table]:
        expression = predicate.expression()
        for table in blocks:
            missing = _missing(table, predicate.columns)
            if missing:
                if not table.num_rows:
                    yield table
                    continue
                raise DataError(f"{self.name}: no column {missing} (columns: "
                                f"{table.column_names})")
            try:
                yield table.filter(expression)
            except (pa.ArrowException, TypeError) as exc:
                named = ", ".join(f"{c}: {table.schema.field(c).type}"
                                  for c in predicate.columns)
                raise DataError(f"{self.name}: the expression cannot be evaluated on "
                                f"columns {named}: {exc}") from None


@dataclass
class WithColumns(Transform):
    """Add (or replace) columns computed by expressions, all from the block as
    it came in, in the mapping's order."""

    exprs: dict[str, Expr]
    name: str
    preserves_rows: bool = True

    def apply(self, blocks: Iterator[pa.Table]) -> Iterator[pa.Table]:
        for table in blocks:
            yield self._one(table)

    def _one(self, table: pa.Table) -> pa.Table:
        values = {}
        for column, expr in self.exprs.items():
            if not table.num_rows and _missing(table, expr.columns()):
                return table  # an empty block with no columns (a filter dropped all)
            try:
                value = expr.evaluate(table)
            except ExpressionError as exc:
                raise DataError(f"{self.name}: column {column!r} = {expr!r}: {exc}") from None
            if not isinstance(value, (pa.Array, pa.ChunkedArray)):
                scalar = value if isinstance(value, pa.Scalar) else pa.scalar(value)
                value = pa.repeat(scalar, table.num_rows)
            values[column] = value
        for column, value in values.items():
            if column in table.column_names:
                table = table.set_column(table.column_names.index(column), column, value)
            else:
                table = table.append_column(column, value)
        return table
