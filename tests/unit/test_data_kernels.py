"""The pure kernels under shoal.data's shuffles: key ranges (sort_keys.py) and
aggregation states (aggregate.py), checked against pandas on the same data."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.data import sort_keys
from shoal.data.aggregate import (
    AggregateFn,
    AggregationSpec,
    Count,
    Max,
    Mean,
    Min,
    Std,
    Sum,
)
from shoal.data.sort_keys import SortKey


def _ranges_in_order(table: pa.Table, key: SortKey, bounds: pa.Table) -> None:
    """Every row of range i sorts before every row of range i + 1."""
    ids = sort_keys.range_ids(table, bounds, key)
    ordered = sort_keys.order(table, key)
    assert (np.diff(ids[ordered]) >= 0).all()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-5, 5), min_size=1, max_size=60), st.integers(1, 6),
       st.booleans())
def test_numeric_shortcut_and_general_rule_agree(values, ranges, descending):
    table = pa.table({"k": pa.array(values, pa.int64())})
    key = SortKey(("k",), (descending,))
    bounds = sort_keys.boundaries([table], key, ranges)
    fast = sort_keys.range_ids(table, bounds, key)
    # the general rule (a second key column that is constant takes it)
    both = table.append_column("z", pa.array(np.zeros(len(values), np.int64)))
    key2 = SortKey(("k", "z"), (descending, False))
    general = sort_keys.range_ids(both, sort_keys.boundaries([both], key2, ranges), key2)
    np.testing.assert_array_equal(fast, general)
    _ranges_in_order(table, key, bounds)


def test_several_keys_mixed_directions_strings_and_nulls_keep_range_order():
    rng = np.random.default_rng(3)
    n = 2000
    table = pa.table({"a": pa.array(rng.choice(["x", "y", "z", None], n)),
                      "b": pa.array(rng.integers(0, 50, n)),
                      "c": pa.array(rng.normal(size=n))})
    key = SortKey.parse(["a", "b", "c"], [True, False, True], "sort")
    bounds = sort_keys.boundaries([table.slice(0, 700), table.slice(700)], key, 8)
    assert bounds.num_rows == 7
    _ranges_in_order(table, key, bounds)


def test_skewed_keys_still_balance():
    rng = np.random.default_rng(0)
    keys = (rng.exponential(scale=1.0, size=200_000) ** 4)  # crowded towards 0
    table = pa.table({"k": keys})
    key = SortKey(("k",), (False,))
    samples = [sort_keys.sample(table.slice(i, 20_000), key, 64, i)
               for i in range(0, 200_000, 20_000)]
    bounds = sort_keys.boundaries(samples, key, 8)
    sizes = np.bincount(sort_keys.range_ids(table, bounds, key), minlength=8)
    assert sizes.max() < 2 * sizes.min(), sizes
    uniform_cuts = np.linspace(keys.min(), keys.max(), 9)[1:-1]
    uniform = np.bincount(np.searchsorted(uniform_cuts, keys, side="right"), minlength=8)
    assert uniform.max() > 10 * max(1, uniform.min())  # what sampling avoids


def test_split_by_keeps_row_order_within_a_part_and_copies():
    table = pa.table({"v": np.arange(10)})
    parts = sort_keys.split_by(table, np.array([1, 0, 1, 2, 0, 1, 1, 2, 0, 0]), 3)
    assert [p.column("v").to_pylist() for p in parts] == [[1, 4, 8, 9], [0, 2, 5, 6], [3, 7]]


def test_sort_key_errors_name_the_problem():
    with pytest.raises(ValueError, match="2 flags for 1 key"):
        SortKey.parse("a", [True, False], "sort")
    with pytest.raises(TypeError, match="key must be a column name"):
        SortKey.parse(3, False, "sort")


def _frame(n: int = 5000, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"k": rng.integers(0, 40, n), "g": rng.choice(["p", "q", "r"], n),
                         "v": rng.normal(1e6, 3.0, n), "w": rng.integers(-50, 50, n)})


def test_states_combined_match_pandas_whatever_the_split():
    df = _frame()
    table = pa.Table.from_pandas(df, preserve_index=False)
    spec = AggregationSpec(("k", "g"), (Count(), Sum("w"), Min("v"), Max("w"), Mean("v"),
                                        Std("v"), Std("w", ddof=0, alias_name="s0")))
    cuts = [0, 1, 700, 701, 3000, 5000]
    states = [spec.partial(table.slice(a, b - a)) for a, b in itertools.pairwise(cuts)]
    got = spec.combine(states).to_pandas()
    want = df.groupby(["k", "g"]).agg(n=("w", "size"), s=("w", "sum"), lo=("v", "min"),
                                      hi=("w", "max"), m=("v", "mean"), sd=("v", "std"),
                                      s0=("w", lambda x: x.std(ddof=0))).reset_index()
    assert got[["k", "g"]].values.tolist() == want[["k", "g"]].values.tolist()  # key order
    for mine, theirs in [("count()", "n"), ("sum(w)", "s"), ("min(v)", "lo"),
                         ("max(w)", "hi"), ("mean(v)", "m"), ("std(v)", "sd"), ("s0", "s0")]:
        np.testing.assert_allclose(got[mine].to_numpy(float), want[theirs].to_numpy(float),
                                   rtol=1e-9, err_msg=mine)


def test_nulls_and_nan_are_skipped_or_poison_with_ignore_nulls_false():
    table = pa.table({"k": [1, 1, 1, 2, 2], "v": [1.0, None, float("nan"), 2.0, 4.0]})
    spec = AggregationSpec(("k",), (Sum("v"), Mean("v"), Count("v", ignore_nulls=True),
                                    Sum("v", ignore_nulls=False, alias_name="strict")))
    got = spec.combine([spec.partial(table)]).to_pydict()
    assert got == {"k": [1, 2], "sum(v)": [1.0, 6.0], "mean(v)": [1.0, 3.0],
                   "count(v)": [1, 2], "strict": [None, 6.0]}


def test_a_custom_aggregate_fn_merges_accumulators_in_order():
    table = pa.table({"k": [0, 1, 0, 1, 0], "v": ["a", "b", "c", "d", "e"]})
    concat_fn = AggregateFn(init=lambda key: "", accumulate_row=lambda a, r: a + r["v"],
                            merge=lambda a, b: a + b, finalize=str.upper, name="joined")
    spec = AggregationSpec(("k",), (concat_fn,))
    states = [spec.partial(table.slice(0, 3)), spec.partial(table.slice(3))]
    assert spec.combine(states).to_pydict() == {"k": [0, 1], "joined": ["ACE", "BD"]}


def test_dataset_wide_states_and_an_empty_input():
    spec = AggregationSpec((), (Sum("v"), Std("v")))
    table = pa.table({"v": np.arange(10.0)})
    got = spec.combine([spec.partial(table.slice(0, 4)), spec.partial(table.slice(4))])
    assert got.column_names == ["sum(v)", "std(v)"]
    assert got.column("sum(v)")[0].as_py() == 45.0
    assert abs(got.column("std(v)")[0].as_py() - np.std(np.arange(10.0), ddof=1)) < 1e-12
    assert spec.combine([spec.partial(table.slice(0, 0))]).num_rows == 0
