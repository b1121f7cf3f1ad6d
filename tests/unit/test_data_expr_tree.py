"""Ray's expression trees (shoal/data/expressions.py): ``col``/``lit`` and the
operators build a tree; evaluated on an Arrow block it gives Ray 2.60's
results (the expected values below were produced by Ray 2.60's evaluator on
the same table), and bad use is refused with an error naming what was wrong."""

from __future__ import annotations

import pickle

import pyarrow as pa
import pytest

from shoal.data.expressions import Expr, ExpressionError, Operation, col, lit

TABLE = pa.table({"a": [1, 2, 3, -7], "b": [2.0, 0.5, None, 2.0], "s": ["x", "y", "z", "w"]})


def _values(expr: Expr) -> list:
    out = expr.evaluate(TABLE)
    return out.to_pylist() if hasattr(out, "to_pylist") else out


@pytest.mark.parametrize("expr, expected", [
    (col("a") / 2, [0, 1, 1, -3]),  # Arrow's integer division, as Ray
    (col("a") // 2, [0.0, 1.0, 1.0, -3.0]),
    (col("a") % 3, [1.0, 2.0, 0.0, -1.0]),
    (col("a") + col("b"), [3.0, 2.5, None, -5.0]),
    (col("s") + "q", ["xq", "yq", "zq", "wq"]),
    (col("a") > 1, [False, True, True, False]),
    ((col("a") > 1) & (col("b") < 1), [False, True, None, False]),
    (~(col("a") > 1), [True, False, False, True]),
    (col("a").is_in([1, 3]), [True, False, True, False]),
    (col("a").not_in([1, 3]), [False, True, False, True]),
    (col("b").is_null(), [False, False, True, False]),
    (col("b").is_not_null(), [True, True, False, True]),
    (lit(3) - col("a"), [2, 1, 0, 10]),
    (3 - col("a"), [2, 1, 0, 10]),
    (col("a") * lit(2.5), [2.5, 5.0, 7.5, -17.5]),
    (col("a").abs(), [1, 2, 3, 7]),
    (col("a").power(2), [1, 4, 9, 49]),
    ((col("a") == 2) | (col("s") == "w"), [False, True, False, True]),
    (col("a").alias("z"), [1, 2, 3, -7]),
])
def test_operators_give_rays_results(expr, expected):
    assert _values(expr) == expected


def test_the_tree_knows_its_columns_names_and_operations():
    expr = (col("x") + lit(5)) * col("y")
    assert expr.op is Operation.MUL and expr.left.op is Operation.ADD
    assert expr.columns() == {"x", "y"}
    assert col("x").name == "x" and expr.name is None and expr.alias("q").name == "q"
    assert repr(expr) == "((col('x') + lit(5)) * col('y'))"
    assert expr.structurally_equals((col("x") + 5) * col("y"))
    assert not expr.structurally_equals(col("x") * col("y"))
    again = pickle.loads(pickle.dumps(expr))
    assert again.structurally_equals(expr) and {expr: 1}[expr] == 1


def test_bad_use_is_refused_with_a_clear_error():
    with pytest.raises(TypeError, match="no truth value.*& | ~"):
        _ = col("a") > 1 and col("b") < 2
    with pytest.raises(TypeError, match="column name must be a non-empty string"):
        col(3)
    with pytest.raises(TypeError, match="lit: Arrow has no scalar for object"):
        lit(object())
    with pytest.raises(TypeError, match="is_in: expected a list of values"):
        col("a").is_in(5)
    with pytest.raises(TypeError, match="not of one type"):
        col("a").is_in([1, "x"])
    with pytest.raises(ExpressionError, match=r"no column 'nope' \(columns: \['a', 'b', 's'\]"):
        (col("nope") + 1).evaluate(TABLE)
    with pytest.raises(ExpressionError, match="cannot be evaluated on columns s: string"):
        (col("s") * 2).evaluate(TABLE)
    with pytest.raises(AttributeError, match="no attribute 'sqrtt'"):
        col("a").sqrtt()
