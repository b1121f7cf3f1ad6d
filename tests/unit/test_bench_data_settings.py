"""bench.data's per-sample settings: every row must be able to finish at any
size (the quick "store = data / 2" rows gave Dask workers 62 MB each and the
nanny restarted them for ever)."""

from __future__ import annotations

from bench.data import __main__ as runner
from bench.data import workloads


def test_dask_workers_get_half_the_store_but_enough_to_start():
    quick_half = runner.store_for(runner.ROWS[3], runner.WIDE_4GB // 16)
    assert workloads.dask_memory_limit(quick_half) == workloads.DASK_WORKER_FLOOR
    full_half = runner.store_for(runner.ROWS[3], runner.WIDE_4GB)
    assert workloads.dask_memory_limit(full_half) == full_half // 2 == 1_000_000_000
    assert workloads.dask_memory_limit(0) == "auto"


def test_the_full_run_is_the_default_and_its_samples_have_time():
    args = runner.parse_args([])
    assert (args.quick, args.scale, args.systems, args.repeat, args.only) == (
        False, None, "shoal,ray,dask", 3, None)
    assert args.timeout is None  # 600 + 3000 x scale: an hour per full-size sample
