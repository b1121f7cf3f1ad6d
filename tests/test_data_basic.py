"""shoal.data on a local cluster: creating datasets, lazy transforms and the
consuming calls, with Ray Data's names and return types (``import shoal as
ray`` programs run unchanged)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import shoal as ray

CLUSTER_INIT_KWARGS = {"num_cpus": 2}


def test_range_take_count_schema_and_show(shoal_cluster, capsys):
    ds = ray.data.range(100)
    assert ds.take(3) == [{"id": 0}, {"id": 1}, {"id": 2}]
    assert ds.count() == 100
    assert ds.columns() == ["id"]
    assert "id      int64" in repr(ds.schema())
    ds.limit(2).show()
    assert capsys.readouterr().out == "{'id': 0}\n{'id': 1}\n"
    assert repr(ds) == "Dataset(num_rows=100, schema=?)"


def test_range_tensor_and_from_numpy_make_tensor_columns(shoal_cluster):
    ds = ray.data.range_tensor(10, shape=(2, 3))
    rows = ds.take(2)
    assert rows[1]["data"].shape == (2, 3) and (rows[1]["data"] == 1).all()
    batch = ds.take_batch(4)
    assert batch["data"].shape == (4, 2, 3)
    arr = np.arange(12.0).reshape(6, 2)
    got = ray.data.from_numpy(arr).take_batch(10)["data"]
    np.testing.assert_array_equal(got, arr)


def test_from_items_pandas_and_arrow(shoal_cluster):
    assert ray.data.from_items([1, "a"]).take_all() == [{"item": 1}, {"item": "a"}]
    assert ray.data.from_items([{"a": 1}, {"a": 2, "b": "x"}]).take_all() == [
        {"a": 1, "b": None}, {"a": 2, "b": "x"}]
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    pd.testing.assert_frame_equal(ray.data.from_pandas([df, df]).to_pandas(),
                                  pd.concat([df, df], ignore_index=True))
    table = pa.table({"v": [1.5, 2.5]})
    assert ray.data.from_arrow(table).take_all() == [{"v": 1.5}, {"v": 2.5}]
    assert ray.data.from_items([]).count() == 0


def test_map_flat_map_filter_and_columns(shoal_cluster):
    ds = ray.data.range(10)
    assert ds.map(lambda r: {"id": r["id"] * 2}).take(3) == [{"id": 0}, {"id": 2},
                                                              {"id": 4}]
    assert ds.flat_map(lambda r: [r, r]).count() == 20
    assert [r["id"] for r in ds.filter(lambda r: r["id"] % 3 == 0).take_all()] == [0, 3, 6, 9]
    ds2 = ds.add_column("sq", lambda df: df["id"] ** 2)
    assert ds2.take(3)[2] == {"id": 2, "sq": 4}
    assert ds2.select_columns(["sq"]).take(2) == [{"sq": 0}, {"sq": 1}]
    assert ds2.drop_columns(["id"]).columns() == ["sq"]
    assert ds2.rename_columns({"sq": "square"}).columns() == ["id", "square"]
    assert ds2.rename_columns(["a", "b"]).take(1) == [{"a": 0, "b": 0}]


def test_map_batches_formats_args_and_batch_size(shoal_cluster):
    ds = ray.data.range(50, override_num_blocks=5)
    sizes = ds.map_batches(lambda b: {"n": np.array([len(b["id"])])}, batch_size=20)
    assert [r["n"] for r in sizes.take_all()] == [20, 20, 10]
    whole = ds.map_batches(lambda b: {"n": np.array([len(b["id"])])})
    assert [r["n"] for r in whole.take_all()] == [10] * 5  # None: one batch per block

    def add(batch, k, *, m):
        return {"id": batch["id"] * m + k}

    out = ds.map_batches(add, fn_args=(1,), fn_kwargs={"m": 10}).take(2)
    assert out == [{"id": 1}, {"id": 11}]
    as_pandas = ds.map_batches(lambda df: df.assign(x=df["id"] + 0.5), batch_format="pandas")
    assert as_pandas.take(1) == [{"id": 0, "x": 0.5}]
    as_arrow = ds.map_batches(lambda t: t.append_column("t", pa.array([type(t).__name__]
                                                                         * t.num_rows)),
                              batch_format="pyarrow")
    assert as_arrow.take(1) == [{"id": 0, "t": "Table"}]


def test_map_batches_with_a_callable_class_on_an_actor_pool(shoal_cluster):
    class AddPid:
        def __init__(self, offset):
            import os

            self.offset, self.pid = offset, os.getpid()
            self.calls = 0

        def __call__(self, batch):
            self.calls += 1
            return {"id": batch["id"] + self.offset, "pid": np.full(len(batch["id"]), self.pid),
                    "calls": np.full(len(batch["id"]), self.calls)}

    rows = ray.data.range(40, override_num_blocks=8).map_batches(
        AddPid, fn_constructor_args=(1000,), concurrency=2, batch_size=5).take_all()
    assert [r["id"] for r in rows] == list(range(1000, 1040))
    assert len({r["pid"] for r in rows}) == 2  # two actors
    assert max(r["calls"] for r in rows) > 1  # constructed once, called many times


@pytest.mark.timeout(120)
def test_a_limit_after_a_pool_holding_every_cpu_finishes(shoal_cluster):
    """take(3) cuts the block crossing the limit with a slice task; with two
    actors holding both CPUs that task must not wait for a CPU (it hung)."""
    class Add:
        def __init__(self, k):
            self.k = k

        def __call__(self, batch):
            return {"id": batch["id"] + self.k}

    ds = ray.data.range(20).map_batches(Add, fn_constructor_args=(100,), concurrency=2)
    assert ds.take(3) == [{"id": 100}, {"id": 101}, {"id": 102}]


def test_a_data_iterator_materializes_one_iteration(shoal_cluster):
    ds = ray.data.range(20, override_num_blocks=4).map(lambda r: {"id": r["id"] * 2})
    kept = ds.iterator().materialize()
    assert type(kept).__name__ == "MaterializedDataset"
    assert kept.take_all() == [{"id": 2 * i} for i in range(20)]
    (only,) = ds.streaming_split(1)
    assert only.materialize().count() == 20


class _Counted:
    """Records each construction (a file per actor) and tags rows with its pid."""

    def __init__(self, folder: str, pause: float = 0.0):
        import os

        self.pid, self.pause = os.getpid(), pause
        open(os.path.join(folder, f"actor-{self.pid}"), "w").close()

    def __call__(self, batch: dict) -> dict:
        import time

        time.sleep(self.pause)  # work the pool can share out
        return {"id": batch["id"], "pid": np.full(len(batch["id"]), self.pid)}


def test_an_autoscaling_pool_starts_at_its_minimum_and_grows_within_the_cpus(
        shoal_cluster, tmp_path):
    """concurrency=(min, max): one actor for one block; a long input grows the
    pool, but not past the CPUs free for it (2 here): an actor nobody can place
    would hold the calls given to it (a fixed pool of 4 hung)."""
    small, big = tmp_path / "small", tmp_path / "big"
    small.mkdir()
    big.mkdir()
    rows = ray.data.range(10, override_num_blocks=1).map_batches(
        _Counted, fn_constructor_args=(str(small),), concurrency=(1, 3)).take_all()
    assert [r["id"] for r in rows] == list(range(10))
    assert len(list(small.iterdir())) == 1
    rows = ray.data.range(400, override_num_blocks=40).map_batches(
        _Counted, fn_constructor_args=(str(big), 0.1), concurrency=(1, 4),
        batch_size=10).take_all()
    assert [r["id"] for r in rows] == list(range(400))
    assert len({r["pid"] for r in rows}) == 2 == len(list(big.iterdir()))


def _explode(batch: dict) -> dict:
    """50,000 rows of 72 bytes for every row in: 3.6 MB per input row."""
    ids = np.repeat(batch["id"], 50_000)
    return {"id": ids, "x": np.ones((len(ids), 8))}


class Explode:
    def __call__(self, batch: dict) -> dict:
        return _explode(batch)


@pytest.mark.parametrize("fn", [_explode, Explode])
def test_an_output_larger_than_the_target_block_size_is_split(shoal_cluster, fn):
    """A task whose output exceeds DataContext.target_max_block_size yields it as
    several blocks of at most that size (Ray's rule), in order."""
    ctx = ray.data.DataContext.get_current()
    before = ctx.target_max_block_size
    ctx.target_max_block_size = 1 << 20
    try:
        concurrency = {"concurrency": 1} if fn is Explode else {}
        ds = ray.data.range(4, override_num_blocks=1).map_batches(
            fn, batch_size=None, **concurrency).materialize()
    finally:
        ctx.target_max_block_size = before
    [stage] = ds._last_stats.stages
    sizes = [m.size_bytes for m in ds._op.metadata]
    assert len(sizes) >= 14 and max(sizes) <= 1 << 20, sizes  # 14.4 MB in all
    assert ds.count() == 200_000
    ids = np.concatenate([b["id"] for b in ds.iter_batches(batch_size=None,
                                                           batch_format="numpy")])
    assert (ids == np.repeat(np.arange(4), 50_000)).all()
    assert stage.tasks == 1 and stage.blocks == len(sizes)


def test_limit_union_and_take_all_limit(shoal_cluster):
    a, b = ray.data.range(5), ray.data.from_items([{"id": 100}])
    assert [r["id"] for r in a.union(b, a.limit(1)).take_all()] == [0, 1, 2, 3, 4, 100, 0]
    assert ray.data.range(10**7).limit(3).take_all() == [{"id": 0}, {"id": 1}, {"id": 2}]
    with pytest.raises(ValueError, match="more than the given limit of 3"):
        ray.data.range(5).take_all(limit=3)


def test_iter_rows_and_iter_batches(shoal_cluster):
    ds = ray.data.range(103, override_num_blocks=4)
    assert [r["id"] for r in ds.iter_rows()] == list(range(103))
    sizes = [len(b["id"]) for b in ds.iter_batches(batch_size=25)]
    assert sizes == [25, 25, 25, 25, 3]
    assert [len(b) for b in ds.iter_batches(batch_size=25, drop_last=True,
                                            batch_format="pandas")] == [25] * 4
    tables = list(ds.iter_batches(batch_size=None, batch_format="pyarrow"))
    assert [t.num_rows for t in tables] == [25, 26, 26, 26]
    shuffled = [int(x) for b in ds.iter_batches(batch_size=10, local_shuffle_buffer_size=20,
                                                local_shuffle_seed=7, prefetch_batches=2)
                for x in b["id"]]
    assert sorted(shuffled) == list(range(103)) and shuffled != list(range(103))


def test_to_refs_materialize_and_split(shoal_cluster):
    ds = ray.data.range(10, override_num_blocks=3)
    tables = ray.get(ds.to_arrow_refs())
    assert sum(t.num_rows for t in tables) == 10 and isinstance(tables[0], pa.Table)
    arrays = ray.get(ds.to_numpy_refs(column="id"))
    assert np.concatenate(arrays).tolist() == list(range(10))
    mat = ds.map(lambda r: {"id": r["id"] + 1}).materialize()
    assert isinstance(mat, ray.data.MaterializedDataset) and mat.count() == 10
    assert mat.num_blocks() == 3
    parts = ds.split(3)
    assert [p.count() for p in parts] == [4, 3, 3]
    assert [r["id"] for p in parts for r in p.take_all()] == list(range(10))
    assert [p.count() for p in ds.split(4, equal=True)] == [2, 2, 2, 2]


def test_streaming_split_feeds_several_consumers_per_epoch(shoal_cluster):
    its = ray.data.range(101, override_num_blocks=6).streaming_split(2, equal=True)

    @ray.remote
    def consume(it):
        return [int(x) for b in it.iter_batches(batch_size=8) for x in b["id"]]

    for _ in range(2):  # two epochs
        a, b = ray.get([consume.remote(it) for it in its], timeout=60)
        assert len(a) == len(b) == 50
        assert not set(a) & set(b)
    loose = ray.data.range(30).streaming_split(3)
    got = ray.get([consume.remote(it) for it in loose], timeout=60)
    assert sorted(x for part in got for x in part) == list(range(30))


def test_stats_names_every_operator(shoal_cluster):
    ds = ray.data.range(20).map(lambda r: r).map_batches(lambda b: b)
    assert "not been executed" in ds.stats()
    ds.take_all()
    text = ds.stats()
    assert "ReadRange->Map(<lambda>)->MapBatches(<lambda>)" in text
    assert "20 rows output" in text and "budget" in text


def test_bad_arguments_get_clear_errors(shoal_cluster):
    ds = ray.data.range(3)
    with pytest.raises(ValueError, match="batch_format must be one of"):
        ds.map_batches(lambda b: b, batch_format="torch")
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        ds.map_batches(lambda b: b, batch_size=0)
    with pytest.raises(TypeError, match="fn must be a function or a callable class"):
        ds.map(3)
    with pytest.raises(ValueError, match="limit: expected an int >= 0"):
        ds.limit(-1)
    with pytest.raises(ValueError, match="concurrency must be"):
        ds.map(lambda r: r, concurrency=0)
    with pytest.raises(ValueError, match=r"needs min <= initial <= max, got \(3, 2\)"):
        ds.map_batches(_Counted, concurrency=(3, 2))
    with pytest.raises(ValueError, match="range: n must be"):
        ray.data.range(-1)
    with pytest.raises(TypeError, match="is not iterable itself"):
        iter(ds)
