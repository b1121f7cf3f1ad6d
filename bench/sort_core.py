"""A raysort-style distributed sort, written once against Ray's core API.

The same program runs on shoal and on Ray: ``run(shoal, ...)`` or ``run(ray, ...)``
(``import shoal as ray`` and ``import ray`` see the same calls).  Shape, as in
Exoshuffle's raysort:

* **records**: gensort's layout, 100 bytes with a 10-byte key in front.  Map task
  ``i`` makes its own records with numpy (random keys; the payload holds the
  record's number, so every record differs) and their checksum.
* **map**: ``num_returns=R + 1``: its records split by key range into ``R`` blocks,
  plus the checksum.  At most ``max_maps_in_flight`` (4) maps run or wait at a
  time: the driver ``wait``s for one to finish before it submits the next.
* **reduce** ``j``: takes column ``j`` of the map outputs (one block per map) as
  arguments, merges them and sorts by key.
* **validate**: a task per reduce output checks the order within it and returns
  its first and last key, its record count and its checksum; the driver checks
  the order across partitions and that the output's checksum (a sum of per-record
  hashes, so independent of order) equals the input's.

Reduce outputs are dropped once validated, so the live data peaks at the map
outputs: the whole input.  With 8 GB of input and a 4 GB store, the store must
spill to finish.  Usage::

    python bench/sort_core.py --system shoal --gb 1 --partitions 16
    python bench/sort_core.py --system ray --gb 8 --partitions 128 --store-gb 4
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

RECORD = 100  # bytes per record
KEY = 10  # bytes of key at the front of a record
MASK64 = (1 << 64) - 1
_WEIGHTS = np.random.default_rng(20261206).integers(1, 2**63, RECORD // 4, dtype=np.uint64) | 1
_CHECK_CHUNK = 1 << 16  # records hashed at once (temporaries stay in cache)


# ---- records, keys and checksums (pure numpy) -----------------------------------------------
def make_records(map_index: int, count: int, seed: int) -> np.ndarray:
    """``count`` records of map ``map_index``: random keys; the payload is the record's
    global number (8 bytes) and filler derived from it."""
    rng = np.random.default_rng([seed, map_index])
    records = np.empty((count, RECORD), dtype=np.uint8)
    records[:, :KEY] = rng.integers(0, 256, (count, KEY), dtype=np.uint8)
    numbers = np.arange(map_index * count, (map_index + 1) * count, dtype=np.uint64)
    records[:, KEY:KEY + 8] = numbers.view(np.uint8).reshape(count, 8)
    records[:, KEY + 8:] = (numbers % 251).astype(np.uint8)[:, None]
    return records


def key_parts(records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 10-byte keys as (first 8 bytes, last 2 bytes), both big-endian: comparing
    the pairs compares the keys."""
    high = np.ascontiguousarray(records[:, :8]).view(">u8").ravel().astype(np.uint64)
    low = np.ascontiguousarray(records[:, 8:KEY]).view(">u2").ravel().astype(np.uint16)
    return high, low


def boundaries(partitions: int) -> np.ndarray:
    """Key-prefix cut points splitting uniform keys into ``partitions`` equal ranges."""
    step = (1 << 64) // partitions
    return np.array([i * step for i in range(1, partitions)], dtype=np.uint64)


def checksum(records: np.ndarray) -> int:
    """Sum over records of a 64-bit hash of all 100 bytes: independent of the order,
    changed by any lost, repeated or altered record.  (Column by column over a
    transposed chunk: ~1 GB/s, where a row-wise multiply-and-sum ran at 0.1.)"""
    total = 0
    for start in range(0, len(records), _CHECK_CHUNK):
        chunk = np.ascontiguousarray(records[start:start + _CHECK_CHUNK])
        words = chunk.view(np.uint32).T.copy()  # (25, records): rows are contiguous
        h = np.zeros(words.shape[1], dtype=np.uint64)
        for k in range(words.shape[0]):
            h += words[k] * _WEIGHTS[k]
        h ^= h >> np.uint64(31)
        h *= np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(29)
        total = (total + int(h.sum(dtype=np.uint64))) & MASK64
    return total


def is_sorted(records: np.ndarray) -> bool:
    high, low = key_parts(records)
    if len(high) < 2:
        return True
    up = high[1:] > high[:-1]
    same = high[1:] == high[:-1]
    return bool(np.all(up | (same & (low[1:] >= low[:-1]))))


# ---- the tasks ------------------------------------------------------------------------------
def map_task(map_index: int, count: int, seed: int, partitions: int) -> tuple:
    """Make the records; return them split into ``partitions`` key ranges, then the
    input checksum (``num_returns=partitions + 1``)."""
    records = make_records(map_index, count, seed)
    return (*split_task(records, partitions), checksum(records))


def split_task(records: np.ndarray, partitions: int) -> list[np.ndarray]:
    """The map's work on given records: ``partitions`` blocks by key range
    (``num_returns=partitions``; bench/shuffle maps inputs stored beforehand)."""
    high, _ = key_parts(records)
    part = np.searchsorted(boundaries(partitions), high, side="right").astype(np.uint16)
    grouped = records[np.argsort(part, kind="stable")]  # a radix sort on 16-bit ints
    ends = np.cumsum(np.bincount(part, minlength=partitions))
    starts = np.concatenate(([0], ends[:-1]))
    return [grouped[s:e] for s, e in zip(starts, ends, strict=True)]


def reduce_task(*blocks: np.ndarray) -> np.ndarray:
    """Merge one key range's blocks (one per map) into sorted records."""
    records = np.concatenate(blocks) if len(blocks) > 1 else np.array(blocks[0])
    high, low = key_parts(records)
    order = np.argsort(high)
    ordered = high[order]
    if np.any(ordered[1:] == ordered[:-1]):  # rare with random keys: order ties by the rest
        order = np.lexsort((low, high))
    return records[order]


def validate_task(records: np.ndarray) -> dict:
    return {"count": len(records), "sorted": is_sorted(records), "checksum": checksum(records),
            "first": bytes(records[0, :KEY]) if len(records) else b"",
            "last": bytes(records[-1, :KEY]) if len(records) else b""}


# ---- the driver -----------------------------------------------------------------------------
@dataclass
class SortResult:
    system: str
    total_bytes: int
    partitions: int
    seconds: float = 0.0
    ok: bool = False
    records: int = 0
    input_checksum: int = 0
    output_checksum: int = 0
    problems: list[str] = field(default_factory=list)
    error: str = ""  # the run failed: exception type and message

    def summary(self) -> str:
        size = f"{self.total_bytes / 1e9:g} GB / {self.partitions} partitions"
        if self.error:
            return f"{self.system}: sort of {size} FAILED after {self.seconds:.1f} s: {self.error}"
        verdict = "validated" if self.ok else "INVALID: " + "; ".join(self.problems)
        return f"{self.system}: sort of {size} in {self.seconds:.2f} s, {verdict}"


def run(ray: Any, total_bytes: int, partitions: int, *, max_maps_in_flight: int = 4,
        seed: int = 0, timeout: float = 3600.0) -> SortResult:
    """Sort ``total_bytes`` of records in ``partitions`` map and reduce partitions on the
    running cluster of ``ray`` (shoal or Ray); raises whatever the system raises."""
    if not 1 <= partitions <= 65535:
        raise ValueError(f"partitions must be in 1..65535, got {partitions}")
    result = SortResult(getattr(ray, "__name__", str(ray)), total_bytes, partitions)
    per_map = total_bytes // RECORD // partitions
    mapper = ray.remote(num_returns=partitions + 1)(map_task)
    reducer = ray.remote(reduce_task)
    validator = ray.remote(validate_task)
    start = time.perf_counter()
    columns: list[list] = [[] for _ in range(partitions)]
    checks, in_flight = [], []
    for i in range(partitions):
        if len(in_flight) >= max_maps_in_flight:
            _, in_flight = ray.wait(in_flight, num_returns=1, timeout=timeout)
        refs = mapper.remote(i, per_map, seed, partitions)
        for j in range(partitions):
            columns[j].append(refs[j])
        checks.append(refs[partitions])
        in_flight.append(refs[partitions])
        del refs
    validations = [validator.remote(reducer.remote(*columns[j])) for j in range(partitions)]
    del columns  # the reduces hold their blocks; each goes once its reduce is done
    input_sum = sum(ray.get(checks, timeout=timeout)) & MASK64
    parts = ray.get(validations, timeout=timeout)
    result.seconds = time.perf_counter() - start
    result.input_checksum = input_sum
    result.output_checksum = sum(p["checksum"] for p in parts) & MASK64
    result.records = sum(p["count"] for p in parts)
    result.problems = check_parts(parts, per_map * partitions, input_sum)
    result.ok = not result.problems
    return result


def sort_stored(ray: Any, inputs: list, *, max_maps_in_flight: int = 4,
                timeout: float = 3600.0) -> list:
    """The same program on inputs already in the store (refs to ``(n, 100)`` records):
    one map per input (``split_task``, ``num_returns=len(inputs)``), at most
    ``max_maps_in_flight`` at a time, then one reduce per key range.  Returns the
    reduces' refs; the caller waits for them (the sort phase bench/shuffle times).
    Clears ``inputs`` as it maps them (the map holds its input), so that an input
    is freed once mapped if the caller holds no other ref to it."""
    partitions = len(inputs)
    if not 1 <= partitions <= 65535:
        raise ValueError(f"inputs: 1..65535 partitions, got {partitions}")
    if partitions == 1:  # num_returns=1 returns one block, not a list of one
        return [ray.remote(reduce_task).remote(inputs[0])]
    mapper = ray.remote(num_returns=partitions)(split_task)
    reducer = ray.remote(reduce_task)
    columns: list[list] = [[] for _ in range(partitions)]
    in_flight: list = []
    for i in range(partitions):
        if len(in_flight) >= max_maps_in_flight:
            _, in_flight = ray.wait(in_flight, num_returns=1, timeout=timeout)
        refs = mapper.remote(inputs[i], partitions)
        inputs[i] = None
        for j in range(partitions):
            columns[j].append(refs[j])
        in_flight.append(refs[0])
        del refs
    outputs = [reducer.remote(*columns[j]) for j in range(partitions)]
    del columns
    return outputs


def check_parts(parts: list[dict], records: int, input_sum: int) -> list[str]:
    """What is wrong with the validated partitions, in order (empty: a valid sort)."""
    problems = [f"partition {j} is not sorted" for j, p in enumerate(parts) if not p["sorted"]]
    filled = [(j, p) for j, p in enumerate(parts) if p["count"]]
    for (i, a), (j, b) in zip(filled, filled[1:], strict=False):
        if a["last"] > b["first"]:
            problems.append(f"partition {i} ends after partition {j} starts")
    count = sum(p["count"] for p in parts)
    if count != records:
        problems.append(f"{count} records out, {records} in")
    if sum(p["checksum"] for p in parts) & MASK64 != input_sum:
        problems.append("output checksum differs from the input checksum")
    return problems


def run_on_fresh_cluster(system: str, total_bytes: int, partitions: int,
                         store_bytes: int | None = None, **options: Any) -> SortResult:
    """Start ``system``'s local cluster (2 CPUs), sort, stop it; a failure of the run is
    reported in the result rather than raised."""
    ray = importlib.import_module(system)
    init = {"num_cpus": 2}
    if store_bytes:
        init["object_store_memory"] = store_bytes
    if system == "ray":
        init["include_dashboard"] = False
    ray.init(**init)
    start = time.perf_counter()
    try:
        return run(ray, total_bytes, partitions, **options)
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        out = SortResult(system, total_bytes, partitions, seconds=time.perf_counter() - start)
        out.error = f"{type(exc).__name__}: {str(exc)[:500]}"
        return out
    finally:
        ray.shutdown()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--system", default="shoal", choices=["shoal", "ray"])
    p.add_argument("--gb", type=float, default=1.0, help="input size in GB (1e9 bytes)")
    p.add_argument("--partitions", type=int, default=16)
    p.add_argument("--store-gb", type=float, default=None, help="object store size (GiB)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args(argv)
    store = int(args.store_gb * 2**30) if args.store_gb else None
    result = run_on_fresh_cluster(args.system, int(args.gb * 1e9), args.partitions, store)
    print(json.dumps(asdict(result)) if args.json else result.summary())
    sys.exit(0 if result.ok else 1)


if __name__ == "__main__":
    main()
