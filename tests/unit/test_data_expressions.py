"""filter(expr=...)'s parser (shoal/data/expr_text.py): Ray's string predicates
become Arrow expressions; anything else is refused with an error naming the
expression, and nothing the user wrote is ever evaluated."""

from __future__ import annotations

import pyarrow as pa
import pytest

from shoal.data import expr_text as expressions

TABLE = pa.table({"x": [1, 5, 7, None, 10], "y": ["a", "b", "a", "a", None],
                  "f": [1.0, float("nan"), 2.0, 3.0, 4.0],
                  "s": [{"k": i} for i in range(5)]})


def _kept(text: str) -> list:
    return TABLE.filter(expressions.parse(text).expression())["x"].to_pylist()


@pytest.mark.parametrize("text, kept", [
    ("x > 5 and y == 'a'", [7]),
    ("x >= 5 or y == 'b'", [5, 7, 10]),
    ("not (x > 5)", [1, 5]),
    ("x in [1, 7]", [1, 7]),
    ("y not in ('a',)", [5, 10]),  # Arrow's is_in: a null is not in a set without null
    ("x is None", [None]),
    ("x is not None and is_valid(y)", [1, 5, 7]),
    ("is_null(y)", [10]),
    ("is_nan(f)", [5]),
    ("is_in(x, [5, 10])", [5, 10]),
    ("x * 2 > 9", [5, 7, 10]),
    ("-x < -6", [7, 10]),
    ("1 < x < 10", [5, 7]),
    ("x - 1 == 4.0", [5]),
    ("s.k >= 3", [None, 10]),
])
def test_predicates_select_the_rows_arrow_selects(text, kept):
    assert _kept(text) == kept


def test_the_columns_read_are_known_before_running():
    assert expressions.parse("x > 5 and y == 'a' or s.k == 1").columns == ("s", "x", "y")


@pytest.mark.parametrize("text, says", [
    ("x >", "invalid syntax"),
    ("__import__('os').system('touch /tmp/x')", "unknown function"),
    ("open('/etc/passwd')", "unknown function open()"),
    ("x.y()", "unknown function x.y()"),
    ("x > 5; y", "invalid syntax"),
    ("lambda: 1", "Lambda 'lambda: 1' is not supported"),
    ("x ** 2 > 1", "operator Pow"),
    ("x in y", "'in' needs a list of constants"),
    ("x[0] > 1", "Subscript"),
    ("is_null(x, 1)", "is_null() takes 1"),
    ("x is 5", "only compares with None"),
    ("5", "must read a column"),
    ("x in [1, 'a']", "not of one type"),
])
def test_bad_expressions_name_themselves(text, says):
    with pytest.raises(ValueError) as err:
        expressions.parse(text)
    assert says in str(err.value)
    assert repr(text) in str(err.value)


def test_not_a_string_is_a_type_error():
    with pytest.raises(TypeError, match="expr must be a string"):
        expressions.parse(5)


def test_a_huge_or_deep_expression_is_refused_not_crashed():
    with pytest.raises(ValueError, match="longer than"):
        expressions.parse("x > 1 and " * 2000 + "x > 1")
    with pytest.raises(ValueError):
        expressions.parse("(" * 3000 + "x" + ")" * 3000 + " > 1")
