"""``shoal sort``: a distributed sort benchmark, validated like valsort.

1. **generate**: one task per input partition makes gensort records
   (gensort.py, deterministic from ``seed``) and their checksum; all inputs are
   materialized before the clock starts, as in the issue's measurements;
2. **sort**: :func:`shoal.shuffle.sort`; the sort time runs from the call to
   the last output in the store, with the library's stage spans (first
   submission to last completion of maps, merges and reduces);
3. **validate**: one task per output partition summarizes it (order, first and
   last key, count, checksum, duplicate keys) and, with ``output_dir``, writes
   it to ``part-NNNNN`` in gensort's format; the summaries are checked in order.

A *store probe* (injected by the command line, which may look below the public
API) is polled on a thread for the peak bytes in the object stores and, when
the store reports it, the bytes spilled.  This module uses the public API only.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

import shoal
from shoal.shuffle.api import sort
from shoal.shuffle.driver import ShuffleStats
from shoal.shuffle.gensort import make_records
from shoal.shuffle.records import MASK64, RECORD_BYTES, checksum
from shoal.shuffle.tasks import TASK_MAX_RETRIES
from shoal.shuffle.validation import PartitionSummary, Verdict, check, summarize

PROBE_EVERY_S = 0.1
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_size(text: str) -> int:
    """``"4GB"`` -> 4_000_000_000 (decimal units; KiB, MiB, GiB binary)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(text))
    unit = match.group(2).upper() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(f"not a size: {text!r} (examples: 4GB, 512MB, 1.5GiB)")
    return int(float(match.group(1)) * _UNITS[unit])


@dataclass(frozen=True)
class StoreUse:
    used: int  # bytes in the object stores of all nodes
    capacity: int
    spilled: int | None = None  # bytes spilled so far; None: the store does not say
    restored: int | None = None  # bytes read back from disk so far (likewise)


@dataclass
class SortConfig:
    total_bytes: int
    partitions: int
    maps: int | None = None  # input partitions (default: as many as outputs)
    strategy: str = "push"
    seed: int = 0
    output_dir: str | None = None
    progress: bool | None = None

    def __post_init__(self) -> None:
        self.maps = self.maps or self.partitions
        if self.total_bytes < RECORD_BYTES:
            raise ValueError(f"--total must be at least one record ({RECORD_BYTES} bytes), "
                             f"got {self.total_bytes}")
        if self.maps < 1 or self.partitions < 1:
            raise ValueError("--partitions and --maps must be >= 1")

    def counts(self) -> list[int]:
        """Records per input partition (their sum: total_bytes // 100)."""
        records = self.total_bytes // RECORD_BYTES
        return [records // self.maps + (i < records % self.maps) for i in range(self.maps)]


@dataclass
class SortReport:
    config: SortConfig
    records: int = 0
    generate_s: float = 0.0
    sort_s: float = 0.0
    validate_s: float = 0.0
    stages: dict[str, list[float]] = field(default_factory=dict)
    peak_store_bytes: int | None = None
    store_capacity: int | None = None
    spilled_bytes: int | None = None
    verdict: Verdict = field(default_factory=Verdict)
    files: int = 0

    @property
    def gb_per_s(self) -> float:
        return self.config.total_bytes / 1e9 / self.sort_s if self.sort_s else 0.0

    def as_dict(self) -> dict:
        out = asdict(self)
        out["gb_per_s"] = self.gb_per_s
        out["ok"] = self.verdict.ok
        return out


# ---- tasks ----------------------------------------------------------------------------
@shoal.remote(num_returns=2, max_retries=TASK_MAX_RETRIES)
def generate_input(start: int, count: int, seed: int) -> tuple[np.ndarray, int]:
    records = make_records(start, count, seed)
    return records, checksum(records)


@shoal.remote(max_retries=TASK_MAX_RETRIES)
def validate_output(records: np.ndarray, path: str | None) -> PartitionSummary:
    if path is not None:
        partial = f"{path}.partial"
        with open(partial, "wb") as f:
            f.write(memoryview(np.ascontiguousarray(records)).cast("B"))
        os.replace(partial, path)
    return summarize(records)


# ---- the run --------------------------------------------------------------------------
class StorePeak:
    """Polls a store probe on a thread; keeps the peak use and the last spill count."""

    def __init__(self, probe: Callable[[], StoreUse | None] | None) -> None:
        self.probe = probe
        self.peak: int | None = None
        self.capacity: int | None = None
        self.spilled: int | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, name="shoal-sort-probe",
                                       daemon=True)

    def __enter__(self) -> StorePeak:
        if self.probe is not None:
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=10)
        self._sample()

    def _poll(self) -> None:
        while not self.stop.wait(PROBE_EVERY_S):
            self._sample()

    def _sample(self) -> None:
        if self.probe is None:
            return
        try:
            use = self.probe()
        except Exception:  # noqa: BLE001 (a missed sample; the next one may work)
            return
        if use is None:
            return
        self.peak = max(self.peak or 0, use.used)
        self.capacity = use.capacity
        if use.spilled is not None:
            self.spilled = use.spilled


def run(config: SortConfig, probe: Callable[[], StoreUse | None] | None = None,
        sort_fn: Callable[..., list] = sort, timeout: float = 3600.0) -> SortReport:
    """Generate, sort and validate on the connected cluster."""
    report = SortReport(config)
    if config.output_dir:
        os.makedirs(config.output_dir, exist_ok=True)
    with StorePeak(probe) as peak:
        start = time.perf_counter()
        inputs, sums, first = [], [], 0
        for count in config.counts():
            records, total = generate_input.remote(first, count, config.seed)
            inputs.append(records)
            sums.append(total)
            first += count
        report.records = first
        shoal.wait(inputs, num_returns=len(inputs), timeout=timeout)
        input_sum = sum(shoal.get(sums, timeout=timeout)) & MASK64
        report.generate_s = time.perf_counter() - start

        stats = ShuffleStats()
        start = time.perf_counter()
        outputs = sort_fn(inputs, num_partitions=config.partitions, strategy=config.strategy,
                          stats=stats, progress=config.progress)
        del inputs  # the maps hold them now: each is freed once mapped
        shoal.wait(outputs, num_returns=len(outputs), timeout=timeout)
        report.sort_s = time.perf_counter() - start
        report.stages = {k: list(v) for k, v in stats.stages.items()}

        start = time.perf_counter()
        summaries = []
        for index in range(len(outputs)):
            path = (os.path.join(config.output_dir, f"part-{index:05d}")
                    if config.output_dir else None)
            summaries.append(validate_output.remote(outputs[index], path))
            outputs[index] = None  # freed once validated
        parts = shoal.get(summaries, timeout=timeout)
        report.validate_s = time.perf_counter() - start
        report.files = len(parts) if config.output_dir else 0
    report.verdict = check(parts, report.records, input_sum)
    report.peak_store_bytes, report.store_capacity = peak.peak, peak.capacity
    report.spilled_bytes = peak.spilled
    return report


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


def format_report(report: SortReport) -> str:
    """What ``shoal sort`` prints (pure)."""
    c, v = report.config, report.verdict
    lines = [
        f"shoal sort: {_gb(c.total_bytes)} ({report.records:,} records), {c.maps} input and "
        f"{c.partitions} output partitions, strategy {c.strategy}",
        f"  generate   {report.generate_s:8.2f} s  (inputs made in tasks and stored before "
        f"the sort starts)",
        f"  sort       {report.sort_s:8.2f} s  {report.gb_per_s:.3f} GB/s",
    ]
    for stage in ("map", "merge", "reduce"):
        if stage in report.stages:
            begin, end = report.stages[stage]
            lines.append(f"    {stage:<8} {end - begin:8.2f} s  (from {begin:.2f} s to "
                         f"{end:.2f} s)")
    written = f", wrote {report.files} files to {c.output_dir}" if report.files else ""
    lines.append(f"  validate   {report.validate_s:8.2f} s{written}")
    if report.peak_store_bytes is None:
        lines.append("  store      peak use not measured")
    else:
        of = f" of {_gb(report.store_capacity)}" if report.store_capacity else ""
        lines.append(f"  store      peak {_gb(report.peak_store_bytes)}{of} in use")
    lines.append("  spilled    " + (_gb(report.spilled_bytes) if report.spilled_bytes is not None
                                    else "not reported (this object store does not spill)"))
    lines.append(f"  valsort    records {v.records:,}, checksum {v.checksum:016x}, "
                 f"duplicate keys {v.duplicates}")
    if v.ok:
        lines.append("  SUCCESS: all records in order, none lost or changed")
    else:
        lines += ["  FAILED:"] + [f"    {p}" for p in v.problems]
    return "\n".join(lines)
