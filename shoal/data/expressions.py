"""Ray Data's expressions (``from shoal.data.expressions import col, lit``):
``col("x") * 2 + lit(1)`` builds a tree of nodes, which ``with_column``,
``with_columns`` and ``filter(expr=...)`` carry to their tasks and evaluate
there with Arrow compute on whole blocks (no Python per row).

The operators are Ray 2.60's and give its results on Arrow blocks: ``+ - *``
(``+`` of two strings concatenates), ``/`` is Arrow's ``divide`` (integer
division for two integer columns), ``//`` is the floor of that and ``%`` is
``a - (a // b) * b``; comparisons; ``& | ~`` (Kleene logic: null and false
is false); ``is_null``, ``is_not_null``, ``is_in``, ``not_in``; ``alias``.
Arithmetic is overflow-checked (Ray's wraps around): a wrong number is worse
than an error naming the expression. Python's ``and``/``or``/``not`` cannot
be overloaded, so using an expression as a bool is refused with a pointer
to ``& | ~`` (Ray silently takes it as true).

Why a tree of our own and not ``pyarrow.compute.Expression``: the tree knows
the columns it reads (a missing one is named before Arrow's error), prints
as the user wrote it, and evaluates to a column for ``with_column`` (an
Arrow expression only filters or projects through ``pyarrow.dataset``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


class Operation(enum.StrEnum):
    """The operations of Ray's expression trees (Ray's names and values)."""

    ADD = "add"
    SUB = "sub"
    MUL = "mul"
    DIV = "div"
    MOD = "mod"
    FLOORDIV = "floordiv"
    GT = "gt"
    LT = "lt"
    GE = "ge"
    LE = "le"
    EQ = "eq"
    NE = "ne"
    AND = "and"
    OR = "or"
    NOT = "not"
    IS_NULL = "is_null"
    IS_NOT_NULL = "is_not_null"
    IN = "in"
    NOT_IN = "not_in"


_SYMBOLS = {Operation.ADD: "+", Operation.SUB: "-", Operation.MUL: "*", Operation.DIV: "/",
            Operation.MOD: "%", Operation.FLOORDIV: "//", Operation.GT: ">",
            Operation.LT: "<", Operation.GE: ">=", Operation.LE: "<=", Operation.EQ: "==",
            Operation.NE: "!=", Operation.AND: "&", Operation.OR: "|"}

# Ray's expression methods that are one Arrow function of the value (UDFs in Ray).
_FUNCTIONS = {"abs": "abs_checked", "ceil": "ceil", "floor": "floor", "round": "round",
              "trunc": "trunc", "exp": "exp", "ln": "ln_checked", "log10": "log10_checked",
              "log2": "log2_checked", "sin": "sin", "cos": "cos", "tan": "tan",
              "asin": "asin", "acos": "acos", "atan": "atan", "negate": "negate_checked",
              "sign": "sign", "power": "power_checked"}


class ExpressionError(ValueError):
    """An expression that cannot be evaluated on a block: a column the block
    lacks, or types its operation has no kernel for."""


class Expr:
    """A node of an expression tree.  Operators build bigger trees; nothing is
    computed until a task evaluates the tree on a block."""

    __slots__ = ()

    @property
    def name(self) -> str | None:
        """The column name this expression has (a column or an alias), else None."""
        return None

    def columns(self) -> set[str]:
        """The column names the tree reads."""
        raise NotImplementedError

    def evaluate(self, table: pa.Table) -> Any:
        """This expression's values on ``table``: an Arrow array (or a scalar
        for a tree of literals).  Raises :class:`ExpressionError`."""
        missing = sorted(c for c in self.columns() if c not in table.column_names)
        if missing:
            raise ExpressionError(f"no column {missing[0]!r} (columns: {table.column_names})")
        try:
            return self._eval(table)
        except (pa.ArrowException, TypeError) as exc:
            raise ExpressionError(f"cannot be evaluated on {_types(table, self.columns())}: "
                                  f"{exc}") from None

    def _eval(self, table: pa.Table) -> Any:
        raise NotImplementedError

    def structurally_equals(self, other: Any) -> bool:
        """True when ``other`` is the same tree (``==`` builds an expression)."""
        return type(other) is type(self) and repr(other) == repr(self)

    def __bool__(self) -> bool:
        raise TypeError(f"the expression {self!r} has no truth value: combine conditions "
                        f"with & | ~ (and parenthesize comparisons), not and/or/not")

    def _bin(self, other: Any, op: Operation) -> BinaryExpr:
        return BinaryExpr(op, self, _as_expr(other))

    def _rbin(self, other: Any, op: Operation) -> BinaryExpr:
        return BinaryExpr(op, _as_expr(other), self)

    def __add__(self, other: Any) -> Expr:
        return self._bin(other, Operation.ADD)

    def __radd__(self, other: Any) -> Expr:
        return self._rbin(other, Operation.ADD)

    def __sub__(self, other: Any) -> Expr:
        return self._bin(other, Operation.SUB)

    def __rsub__(self, other: Any) -> Expr:
        return self._rbin(other, Operation.SUB)

    def __mul__(self, other: Any) -> Expr:
        return self._bin(other, Operation.MUL)

    def __rmul__(self, other: Any) -> Expr:
        return self._rbin(other, Operation.MUL)

    def __truediv__(self, other: Any) -> Expr:
        return self._bin(other, Operation.DIV)

    def __rtruediv__(self, other: Any) -> Expr:
        return self._rbin(other, Operation.DIV)

    def __floordiv__(self, other: Any) -> Expr:
        return self._bin(other, Operation.FLOORDIV)

    def __rfloordiv__(self, other: Any) -> Expr:
        return self._rbin(other, Operation.FLOORDIV)

    def __mod__(self, other: Any) -> Expr:
        return self._bin(other, Operation.MOD)

    def __rmod__(self, other: Any) -> Expr:
        return self._rbin(other, Operation.MOD)

    def __gt__(self, other: Any) -> Expr:
        return self._bin(other, Operation.GT)

    def __lt__(self, other: Any) -> Expr:
        return self._bin(other, Operation.LT)

    def __ge__(self, other: Any) -> Expr:
        return self._bin(other, Operation.GE)

    def __le__(self, other: Any) -> Expr:
        return self._bin(other, Operation.LE)

    def __eq__(self, other: Any) -> Expr:  # type: ignore[override]
        return self._bin(other, Operation.EQ)

    def __ne__(self, other: Any) -> Expr:  # type: ignore[override]
        return self._bin(other, Operation.NE)

    __hash__ = object.__hash__

    def __and__(self, other: Any) -> Expr:
        return self._bin(other, Operation.AND)

    def __rand__(self, other: Any) -> Expr:
        return self._rbin(other, Operation.AND)

    def __or__(self, other: Any) -> Expr:
        return self._bin(other, Operation.OR)

    def __ror__(self, other: Any) -> Expr:
        return self._rbin(other, Operation.OR)

    def __invert__(self) -> Expr:
        return UnaryExpr(Operation.NOT, self)

    def is_null(self) -> Expr:
        return UnaryExpr(Operation.IS_NULL, self)

    def is_not_null(self) -> Expr:
        return UnaryExpr(Operation.IS_NOT_NULL, self)

    def is_in(self, values: list | tuple | set) -> Expr:
        return BinaryExpr(Operation.IN, self, _value_list(values, "is_in"))

    def not_in(self, values: list | tuple | set) -> Expr:
        return BinaryExpr(Operation.NOT_IN, self, _value_list(values, "not_in"))

    def alias(self, name: str) -> Expr:
        """The same values under the column name ``name``."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"alias: the name must be a non-empty string, got {name!r}")
        return AliasExpr(self, name)

    def __getattr__(self, attr: str) -> Any:
        if attr in _FUNCTIONS:
            return lambda *args: FunctionExpr(attr, (self, *map(_as_expr, args)))
        raise AttributeError(f"{type(self).__name__} has no attribute {attr!r}")


def _as_expr(value: Any) -> Expr:
    return value if isinstance(value, Expr) else lit(value)


def _value_list(values: Any, what: str) -> LiteralExpr:
    if isinstance(values, Expr) or not isinstance(values, (list, tuple, set, frozenset)):
        raise TypeError(f"{what}: expected a list of values, got {type(values).__name__}")
    try:
        pa.array(list(values))
    except (pa.ArrowException, TypeError) as exc:
        raise TypeError(f"{what}: the values {list(values)!r} are not of one type "
                        f"({exc})") from None
    return LiteralExpr(list(values))


def _types(table: pa.Table, columns: set[str]) -> str:
    named = [f"{c}: {table.schema.field(c).type}" for c in sorted(columns)]
    return f"columns {', '.join(named)}" if named else "literals"


@dataclass(frozen=True, eq=False, repr=False)
class ColumnExpr(Expr):
    """A column of the block, by name."""

    _name: str

    @property
    def name(self) -> str:
        return self._name

    def columns(self) -> set[str]:
        return {self._name}

    def _eval(self, table: pa.Table) -> Any:
        return table[self._name]

    def __repr__(self) -> str:
        return f"col({self._name!r})"


@dataclass(frozen=True, eq=False, repr=False)
class LiteralExpr(Expr):
    """A constant, broadcast against the columns it meets."""

    value: Any

    def columns(self) -> set[str]:
        return set()

    def _eval(self, table: pa.Table) -> Any:
        return self.value

    def __repr__(self) -> str:
        return f"lit({self.value!r})"


@dataclass(frozen=True, eq=False, repr=False)
class BinaryExpr(Expr):
    """``left <op> right``."""

    op: Operation
    left: Expr
    right: Expr

    def columns(self) -> set[str]:
        return self.left.columns() | self.right.columns()

    def _eval(self, table: pa.Table) -> Any:
        left = self.left.evaluate(table)
        right = self.right.evaluate(table)
        return _binary(self.op, left, right)

    def __repr__(self) -> str:
        if self.op in (Operation.IN, Operation.NOT_IN):
            return f"{self.left!r}.{'is_in' if self.op is Operation.IN else 'not_in'}(" \
                   f"{self.right.value!r})"  # type: ignore[attr-defined]
        return f"({self.left!r} {_SYMBOLS[self.op]} {self.right!r})"


@dataclass(frozen=True, eq=False, repr=False)
class UnaryExpr(Expr):
    """``~x``, ``x.is_null()``, ``x.is_not_null()``."""

    op: Operation
    operand: Expr

    def columns(self) -> set[str]:
        return self.operand.columns()

    def _eval(self, table: pa.Table) -> Any:
        value = _arrow(self.operand.evaluate(table))
        if self.op is Operation.NOT:
            return pc.invert(value)
        if self.op is Operation.IS_NULL:
            return pc.is_null(value)
        return pc.is_valid(value)

    def __repr__(self) -> str:
        if self.op is Operation.NOT:
            return f"~{self.operand!r}"
        return f"{self.operand!r}.{self.op.value}()"


@dataclass(frozen=True, eq=False, repr=False)
class AliasExpr(Expr):
    """``expr.alias(name)``: the values of ``expr``, named ``name``."""

    expr: Expr
    _name: str

    @property
    def name(self) -> str:
        return self._name

    def columns(self) -> set[str]:
        return self.expr.columns()

    def _eval(self, table: pa.Table) -> Any:
        return self.expr.evaluate(table)

    def __repr__(self) -> str:
        return f"{self.expr!r}.alias({self._name!r})"


@dataclass(frozen=True, eq=False, repr=False)
class FunctionExpr(Expr):
    """``x.abs()``, ``x.round()``, ``x.power(2)``...: one Arrow function."""

    function: str
    args: tuple[Expr, ...]

    def columns(self) -> set[str]:
        return set().union(*(a.columns() for a in self.args))

    def _eval(self, table: pa.Table) -> Any:
        return pc.call_function(_FUNCTIONS[self.function],
                                [_arrow(a.evaluate(table)) for a in self.args])

    def __repr__(self) -> str:
        rest = ", ".join(repr(a) for a in self.args[1:])
        return f"{self.args[0]!r}.{self.function}({rest})"


def _arrow(value: Any) -> Any:
    if isinstance(value, (pa.Array, pa.ChunkedArray, pa.Scalar)):
        return value
    return pa.scalar(value)


def _is_string(value: Any) -> bool:
    if isinstance(value, str):
        return True
    kind = getattr(value, "type", None)
    if isinstance(kind, pa.DictionaryType):
        kind = kind.value_type
    return kind is not None and (pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _binary(op: Operation, left: Any, right: Any) -> Any:
    if op in (Operation.IN, Operation.NOT_IN):
        found = pc.is_in(_arrow(left), value_set=pa.array(right))
        return found if op is Operation.IN else pc.invert(found)
    if op is Operation.ADD and _is_string(left) and _is_string(right):
        return pc.binary_join_element_wise(_as_string(left), _as_string(right), "")
    a, b = _arrow(left), _arrow(right)
    if op is Operation.FLOORDIV:
        return pc.floor(pc.divide(a, b))
    if op is Operation.MOD:
        return pc.subtract_checked(a, pc.multiply_checked(pc.floor(pc.divide(a, b)), b))
    return _KERNELS[op](a, b)


def _as_string(value: Any) -> Any:
    if isinstance(getattr(value, "type", None), pa.DictionaryType):
        return value.cast(value.type.value_type)
    return value


_KERNELS = {Operation.ADD: pc.add_checked, Operation.SUB: pc.subtract_checked,
            Operation.MUL: pc.multiply_checked, Operation.DIV: pc.divide,
            Operation.GT: pc.greater, Operation.LT: pc.less, Operation.GE: pc.greater_equal,
            Operation.LE: pc.less_equal, Operation.EQ: pc.equal, Operation.NE: pc.not_equal,
            Operation.AND: pc.and_kleene, Operation.OR: pc.or_kleene}


def col(name: str) -> ColumnExpr:
    """The column ``name`` (Ray's ``ray.data.expressions.col``)."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"col: a column name must be a non-empty string, got {name!r}")
    return ColumnExpr(name)


def lit(value: Any) -> LiteralExpr:
    """A constant (Ray's ``ray.data.expressions.lit``): a number, string, bool,
    None, or anything else Arrow has a scalar for."""
    if isinstance(value, Expr):
        raise TypeError(f"lit: {value!r} is an expression already")
    try:
        pa.scalar(value)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise TypeError(f"lit: Arrow has no scalar for {type(value).__name__} "
                        f"{value!r} ({exc})") from None
    return LiteralExpr(value)


__all__ = ["AliasExpr", "BinaryExpr", "ColumnExpr", "Expr", "ExpressionError",
           "FunctionExpr", "LiteralExpr", "Operation", "UnaryExpr", "col", "lit"]
