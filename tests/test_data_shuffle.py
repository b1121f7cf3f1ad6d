"""shoal.data's all-to-all operations on a local cluster, with Ray Data's
names, arguments and results: random_shuffle, sort, groupby aggregations and
map_groups, dataset-wide aggregates, repartition, unique,
randomize_block_order.  Results are compared with pandas on the same data."""

from __future__ import annotations

import contextlib
import itertools

import numpy as np
import pandas as pd
import pytest

import shoal as ray
from shoal.data.aggregate import (
    AbsMax,
    AggregateFn,
    Count,
    Max,
    Mean,
    Quantile,
    Std,
    Sum,
    Unique,
)

CLUSTER_INIT_KWARGS = {"num_cpus": 2}


@contextlib.contextmanager
def small_partitions():
    """Partitions of ~16 KB, so these small datasets make real shuffles (several
    maps and reducers through shoal.shuffle) instead of one task."""
    ctx = ray.data.DataContext.get_current()
    before = ctx.target_max_block_size
    ctx.target_max_block_size = 16 << 10
    try:
        yield
    finally:
        ctx.target_max_block_size = before


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.integers(0, 30, n), "b": rng.choice(["x", "y", "z"], n),
                         "v": rng.normal(100.0, 5.0, n), "w": rng.integers(0, 1000, n)})


def _dataset(df: pd.DataFrame, blocks: int):
    cuts = np.linspace(0, len(df), blocks + 1).astype(int)
    return ray.data.from_pandas([df.iloc[a:b] for a, b in itertools.pairwise(cuts)])


def test_random_shuffle_is_a_permutation_fixed_by_its_seed(shoal_cluster):
    ds = ray.data.range(5000, override_num_blocks=8)
    with small_partitions():
        one = [r["id"] for r in ds.random_shuffle(seed=7).take_all()]
        assert [r["id"] for r in ds.random_shuffle(seed=7).take_all()] == one
    assert sorted(one) == list(range(5000)) and one != list(range(5000))
    other = [r["id"] for r in ds.random_shuffle(seed=8).take_all()]  # one task
    assert sorted(other) == list(range(5000)) and other != one
    assert ds.random_shuffle().count() == 5000


def test_sort_on_several_keys_matches_pandas(shoal_cluster):
    df = _frame(6000)
    with small_partitions():
        got = _dataset(df, 7).sort(["b", "a", "v"], descending=[True, False, True])
        got = got.to_pandas()
    want = df.sort_values(["b", "a", "v"], ascending=[False, True, False],
                          ignore_index=True)
    pd.testing.assert_frame_equal(got, want)
    desc = _dataset(df, 5).sort("w", descending=True).to_pandas()
    assert desc["w"].tolist() == sorted(df["w"], reverse=True)


def test_sort_with_boundaries_cuts_where_told(shoal_cluster):
    ds = ray.data.range(15).sort("id", boundaries=[5, 10]).materialize()
    blocks = ray.get(ds.to_pandas_refs())
    assert [b["id"].tolist() for b in blocks] == [list(range(5)), list(range(5, 10)),
                                                  list(range(10, 15))]


def test_sort_puts_nulls_last_and_names_a_missing_key(shoal_cluster):
    ds = ray.data.from_items([{"k": 3}, {"k": None}, {"k": 1}])
    assert [r["k"] for r in ds.sort("k").take_all()] == [1, 3, None]
    with pytest.raises(Exception, match="no key column \\['nope'\\]"):
        ds.sort("nope").take_all()


def test_groupby_aggregations_match_pandas(shoal_cluster):
    df = _frame(8000, seed=1)
    ds = _dataset(df, 6)
    grouped = df.groupby(["a", "b"])
    with small_partitions():
        got = ds.groupby(["a", "b"]).aggregate(Count(), Sum("w"), Mean("v"),
                                               Std("v", ddof=0), Max("w")).to_pandas()
    want = grouped.agg(n=("w", "size"), s=("w", "sum"), m=("v", "mean"),
                       sd=("v", lambda x: x.std(ddof=0)), hi=("w", "max")).reset_index()
    assert got.columns.tolist() == ["a", "b", "count()", "sum(w)", "mean(v)", "std(v)",
                                    "max(w)"]
    assert got[["a", "b"]].values.tolist() == want[["a", "b"]].values.tolist()
    for mine, theirs in [("count()", "n"), ("sum(w)", "s"), ("mean(v)", "m"),
                         ("std(v)", "sd"), ("max(w)", "hi")]:
        np.testing.assert_allclose(got[mine].to_numpy(float), want[theirs].to_numpy(float),
                                   rtol=1e-9)
    counts = ds.groupby("b").count().take_all()
    assert counts == [{"b": k, "count()": int(n)} for k, n in df.groupby("b").size().items()]
    std = ds.groupby("a").std("v", ddof=1).to_pandas()["std(v)"].to_numpy()
    np.testing.assert_allclose(std, df.groupby("a")["v"].std().to_numpy(), rtol=1e-9)
    mins = ds.groupby("a").min(["v", "w"]).to_pandas()
    np.testing.assert_array_equal(mins["min(w)"], df.groupby("a")["w"].min().to_numpy())


def test_abs_max_quantile_and_unique_match_numpy(shoal_cluster):
    """Ray 2.60's AbsMax, Quantile (linear interpolation) and Unique (nulls kept
    unless ignore_nulls), grouped through a real shuffle and dataset-wide."""
    df = _frame(6000, seed=3)
    df["v"] = df["v"] - 100.0  # negative and positive values
    df.loc[df.index % 97 == 0, "b"] = None
    ds = _dataset(df, 6)
    with small_partitions():
        got = ds.groupby("a").aggregate(AbsMax("v"), Quantile("v", q=0.3),
                                        Quantile("w", alias_name="median(w)"),
                                        Unique("b")).to_pandas()
    groups = df.groupby("a")
    assert got["a"].tolist() == sorted(df["a"].unique())
    np.testing.assert_allclose(got["abs_max(v)"], groups["v"].agg(lambda x: x.abs().max()))
    np.testing.assert_allclose(got["quantile(v)"], groups["v"].quantile(0.3), rtol=1e-12)
    np.testing.assert_allclose(got["median(w)"], groups["w"].median(), rtol=1e-12)
    for a, values in zip(got["a"], got["unique(b)"], strict=True):
        want = {x if isinstance(x, str) else None for x in df.loc[df["a"] == a, "b"]}
        assert sorted(values, key=str) == sorted(want, key=str)
    whole = ds.aggregate(AbsMax("w"), Quantile("v", q=1.0), Unique("b", ignore_nulls=True))
    assert whole["abs_max(w)"] == int(df["w"].abs().max())
    assert whole["quantile(v)"] == pytest.approx(df["v"].max())
    assert sorted(whole["unique(b)"]) == ["x", "y", "z"]
    nulls = ray.data.from_items([{"v": 1.0}, {"v": None}, {"v": -3.0}])
    assert nulls.aggregate(AbsMax("v"), Quantile("v")) == {"abs_max(v)": 3.0,
                                                           "quantile(v)": -1.0}
    assert nulls.aggregate(AbsMax("v", ignore_nulls=False),
                           Quantile("v", ignore_nulls=False)) == {"abs_max(v)": None,
                                                                  "quantile(v)": None}
    with pytest.raises(ValueError, match="q must be a number in"):
        Quantile("v", q=1.5)


def test_groupby_custom_aggregate_and_map_groups(shoal_cluster):
    ds = ray.data.from_items([{"k": i % 3, "v": i} for i in range(30)])
    product = AggregateFn(init=lambda k: 1, accumulate_row=lambda a, r: a * (r["v"] + 1),
                          merge=lambda a, b: a * b, name="prod")
    got = ds.groupby("k").aggregate(product).take_all()
    want = [int(np.prod([v + 1 for v in range(30) if v % 3 == k])) for k in range(3)]
    assert got == [{"k": k, "prod": want[k]} for k in range(3)]

    def summarize(group: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"k": [group["k"].iloc[0]], "n": [len(group)],
                             "top": [group["v"].max()]})

    rows = ds.groupby("k").map_groups(summarize, batch_format="pandas").take_all()
    assert rows == [{"k": k, "n": 10, "top": 27 + k} for k in range(3)]


def test_dataset_wide_aggregates(shoal_cluster):
    df = _frame(3000, seed=2)
    ds = _dataset(df, 4)
    assert ds.sum("w") == int(df["w"].sum())
    assert ds.min("w") == int(df["w"].min()) and ds.max("w") == int(df["w"].max())
    assert ds.mean("v") == pytest.approx(df["v"].mean(), rel=1e-12)
    assert ds.std("v") == pytest.approx(df["v"].std(), rel=1e-9)
    assert ds.std("v", ddof=0) == pytest.approx(df["v"].std(ddof=0), rel=1e-9)
    assert ds.sum(["w", "a"]) == {"sum(w)": int(df["w"].sum()), "sum(a)": int(df["a"].sum())}
    assert ds.aggregate(Count(), Max("a")) == {"count()": 3000, "max(a)": int(df["a"].max())}
    assert ds.filter(lambda r: False).sum("w") is None


def test_repartition_unique_and_block_order(shoal_cluster):
    ds = ray.data.range(100, override_num_blocks=7)
    even = ds.repartition(4).materialize()
    assert even.num_blocks() == 4
    assert [r["id"] for r in even.take_all()] == list(range(100))  # order kept
    sizes = [len(b) for b in ray.get(even.to_pandas_refs())]
    assert sizes == [25, 25, 25, 25]
    with small_partitions():
        mixed = ds.repartition(3, shuffle=True).materialize()
    blocks = ray.get(mixed.to_pandas_refs())
    assert sorted(len(b) for b in blocks) == [33, 33, 34]
    assert sorted(v for b in blocks for v in b["id"]) == list(range(100))
    assert blocks[0]["id"].tolist()[:3] == [0, 3, 6]  # every input block in every output
    assert sorted(ray.data.from_items([{"c": c} for c in "abcab"]).unique("c")) == ["a", "b",
                                                                                     "c"]
    shuffled = ds.randomize_block_order(seed=3)
    rows = [r["id"] for r in shuffled.take_all()]
    assert sorted(rows) == list(range(100)) and rows != list(range(100))
    assert [r["id"] for r in ds.randomize_block_order(seed=3).take_all()] == rows


def test_a_shuffle_feeds_a_streaming_pipeline(shoal_cluster):
    ds = ray.data.range(2000, override_num_blocks=4).random_shuffle(seed=1) \
        .map_batches(lambda b: {"id": b["id"] * 2}).sort("id")
    assert [r["id"] for r in ds.take(3)] == [0, 2, 4]
    assert ds.count() == 2000
    assert "RandomShuffle" in ds.stats() or ds.stats()


def test_sort_samples_the_keys_where_its_input_is_made(shoal_cluster):
    """The read tasks sample their blocks' keys into the metadata: no task reads
    the input again for a sample; blocks that existed before are sampled in tasks."""
    from shoal.util.state import list_tasks

    def sampling_tasks() -> int:
        return len(list_tasks(filters=[("name", "=", "_sample")], limit=None))

    def keyed(batch: dict) -> dict:
        return {"id": batch["id"], "k": (batch["id"] * 7919) % 10_007}

    before = sampling_tasks()
    with small_partitions():
        ds = ray.data.range(20_000, override_num_blocks=10).map_batches(keyed).sort("k")
        ds = ds.materialize()
    assert sampling_tasks() == before
    keys = [r["k"] for r in ds.take_all()]
    assert keys == sorted((i * 7919) % 10_007 for i in range(20_000))
    sizes = [m.num_rows for m in ds._op.metadata]
    assert len(sizes) > 4 and max(sizes) <= 3 * 20_000 / len(sizes), sizes  # balanced
    with small_partitions():
        again = ds.sort("id").materialize()  # blocks that exist: sampled in tasks
    assert sampling_tasks() > before
    assert [r["id"] for r in again.take(3)] == [0, 1, 2]


def _half_few_groups(batch: dict) -> dict:
    """Blocks of 2,500 rows: even blocks hold 5 groups, odd ones 2,000 (keys
    0-4 in both), so the read tasks aggregate half of them."""
    ids = batch["id"]
    odd = (int(ids[0]) // 2_500) % 2 == 1
    return {"g": ids % 2_000 if odd else ids % 5, "v": (ids % 101) * 0.5}


@pytest.mark.parametrize("shuffled", [False, True])
def test_blocks_of_few_groups_leave_the_read_tasks_as_partial_states(shoal_cluster,
                                                                     monkeypatch, shuffled):
    """A block whose keys show few groups is aggregated by the task that made it
    (its rows are never stored); one of many groups goes on as rows.  The
    exchange combines states and rows, in one task or (``shuffled``: too many
    state rows for one task) through its shuffle; the result is pandas'."""
    from shoal.data import exchange

    if shuffled:
        monkeypatch.setattr(exchange, "MAX_COMBINED_STATE_ROWS", 10)
    frame = pd.concat([pd.DataFrame(_half_few_groups({"id": np.arange(i, i + 2_500)}))
                       for i in range(0, 30_000, 2_500)])
    ds = ray.data.range(30_000, override_num_blocks=12).map_batches(_half_few_groups)
    with small_partitions():
        got = ds.groupby("g").aggregate(Count(), Sum("v"), Std("v")).materialize()
    read_stage = got.stats().splitlines()[0]
    rows_out = int(read_stage.split(" rows output")[0].rsplit(" ", 1)[1])
    # the 15,000 rows of the odd blocks, and 5 state rows a block of the even ones
    assert 15_000 < rows_out <= 15_000 + 5 * 36, read_stage
    got = got.to_pandas()
    want = frame.groupby("g")["v"].agg(["size", "sum", "std"]).reset_index()
    assert got["g"].tolist() == want["g"].tolist()
    assert got["count()"].tolist() == want["size"].tolist()
    np.testing.assert_allclose(got["sum(v)"], want["sum"], rtol=1e-12)
    np.testing.assert_allclose(got["std(v)"], want["std"], rtol=1e-9)


def test_a_groupby_of_few_groups_combines_states_without_a_shuffle(shoal_cluster):
    """The read tasks' key samples show few groups: each partition's state rows
    go to one combining task; no shuffle (no actor) runs. Many groups still
    shuffle. Both match pandas."""
    from shoal.util.state import list_actors

    def keyed(batch: dict) -> dict:
        ids = batch["id"]
        return {"g": ids % 7, "h": (ids * 7919) % 30_011, "v": (ids % 101) * 0.5}

    frame = pd.DataFrame(keyed({"id": np.arange(30_000)}))
    actors = len(list_actors(limit=None))
    with small_partitions():
        ds = ray.data.range(30_000, override_num_blocks=12).map_batches(keyed)
        few = ds.groupby("g").aggregate(Count(), Mean("v"), Std("v")).to_pandas()
    assert len(list_actors(limit=None)) == actors  # no shuffle started
    want = frame.groupby("g")["v"].agg(["size", "mean", "std"]).reset_index()
    assert few["g"].tolist() == want["g"].tolist()
    assert few["count()"].tolist() == want["size"].tolist()
    np.testing.assert_allclose(few["mean(v)"], want["mean"], rtol=1e-12)
    np.testing.assert_allclose(few["std(v)"], want["std"], rtol=1e-9)
    with small_partitions():
        many = ds.groupby("h").sum("v").to_pandas()
    assert len(list_actors(limit=None)) > actors  # a group a row: shuffled
    want = frame.groupby("h")["v"].sum().reset_index()
    assert many["h"].tolist() == want["h"].tolist()
    np.testing.assert_allclose(many["sum(v)"], want["v"], rtol=1e-12)
