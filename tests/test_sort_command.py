"""``shoal sort`` (shoal/launch/sort_command.py, shoal/shuffle/sort_bench.py): the
command as a subprocess at a small size, its files read back independently,
and the report of an invalid sort."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import shoal
from shoal.shuffle.records import checksum
from shoal.shuffle.sort_bench import SortConfig, format_report, parse_size, run
from tests.utils import REPO_ROOT, SESSION_TAG_ENV, subprocess_env


def shoal_sort(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = subprocess_env(os.environ[SESSION_TAG_ENV])
    return subprocess.run([sys.executable, "-m", "shoal", "sort", "--num-cpus", "2",
                           "--object-store-memory", str(256 << 20), *args], env=env,
                          cwd=str(REPO_ROOT), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.mark.timeout(120)
def test_shoal_sort_writes_valid_gensort_files_and_reports(tmp_path):
    out = shoal_sort("--total", "20MB", "--partitions", "4", "--maps", "6",
                     "--strategy", "push", "--seed", "5", "--output", str(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    for expected in ("0.02 GB (200,000 records), 6 input and 4 output partitions, "
                     "strategy push", "GB/s", "map ", "merge ", "reduce ",
                     "store      peak", "spilled", "duplicate keys 0", "SUCCESS"):
        assert expected in text, text
    # progress bars by default (one final line each: stderr is a pipe here)
    bars = [line for line in out.stderr.splitlines() if line.startswith("sort ")]
    assert [b.split(":")[0].split()[-1] for b in bars] == ["maps", "merges", "reduces"], bars
    assert "6/6" in bars[0] and "4/4" in bars[2] and "\r" not in out.stderr
    names = sorted(os.listdir(tmp_path))
    assert names == [f"part-{i:05d}" for i in range(4)]
    data = np.concatenate([np.fromfile(tmp_path / n, dtype=np.uint8).reshape(-1, 100)
                           for n in names])
    assert len(data) == 200_000
    keys = [bytes(r[:10]) for r in data]
    assert keys == sorted(keys)  # every file in order, and the files in order
    assert bytes(data[0, 10:12]) == b"\x00\x11"  # gensort's layout
    listed = text.split("checksum ")[1].split(",")[0]
    assert int(listed, 16) == checksum(data)


@pytest.mark.timeout(120)
def test_shoal_sort_json_report():
    out = shoal_sort("--total", "2MB", "--partitions", "2", "--strategy", "simple", "--json",
                     "--no-progress")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "sort " not in out.stderr  # no bars when told
    report = json.loads(out.stdout)
    assert report["ok"] and report["records"] == 20_000 and report["gb_per_s"] > 0
    assert report["config"]["strategy"] == "simple" and "map" in report["stages"]


def test_shoal_sort_refuses_a_bad_size():
    out = shoal_sort("--total", "4 parsecs")
    assert out.returncode == 2 and "not a size: '4 parsecs'" in out.stderr


def test_parse_size():
    assert parse_size("4GB") == 4 * 10**9
    assert parse_size("1.5 MB") == 1_500_000
    assert parse_size("2GiB") == 2 << 30
    assert parse_size("100") == 100
    with pytest.raises(ValueError, match="not a size"):
        parse_size("-1GB")


def _no_sort(inputs: list, num_partitions: int, **_: object) -> list:
    """A 'sort' that hands back its inputs: valid records, wrong order."""
    return list(inputs)[:num_partitions]


def test_an_invalid_sort_is_reported_as_failed(shutdown_only):
    shoal.init(num_cpus=2, object_store_memory=128 << 20)
    report = run(SortConfig(total_bytes=300_000, partitions=2, maps=3), sort_fn=_no_sort)
    assert not report.verdict.ok
    text = format_report(report)
    assert "FAILED" in text and "partition 0 is not in key order" in text
    assert "2000 records in the output, 3000 in the input" in text
