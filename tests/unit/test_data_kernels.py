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


def test_samples_count_by_the_rows_they_stand_for():
    """Blocks sample by bytes, not rows; weights put the cuts at the quantiles of
    the data: a 9000-row block of keys 0..8999 and a 1000-row block of keys
    9000..9999, each sampled 100 rows: the median is near 5000, not 9000."""
    key = SortKey(("k",), (False,))
    big = pa.table({"k": np.arange(9000)})
    small = pa.table({"k": np.arange(9000, 10_000)})
    samples = [sort_keys.sample(big, key, 100, 1), sort_keys.sample(small, key, 100, 2)]
    weights = [sort_keys.weight(9000, samples[0]), sort_keys.weight(1000, samples[1])]
    [cut] = sort_keys.boundaries(samples, key, 2, weights).column("k").to_pylist()
    assert 4000 <= cut <= 6000
    [unweighted] = sort_keys.boundaries(samples, key, 2).column("k").to_pylist()
    assert unweighted >= 8900  # what equal weights would give
    even = sort_keys.boundaries([big], key, 4, [1.0])  # weights of 1: plain quantiles
    assert even.column("k").to_pylist() == sort_keys.boundaries([big], key, 4).column(
        "k").to_pylist() == [2250, 4500, 6750]


def test_a_block_sampler_samples_by_bytes_and_skips_blocks_without_the_key():
    sampler = sort_keys.BlockSampler(SortKey(("k",), (False,)), bytes_per_sample=800)
    table = pa.table({"k": np.arange(10_000), "v": np.zeros(10_000)})  # 160 KB
    assert sampler(table, 1).num_rows == 200
    assert sampler(table.slice(0, 10), 1).num_rows == 10  # all rows of a small block
    assert sampler(pa.table({"v": [1.0]}), 1) is None  # the exchange names the error
    assert sampler(table.slice(0, 0), 1) is None


def test_outputs_are_several_per_map_while_pieces_stay_store_objects():
    from shoal.data.exchange import default_outputs

    MiB = 1 << 20
    assert default_outputs(8, 256 * MiB, 32 * MiB) == 128  # 16 per map: 256 KiB pieces
    assert default_outputs(16, 256 * MiB, 16 * MiB) == 128  # 128 KiB pieces
    assert default_outputs(63, 256 * MiB, 4 * MiB) == 64  # one per map at least
    assert default_outputs(1, 1 << 30, 8 * MiB) == 128  # no output above the target


def test_split_grouped_keeps_row_order_within_a_part_and_counts_each_part():
    table = pa.table({"v": np.arange(10)})
    part = np.array([1, 0, 1, 2, 0, 1, 1, 2, 0, 0])
    alone = sort_keys.split_grouped(table, part, 3, 1)
    assert [(t.column("v").to_pylist(), c) for t, c in alone] == [
        ([1, 4, 8, 9], [4]), ([0, 2, 5, 6], [4]), ([3, 7], [2])]
    pairs = sort_keys.split_grouped(table, part, 3, 2)
    assert [(t.column("v").to_pylist(), c) for t, c in pairs] == [
        ([1, 4, 8, 9, 0, 2, 5, 6], [4, 4]), ([3, 7], [2])]
    one = list(sort_keys.split_grouped(table, part, 3, 3))
    assert one[0][1] == [4, 4, 2] and one[0][0].num_rows == 10


def test_split_grouped_of_a_table_in_chunks_is_the_same_as_of_one_chunk():
    rng = np.random.default_rng(5)
    whole = pa.table({"v": np.arange(1000), "w": rng.random(1000)})
    chunked = pa.concat_tables([whole.slice(0, 300), whole.slice(300, 1), whole.slice(301, 699)])
    assert chunked.column("v").num_chunks == 3
    part = rng.integers(0, 7, 1000)
    for group in (1, 3, 7):
        one = list(sort_keys.split_grouped(whole, part, 7, group))
        many = list(sort_keys.split_grouped(chunked, part, 7, group))
        assert [c for _, c in many] == [c for _, c in one]
        assert all(m.equals(o) for (m, _), (o, _) in zip(many, one, strict=True))


def test_a_group_is_about_a_mib_of_each_map_while_a_reduce_reads_two_partitions():
    from shoal.data.exchange import group_size

    MiB = 1 << 20
    assert group_size(256 * MiB, 16, 64, 16 * MiB) == 4  # 256 KiB pieces -> 1 MiB
    assert group_size(256 * MiB, 11, 44, 16 * MiB) == 2  # the quick bench: 516 KiB
    assert group_size(256 * MiB, 8, 32, 32 * MiB) == 1  # 1 MiB pieces already
    assert group_size(256 * MiB, 16, 64, 2 * MiB) == 1  # outputs of 4 MiB, partitions of 2
    assert group_size(1 * MiB, 4, 3, 1 * MiB) == 3  # at most every reducer


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


def test_compact_copies_chunks_that_share_one_buffer(tmp_path):
    """Parquet's reader cuts a row group into chunks that are slices of one
    buffer; each pickles the whole buffer, so the block stored twice its size."""
    import pickle

    import pyarrow.parquet as pq

    from shoal.data.block import compact

    pq.write_table(pa.table({"x": np.arange(200_000), "y": np.ones(200_000)}),
                   tmp_path / "f.parquet")
    table = pq.read_table(tmp_path / "f.parquet")
    assert table.column("x").num_chunks == 2  # what the reader does (a row group, 2 chunks)
    assert len(pickle.dumps(table, protocol=5)) > 1.9 * table.nbytes
    out = compact(table)
    assert out.equals(table)
    assert len(pickle.dumps(out, protocol=5)) < 1.05 * table.nbytes
    whole = pa.table({"x": np.arange(1000)})
    assert compact(whole) is whole  # nothing to gain: no copy


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 3000), min_size=0, max_size=8), st.integers(800, 20_000))
def test_blocks_of_cuts_a_task_output_at_the_target_in_order(sizes, target):
    from shoal.data.block import blocks_of

    start = np.cumsum([0] + sizes)
    tables = [pa.table({"x": np.arange(a, a + n, dtype=np.int64)})
              for a, n in zip(start, sizes, strict=False)]
    blocks = list(blocks_of(iter(tables), target))
    assert blocks, "at least one block, even when empty"
    got = np.concatenate([b.column("x").to_numpy() for b in blocks]) if sum(sizes) else []
    assert list(got) == list(range(sum(sizes)))
    assert all(b.nbytes <= target for b in blocks)
    if sum(sizes):
        assert all(b.num_rows for b in blocks)
        assert len(blocks) <= 2 * -(-8 * sum(sizes) // target) + len(sizes)


def test_blocks_of_keeps_the_schema_of_an_empty_output():
    from shoal.data.block import blocks_of

    [block] = list(blocks_of(iter([pa.table({"a": pa.array([], pa.int64())})]), 100))
    assert block.num_rows == 0 and block.column_names == ["a"]
    [block] = list(blocks_of(iter([]), 100))
    assert block.num_rows == 0
    one_big_row = pa.table({"b": [b"x" * 1000]})
    assert [b.num_rows for b in blocks_of(iter([one_big_row]), 100)] == [1]


def _sampled_metas(groups: int, blocks: int = 32, per_block: int = 16, seed: int = 0):
    from shoal.data.block import BlockMetadata

    rng = np.random.default_rng(seed)
    return [BlockMetadata(num_rows=200_000, size_bytes=3_200_000, schema=None,
                          sample=pa.table({"k": rng.integers(0, groups, per_block)}))
            for _ in range(blocks)]


@pytest.mark.parametrize("seed", range(5))
def test_groups_are_estimated_from_samples_only_when_the_sample_can_tell(seed):
    """512 sampled keys (the quick bench's groupby) tell 1k groups; of 1M groups
    they are nearly all singletons, which says "many", not "about f1^2 / 2"
    (130k: the exchange then combined 6M state rows in one task)."""
    from shoal.data.exchange import MAX_COMBINED_STATE_ROWS, estimated_groups

    few = estimated_groups(_sampled_metas(1_000, seed=seed), ["k"])
    assert few is not None and 700 <= few <= 1_400
    many = estimated_groups(_sampled_metas(1_000_000, seed=seed), ["k"])
    assert many is None or many * 6 > MAX_COMBINED_STATE_ROWS
    assert estimated_groups(_sampled_metas(7, seed=seed), ["k"]) == 7


@pytest.mark.parametrize("store, total", [(125 * 10**6, 250 * 10**6),
                                          (64 << 20, 200 * 10**6)])
def test_a_small_store_does_not_cut_the_shuffle_into_tiny_pieces(store, total):
    """The quick bench's half-store shuffle (250 MB, 125 MB store): store / 64
    made 128 maps of 64 pieces of 31 KB each (8,192 store objects)."""
    from shoal.data.exchange import (
        MAX_STORE_FRACTION_PER_PARTITION,
        default_outputs,
        group_size,
        partition_target,
    )

    target = partition_target(store, total, 128 << 20)
    assert target <= store * MAX_STORE_FRACTION_PER_PARTITION
    maps = -(-total // target)
    reducers = default_outputs(maps, total, target)
    groups = -(-reducers // group_size(total, maps, reducers, target))
    assert total / (maps * groups) >= 128 << 10, (maps, groups)


def test_a_roomy_store_keeps_its_partitions():
    from shoal.data.exchange import partition_target

    assert partition_target(1 << 30, 250 * 10**6, 128 << 20) == (1 << 30) // 64


def test_blocks_above_the_target_are_cut_into_row_ranges_only_when_asked():
    from shoal.data.block import BlockMetadata
    from shoal.data.exchange import partitions

    metas = [BlockMetadata(num_rows=n, size_bytes=b, schema=None)
             for n, b in ((1000, 300), (10, 40), (10, 40), (500, 100))]
    refs = ["a", "b", "c", "d"]
    whole = partitions(refs, metas, 100)
    assert [(p.refs, p.offset) for p in whole] == [(("a",), None), (("b", "c", "d"), None)]
    cut = partitions(refs, metas, 100, cut=True)
    assert [p.refs for p in cut] == [("a",)] * 3 + [("b", "c", "d")]
    assert [(p.first_row, p.num_rows, p.offset) for p in cut[:3]] == [
        (0, 333, 0), (333, 333, 333), (666, 334, 666)]
    assert cut[3].first_row == 1000 and cut[3].num_rows == 520
    assert [p.index for p in cut] == [0, 1, 2, 3]


def test_a_reduce_cuts_its_output_to_fit_the_holes_its_pieces_leave():
    from shoal.data.exchange import (
        MIN_PIECE_BYTES,
        Gather,
        hole_bytes,
        reducer_blocks,
    )

    # the smallest stored piece; a piece that travels inline leaves no hole
    assert hole_bytes([1000, 4 << 20, 5 << 20, 6 << 20]) == 4 << 20
    assert hole_bytes([1000]) == hole_bytes([]) == MIN_PIECE_BYTES
    table = pa.table({"v": np.arange(10_000, dtype=np.int64)})  # 80 KB
    rows = np.random.default_rng(1).permutation(10_000)
    blocks = list(reducer_blocks(Gather(table, rows), 20_000))
    assert len(blocks) == 4 and all(b.nbytes <= 20_000 for b in blocks)
    assert pa.concat_tables(blocks).column("v").to_pylist() == rows.tolist()
    chunked = pa.concat_tables([table.slice(0, 5000), table.slice(5000)])
    again = list(reducer_blocks(Gather(chunked, rows), 20_000))
    assert pa.concat_tables(again).column("v").to_pylist() == rows.tolist()
    assert [b.num_rows for b in reducer_blocks(table, None)] == [10_000]


def test_a_block_whose_keys_repeat_a_few_times_is_aggregated_where_it_is_read():
    """Many groups, each ~3 times in the block (1M groups in a full-size block of
    3.1M rows): the states take less room than the rows, so the read task makes
    them.  Keys that hardly repeat stay rows."""
    import pyarrow as pa

    from shoal.data.aggregate import AggregationSpec, Mean
    from shoal.data.preaggregate import PartialAggregation

    rng = np.random.default_rng(5)
    spec = AggregationSpec(("k",), (Mean("v"),))
    repeating = pa.table({"k": rng.integers(0, 100_000, 330_000), "v": rng.random(330_000)})
    states = PartialAggregation(spec)(repeating, 1)
    assert states is not None
    assert states.num_rows == len(np.unique(repeating.column("k").to_numpy()))
    distinct = pa.table({"k": rng.integers(0, 1_000_000, 200_000), "v": rng.random(200_000)})
    assert PartialAggregation(spec)(distinct, 1) is None
