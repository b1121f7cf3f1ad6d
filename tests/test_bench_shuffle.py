"""bench/shuffle, the side-by-side sort: its records are shoal sort's, each shoal
sample sorts and validates, the runner runs samples in subprocesses and reports
medians and ratios (Ray and Dask samples are exercised by the benchmark itself:
their interpreters are not shoal's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bench import sort_core
from bench.shuffle import records, report, run_numpy, run_shoal
from bench.shuffle.runner import PRESETS, Size, parse_size
from bench.shuffle.sample import Sample
from bench.shuffle.variants import expand
from shoal.shuffle.gensort import make_records as shoal_make_records

pytestmark = pytest.mark.timeout(180)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("start,count,seed", [(0, 1000, 0), (12345, 777, 3), (2**40, 5, 9),
                                              (7, 0, 1)])
def test_records_are_shoal_sorts_bytes(start, count, seed):
    assert np.array_equal(records.make_records(start, count, seed),
                          shoal_make_records(start, count, seed))


def test_input_counts_cover_every_record():
    counts = records.input_counts(10**6 + 250, 7)
    assert sum(counts) == (10**6 + 250) // 100 and max(counts) - min(counts) <= 1


@pytest.mark.parametrize("system", ["numpy-raysort", "numpy-shoal"])
def test_one_process_sample_sorts_and_validates(system):
    sample = run_numpy.run(Sample(system, 8 * 10**6, 4), timeout=60)
    assert sample.ok and sample.problems == [] and sample.records == 80_000
    assert sample.sort_s > 0


@pytest.mark.parametrize("system", ["shoal-push", "shoal-simple", "shoal-core"])
def test_shoal_sample_sorts_validates_and_reports_the_store(shutdown_only, system):
    sample = run_shoal.run(Sample(system, 16 * 10**6, 4), timeout=90)
    assert sample.ok, sample.problems
    assert sample.records == 160_000 and sample.sort_s > 0
    assert sample.detail["peak_store_bytes"] > 0  # polled every 0.1 s: a lower bound
    assert sample.spilled_bytes == 0  # the default store holds 16 MB


def test_sort_stored_on_a_single_input(shoal_cluster):
    import shoal

    data = shoal.put(records.make_records(0, 1000, 0))
    (out,) = sort_core.sort_stored(shoal, [data], timeout=60)
    part = sort_core.validate_task(shoal.get(out, timeout=60))
    assert part["sorted"] and part["count"] == 1000


def test_sizes_and_systems_parse_or_say_what_is_wrong():
    assert parse_size("1GB") is PRESETS["1GB"]
    assert parse_size("2GB:32:1GiB") == Size("2GB:32:1GiB", 2 * 10**9, 32, 2**30)
    assert parse_size("256MB:8").total_bytes == 256 * 10**6
    with pytest.raises(ValueError, match="not a size: '2TB'"):
        parse_size("2TB")
    assert expand("dask,shoal-push") == ["shoal-push", "dask-p2p"]
    with pytest.raises(ValueError, match="unknown system 'spark'"):
        expand("shoal,spark")


def _outcome(system, seconds, ok=True):
    return {"size": "1GB", "system": system, "ok": ok,
            "sample": {"sort_s": seconds, "spilled_bytes": None, "spilled_total": None,
                       "error": "" if ok else "boom", "problems": []},
            "memory_sort": {"pss": 2 * 10**9, "rss": 0, "shm": 0}, "memory_sample": None}


def test_summary_takes_medians_and_ratios_peer_over_shoal():
    samples = [_outcome("shoal-push", s) for s in (2.0, 9.0, 2.2)]
    samples += [_outcome("ray-core", s) for s in (4.4, 4.0)] + [_outcome("ray-core", 1, False)]
    samples += [_outcome("numpy-shoal", 2.2)]
    table = report.summarize(samples, [PRESETS["1GB"]], ["shoal-push", "ray-core",
                                                        "numpy-shoal"])["1GB"]
    assert table["shoal-push"]["sort_s"] == 2.2 and table["shoal-push"]["gb_per_s"] == 1 / 2.2
    assert table["ray-core"]["sort_s"] == pytest.approx(4.2)
    assert table["ray-core"]["errors"] == ["boom"] and table["ray-core"]["ok"] == 2
    assert table["ray-core"]["ratios"]["shoal-push/ray-core"] == pytest.approx(4.2 / 2.2)
    # one process stands for a 2-core ideal of half its time
    assert table["numpy-shoal"]["ratios"]["shoal-push/numpy-shoal"] == pytest.approx(0.5)


def test_runner_runs_each_sample_in_a_subprocess_and_writes_json(tmp_path):
    out = tmp_path / "shuffle.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.shuffle", "--systems", "shoal-push,numpy-shoal",
         "--sizes", "8MB:4", "--repeat", "2", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "== 0.008 GB, 4x4" in proc.stdout
    data = json.loads(out.read_text())
    assert [(o["system"], o["ok"]) for o in data["samples"]] == [
        ("shoal-push", True), ("numpy-shoal", True)] * 2  # interleaved
    push = data["summary"]["8MB:4"]["shoal-push"]
    assert push["ok"] == 2 and push["peak_pss_sort"] > 0
    assert "shoal-push/numpy-shoal" in data["summary"]["8MB:4"]["numpy-shoal"]["ratios"]


def test_cpu_seconds_count_only_the_window():
    from bench.shuffle.monitor import Reading, TreeMonitor

    monitor = TreeMonitor()
    monitor.readings = [Reading(t, 0, 0, 0, 0, len(cpu), cpu) for t, cpu in [
        (1.0, {10: 5.0}), (2.0, {10: 6.0}), (3.0, {10: 8.0, 11: 1.0}), (4.0, {10: 9.5})]]
    # pid 10: 9.5 - 6.0; pid 11 started inside the window (last seen at 1.0 s of CPU)
    assert monitor.cpu_seconds(2.5, 4.0) == pytest.approx(3.5 + 1.0)
    assert monitor.peak(2.5, 4.0)["cpu_s"] == pytest.approx(4.5)
    assert monitor.cpu_seconds(None, None) == pytest.approx(10.5)


def test_a_window_shorter_than_the_interval_takes_the_reading_right_after_it():
    # CI once sorted 8 MB between two 0.25 s readings and the report had no peak.
    from bench.shuffle.monitor import Reading, TreeMonitor

    monitor = TreeMonitor()
    monitor.readings = [Reading(t, pss, 0, 0, 0, 1, {}) for t, pss in [
        (1.0, 100), (2.0, 300), (3.0, 200)]]
    assert monitor.peak(1.2, 1.4)["pss"] == 300
    assert monitor.peak(3.5, 3.6) is None
    monitor.read_now()
    assert monitor.peak(3.5, 3.6)["readings"] == 1
