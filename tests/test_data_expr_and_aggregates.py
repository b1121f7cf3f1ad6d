"""Ray Data 2.60 API on a local cluster: ``filter(expr=...)`` (Ray's string
predicates, run as Arrow compute), ``AggregateFnV2`` subclasses in
``groupby().aggregate()`` and ``Dataset.aggregate()`` with Ray's null rules,
and ``ApproximateQuantile``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import shoal as ray
from shoal.data.aggregate import AggregateFnV2, ApproximateQuantile
from shoal.data.expressions import col, lit

CLUSTER_INIT_KWARGS = {"num_cpus": 2}


def _items(n: int = 200) -> list[dict]:
    return [{"x": i, "y": "ab"[i % 2], "g": i % 7, "v": None if i % 11 == 0 else float(i)}
            for i in range(n)]


def test_filter_expr_keeps_what_the_function_keeps(shoal_cluster):
    ds = ray.data.from_items(_items()).repartition(5)
    by_expr = ds.filter(expr="x > 50 and y == 'a' or g in [3, 4] and v is not None")
    by_fn = ds.filter(lambda r: r["x"] > 50 and r["y"] == "a"
                      or r["g"] in (3, 4) and r["v"] is not None)
    assert by_expr.take_all() == by_fn.take_all()
    assert by_expr.count() == len(by_fn.take_all()) > 0
    assert "Filter(x > 50" in by_expr.stats()


def test_filter_expr_errors_name_the_expression(shoal_cluster):
    ds = ray.data.from_items(_items(10))
    with pytest.raises(ValueError, match=r"filter\(expr='x >'\): invalid syntax"):
        ds.filter(expr="x >")
    with pytest.raises(ValueError, match="unknown function"):
        ds.filter(expr="__import__('os').getpid() > 0")
    with pytest.raises(ValueError, match="either expr or fn"):
        ds.filter(lambda r: True, expr="x > 1")
    with pytest.raises(Exception, match=r"Filter\(z > 1\): no column \['z'\]"):
        ds.filter(expr="z > 1").take_all()
    with pytest.raises(Exception, match=r"Filter\(y \+ 1 > 2\): the expression cannot be "
                                        r"evaluated on columns y: string"):
        ds.filter(expr="y + 1 > 2").take_all()


def test_expression_trees_filter_and_make_columns(shoal_cluster):
    ds = ray.data.from_items(_items()).repartition(5)
    by_expr = ds.filter(expr=((col("x") > 50) & (col("y") == "a"))
                        | (col("g").is_in([3, 4]) & col("v").is_not_null()))
    by_fn = ds.filter(lambda r: r["x"] > 50 and r["y"] == "a"
                      or r["g"] in (3, 4) and r["v"] is not None)
    assert by_expr.take_all() == by_fn.take_all() != []
    assert "Filter(" in by_expr.stats()

    out = ray.data.range(100).with_column("id_2", col("id") * 2).take(2)
    assert out == [{"id": 0, "id_2": 0}, {"id": 1, "id_2": 2}]
    made = (ray.data.from_items(_items(20))
            .with_columns({"w": col("x") * lit(0.5) + col("g"), "x": col("x") + 1,
                           "one": lit(1), "tag": col("y") + "!"})
            .filter(expr=col("w") >= 5).take_all())
    want = [{**r, "w": r["x"] * 0.5 + r["g"], "x": r["x"] + 1, "one": 1, "tag": r["y"] + "!"}
            for r in _items(20) if r["x"] * 0.5 + r["g"] >= 5]
    assert made == want


def test_expression_tree_errors_name_the_operator_and_column(shoal_cluster):
    ds = ray.data.from_items(_items(10))
    with pytest.raises(Exception, match=r"WithColumns\(q=\(col\('z'\) \* lit\(2\)\)\): column "
                                        r"'q' = .*no column 'z' \(columns: \['x', 'y'"):
        ds.with_column("q", col("z") * 2).take_all()
    with pytest.raises(Exception, match=r"Filter\(\(col\('y'\) > lit\(1\)\)\): cannot be "
                                        r"evaluated on columns y: string"):
        ds.filter(expr=col("y") > 1).take_all()
    with pytest.raises(Exception, match="a predicate must be boolean, this one is int64"):
        ds.filter(expr=col("x") + 1).take_all()
    with pytest.raises(TypeError, match=r"with_column\('q'\): expected an expression"):
        ds.with_column("q", lambda r: 1)
    with pytest.raises(TypeError, match="no truth value"):
        ds.filter(expr=(col("x") > 1) and (col("x") < 5))


class SumOfSquares(AggregateFnV2):
    def __init__(self, on: str, ignore_nulls: bool = True) -> None:
        super().__init__(f"sum_sq({on})", lambda: 0.0, on=on, ignore_nulls=ignore_nulls)

    def aggregate_block(self, block: pa.Table):
        col = block.column(self.get_target_column())
        if not self.ignore_nulls and col.null_count:
            return None
        return pc.sum(pc.multiply(col, col)).as_py()

    def combine(self, current_accumulator, new):
        return current_accumulator + new

    def finalize(self, accumulator):
        return round(accumulator, 6)


def test_aggregate_fn_v2_in_groupby_and_dataset_aggregate(shoal_cluster):
    items = _items()
    ds = ray.data.from_items(items).repartition(4)
    frame = pd.DataFrame(items)
    want = (frame.assign(sq=frame.v ** 2).groupby("g").sq.sum(min_count=1)).round(6)
    got = ds.groupby("g").aggregate(SumOfSquares("v")).to_pandas()
    assert got["g"].tolist() == list(want.index)
    assert got["sum_sq(v)"].tolist() == pytest.approx(want.tolist())
    total = ds.aggregate(SumOfSquares("v"), SumOfSquares("x"))
    assert total == {"sum_sq(v)": pytest.approx(round(float((frame.v ** 2).sum()), 6)),
                     "sum_sq(x)": pytest.approx(float((frame.x ** 2).sum()))}


def test_a_keyless_groupby_is_a_dataset_of_one_row(shoal_cluster):
    items = _items()
    frame = pd.DataFrame(items)
    ds = ray.data.from_items(items).repartition(4)
    one = ds.groupby(None).aggregate(SumOfSquares("x"))
    assert one.count() == 1
    assert one.take_all() == [{"sum_sq(x)": pytest.approx(float((frame.x ** 2).sum()))}]
    assert ds.groupby(None).mean("x").take_all() == [{"mean(x)": pytest.approx(frame.x.mean())}]


def test_aggregate_fn_v2_follows_rays_null_rules(shoal_cluster):
    rows = [{"g": 0, "v": 1.0}, {"g": 0, "v": None}, {"g": 1, "v": 2.0},
            {"g": 2, "v": None}]
    ds = ray.data.from_items(rows).repartition(2)
    skip = ds.groupby("g").aggregate(SumOfSquares("v")).take_all()
    assert [r["sum_sq(v)"] for r in skip] == [1.0, 4.0, None]  # an all-null group: null
    poison = ds.groupby("g").aggregate(SumOfSquares("v", ignore_nulls=False)).take_all()
    assert [r["sum_sq(v)"] for r in poison] == [None, 4.0, None]


def test_aggregate_fn_v2_checks_its_arguments_and_the_column(shoal_cluster):
    with pytest.raises(TypeError, match="abstract"):
        AggregateFnV2("x", lambda: 0, on="v", ignore_nulls=True)
    class Unnamed(SumOfSquares):
        def __init__(self) -> None:
            AggregateFnV2.__init__(self, "", lambda: 0.0, on="v", ignore_nulls=True)

    with pytest.raises(ValueError, match="name must be a non-empty string"):
        Unnamed()
    with pytest.raises(Exception, match=r"no column \['nope'\]"):
        ray.data.from_items(_items(5)).aggregate(SumOfSquares("nope"))


def test_approximate_quantile_matches_rays_example_and_numpy(shoal_cluster):
    ds = ray.data.from_items([{"value": v} for v in (20.0, 40.0, 60.0, 80.0, 100.0)])
    assert ds.aggregate(ApproximateQuantile(on="value", quantiles=[0.1, 0.5, 0.9])) == {
        "approx_quantile(value)": [20.0, 60.0, 100.0]}
    rng = np.random.default_rng(0)
    values = rng.normal(size=40_000)
    frame = pd.DataFrame({"k": np.arange(len(values)) % 3, "v": values})
    got = ray.data.from_pandas(frame).repartition(8).groupby("k").aggregate(
        ApproximateQuantile("v", [0.25, 0.5, 0.75], quantile_precision=200)).take_all()
    for row in got:
        exact = np.quantile(frame.v[frame.k == row["k"]], [0.25, 0.5, 0.75])
        assert np.abs(np.array(row["approx_quantile(v)"]) - exact).max() < 0.1
    with pytest.raises(ValueError, match="quantiles must be a list"):
        ApproximateQuantile("v", [1.5])
