"""``filter(expr="x > 5 and y == 'a'")``: Ray's string predicates (deprecated in
Ray for the expression trees of expressions.py, still accepted), read with
Python's parser and turned into an Arrow compute expression, which the filter
task evaluates on whole blocks (no Python per row).

The user's text is never evaluated: ``ast.parse`` only builds a syntax tree,
and :func:`to_arrow` accepts the few node kinds a predicate needs, rejecting
every other one with an error that names the expression:

=====================================  ======================================
text                                   Arrow
=====================================  ======================================
``x``, ``s.f`` (a struct's field)      ``field("x")``, ``field("s", "f")``
``5``, ``2.5``, ``'a'``, ``True``      scalars (``None``: a null)
``==  !=  <  <=  >  >=``, chained      ``equal`` ... (``a < x < b``: both)
``x in [1, 2]``, ``x not in (...)``    ``is_in`` (and its negation)
``x is None``, ``x is not None``       ``is_null`` / ``is_valid``
``and  or  not``                       ``and_kleene`` / ``or_kleene`` / ``invert``
``+  -  *  /``, unary ``-``            ``add_checked`` ... ``divide``, ``negate``
``is_null(x)``, ``is_valid(x)``,       the functions of Ray's string form
``is_not_null(x)``, ``is_nan(x)``,
``is_in(x, [...])``
=====================================  ======================================

A row whose predicate is null (a comparison with a null) is dropped, as
Arrow's filter does and Ray's expression filter does.
"""

from __future__ import annotations

import ast
import functools
import operator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

MAX_EXPRESSION_CHARS = 10_000

_COMPARE = {ast.Eq: pc.equal, ast.NotEq: pc.not_equal, ast.Lt: pc.less,
            ast.LtE: pc.less_equal, ast.Gt: pc.greater, ast.GtE: pc.greater_equal}
_ARITHMETIC = {ast.Add: pc.add_checked, ast.Sub: pc.subtract_checked,
               ast.Mult: pc.multiply_checked, ast.Div: pc.divide}
_FUNCTIONS = {"is_null": 1, "is_valid": 1, "is_not_null": 1, "is_nan": 1, "is_in": 2}


class _Rejected(ValueError):
    """A part of the expression that is not a predicate we accept."""


@dataclass(frozen=True)
class Predicate:
    """A parsed ``filter(expr=...)``: the text, the columns it reads and the
    Arrow expression (rebuilt from the text where it runs)."""

    text: str
    columns: tuple[str, ...]

    def expression(self) -> pc.Expression:
        return _convert(self.text)[0]


def parse(text: Any) -> Predicate:
    """Check ``text`` now, so a bad expression fails at ``filter()``, not in a task."""
    if not isinstance(text, str):
        raise TypeError(f"filter: expr must be a string such as \"x > 5 and y == 'a'\", "
                        f"got {type(text).__name__}")
    _, columns = _convert(text)
    return Predicate(text=text, columns=tuple(sorted(columns)))


def _convert(text: str) -> tuple[pc.Expression, set[str]]:
    what = f"filter(expr={text!r})"
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ValueError(f"filter: the expression is longer than {MAX_EXPRESSION_CHARS} "
                         f"characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"{what}: invalid syntax ({exc.msg}, column {exc.offset})") from None
    except (RecursionError, MemoryError, ValueError) as exc:
        raise ValueError(f"{what}: cannot be parsed ({type(exc).__name__})") from None
    columns: set[str] = set()
    try:
        out = _Converter(columns).node(tree.body)
    except _Rejected as exc:
        raise ValueError(f"{what}: {exc}") from None
    except RecursionError:
        raise ValueError(f"{what}: nested too deeply") from None
    if not isinstance(out, pc.Expression):
        raise ValueError(f"{what}: a predicate must read a column (this is the constant "
                         f"{out!r})")
    return out, columns


class _Converter:
    """Syntax tree -> Arrow expression; ``columns`` collects the names read."""

    def __init__(self, columns: set[str]) -> None:
        self.columns = columns

    def node(self, node: ast.AST) -> Any:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise _Rejected(f"{_describe(node)} is not supported in a filter expression "
                            f"(use comparisons, and/or/not, in [...], is None, + - * /, "
                            f"is_null(), is_valid(), is_nan(), is_in())")
        return method(node)

    def _expr(self, node: ast.AST) -> pc.Expression:
        value = self.node(node)
        return value if isinstance(value, pc.Expression) else pc.scalar(value)

    def _Constant(self, node: ast.Constant) -> Any:
        if node.value is None or isinstance(node.value, (bool, int, float, str)):
            return node.value
        raise _Rejected(f"the constant {node.value!r} is not supported")

    def _Name(self, node: ast.Name) -> pc.Expression:
        self.columns.add(node.id)
        return pc.field(node.id)

    def _Attribute(self, node: ast.Attribute) -> pc.Expression:
        path = [node.attr]
        inner = node.value
        while isinstance(inner, ast.Attribute):
            path.insert(0, inner.attr)
            inner = inner.value
        if not isinstance(inner, ast.Name):
            raise _Rejected(f"{_describe(node)}: only column.field is supported")
        self.columns.add(inner.id)
        return pc.field(inner.id, *path)

    def _values(self, node: ast.AST) -> list:
        if not isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            raise _Rejected(f"'in' needs a list of constants, got {_describe(node)}")
        values = [self.node(e) for e in node.elts]
        if any(isinstance(v, pc.Expression) for v in values):
            raise _Rejected("the values of 'in' must be constants")
        return values

    def _is_in(self, left: pc.Expression, values: list) -> pc.Expression:
        try:
            value_set = pa.array(values)
        except (pa.ArrowException, TypeError) as exc:
            raise _Rejected(f"the values {values!r} are not of one type ({exc})") from None
        return pc.is_in(left, value_set=value_set)

    def _Compare(self, node: ast.Compare) -> pc.Expression:
        parts = []
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            parts.append(self._compare_one(left, op, right))
            left = right
        return functools.reduce(operator.and_, parts)

    def _compare_one(self, left: ast.AST, op: ast.cmpop, right: ast.AST) -> pc.Expression:
        if isinstance(op, (ast.In, ast.NotIn)):
            found = self._is_in(self._expr(left), self._values(right))
            return found if isinstance(op, ast.In) else ~found
        if isinstance(op, (ast.Is, ast.IsNot)):
            if not (isinstance(right, ast.Constant) and right.value is None):
                raise _Rejected("'is' only compares with None (x is None, x is not None)")
            column = self._expr(left)
            return column.is_null() if isinstance(op, ast.Is) else column.is_valid()
        kernel = _COMPARE[type(op)]
        return kernel(self._expr(left), self._expr(right))

    def _BoolOp(self, node: ast.BoolOp) -> pc.Expression:
        parts = [self._expr(v) for v in node.values]
        join = operator.and_ if isinstance(node.op, ast.And) else operator.or_
        return functools.reduce(join, parts)

    def _UnaryOp(self, node: ast.UnaryOp) -> Any:
        value = self.node(node.operand)
        if isinstance(node.op, ast.Not):
            return ~(value if isinstance(value, pc.Expression) else pc.scalar(value))
        if isinstance(node.op, (ast.USub, ast.UAdd)):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return -value if isinstance(node.op, ast.USub) else value
            if isinstance(value, pc.Expression):
                return pc.negate_checked(value) if isinstance(node.op, ast.USub) else value
        raise _Rejected(f"{_describe(node)} is not supported")

    def _BinOp(self, node: ast.BinOp) -> pc.Expression:
        kernel = _ARITHMETIC.get(type(node.op))
        if kernel is None:
            raise _Rejected(f"the operator {type(node.op).__name__} is not supported")
        return kernel(self._expr(node.left), self._expr(node.right))

    def _Call(self, node: ast.Call) -> pc.Expression:
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in _FUNCTIONS:
            raise _Rejected(f"unknown function {ast.unparse(node.func)}() (known: "
                            f"{', '.join(sorted(_FUNCTIONS))})")
        if node.keywords or len(node.args) != _FUNCTIONS[name]:
            raise _Rejected(f"{name}() takes {_FUNCTIONS[name]} positional argument(s)")
        arg = self._expr(node.args[0])
        if name == "is_null":
            return arg.is_null()
        if name in ("is_valid", "is_not_null"):
            return arg.is_valid()
        if name == "is_nan":
            return arg.is_nan()
        return self._is_in(arg, self._values(node.args[1]))


def _describe(node: ast.AST) -> str:
    try:
        return f"{type(node).__name__} '{ast.unparse(node)}'"
    except Exception:  # noqa: BLE001 (only for the message)
        return type(node).__name__
