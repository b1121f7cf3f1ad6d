"""shoal.data's streaming executor on a small object store (64 MiB): a dataset
six times larger than the store streams through map_batches and
iter_batches within the memory budget; user errors stop the run and name the
operator and the rows that failed, with the remote traceback."""

from __future__ import annotations

import numpy as np
import pytest

import shoal as ray
from shoal.data import UserCodeException

STORE = 64 << 20
CLUSTER_INIT_KWARGS = {"num_cpus": 2, "object_store_memory": STORE}


@pytest.mark.timeout(180)
def test_a_dataset_several_times_the_store_streams_within_the_budget(shoal_cluster):
    rows, width = 50_000, 1000  # 8 KB a row: 400 MB in all
    ds = ray.data.range_tensor(rows, shape=(width,)).map_batches(
        lambda b: {"data": b["data"] + 1, "s": b["data"].sum(axis=1)})
    seen, total = 0, 0
    for batch in ds.iter_batches(batch_size=1000):
        assert batch["data"].shape == (len(batch["s"]), width)
        seen += len(batch["s"])
        total += int(batch["s"].sum())
    assert seen == rows
    assert total == width * rows * (rows - 1) // 2
    stats = ds._last_stats
    produced = sum(s.bytes for s in stats.stages)
    assert produced >= 5.5 * STORE
    largest_block = max(s.bytes / s.tasks for s in stats.stages if s.tasks)
    assert stats.budget <= STORE // 2
    assert stats.peak_in_flight <= stats.budget + 2 * largest_block, ds.stats()


def test_breaking_out_of_iteration_stops_the_run(shoal_cluster):
    ds = ray.data.range_tensor(20_000, shape=(1000,)).map_batches(lambda b: b)
    for n, _ in enumerate(ds.iter_batches(batch_size=100)):
        if n == 2:
            break
    assert ray.data.range(5).count() == 5
    assert ray.data.range(5).map(lambda r: r).take_all()[-1] == {"id": 4}


def test_a_failing_batch_names_the_operator_and_the_rows(shoal_cluster):
    def explode(batch):
        if batch["id"][0] == 30:
            raise KeyError("no such thing")
        return batch

    ds = ray.data.range(60, override_num_blocks=3).map_batches(explode, batch_size=10)
    with pytest.raises(UserCodeException) as info:
        ds.take_all()
    text = str(info.value)
    assert "MapBatches(explode)" in text
    assert "a batch of 10 rows" in text and "first row {'id': 30}" in text
    assert "in explode" in text and "KeyError: 'no such thing'" in text  # remote traceback
    assert ray.data.range(3).count() == 3  # the cluster is fine afterwards


def test_a_failing_row_function_names_the_row(shoal_cluster):
    def check(row):
        if row["id"] == 7:
            raise ValueError("seven")
        return True

    with pytest.raises(UserCodeException, match=r"Filter\(check\).*row 7: \{'id': 7\}"):
        ray.data.range(10, override_num_blocks=1).filter(check).take_all()


def test_a_failing_actor_constructor_is_reported(shoal_cluster):
    class Broken:
        def __init__(self):
            raise RuntimeError("cannot load the model")

        def __call__(self, batch):
            return batch

    with pytest.raises(Exception, match="cannot load the model"):
        ray.data.range(10).map_batches(Broken, concurrency=1).take_all()


def test_a_function_returning_the_wrong_type_is_named(shoal_cluster):
    with pytest.raises(Exception, match=r"must return a dict of columns.*got int"):
        ray.data.range(10).map_batches(lambda b: 3).take_all()
    with pytest.raises(Exception, match=r"must return a dict \(one row\), got list"):
        ray.data.range(10).map(lambda r: [r]).take_all()
    with pytest.raises(Exception, match="equal lengths"):
        ray.data.range(10).map_batches(lambda b: {"a": np.arange(2), "b": np.arange(3)}
                                       ).take_all()
