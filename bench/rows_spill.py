"""Spilling: put 3x the store's capacity, then read every object back (issue 15).

Each sample, in one system's fresh subprocess:

1. the disk: ``dd`` with O_DIRECT (``oflag=direct`` / ``iflag=direct``) writes and
   reads a file in the spill directory, so the page cache plays no part.  That is
   the speed spilling can hope for on this filesystem, measured in the same run;
2. a local cluster (2 CPUs) whose store holds ``STORE`` bytes, spilling into that
   directory, gets 3x ``STORE`` in objects of one size (100 MB arrays, or 1 MB
   ones), all kept referenced;
3. every object is read back in order, checked against its checksum, and dropped.

Reported: write (put) and read (get + checksum) throughput, each also as a
fraction of dd's, and the end-to-end time; and the store's own spill write and
restore throughput (bytes over the time its disk I/O was in flight, as both
systems' ``memory --stats-only`` prints it), also against dd's.  A system whose
store cannot take the data (shoal before spilling: ObjectStoreFullError) reports
that as its error.
The spill directory is ``$BENCH_SPILL_DIR`` (default ``/tmp``)/``bench-spill-*``.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from bench.registry import GBPS, OF_DISK, SEC, row

NA = {"dask": "Dask spills per worker to its own directory; not compared here"}
MiB = 2**20
TIMEOUT = 600.0  # seconds for one get or put


def spill_root() -> str:
    return os.environ.get("BENCH_SPILL_DIR", tempfile.gettempdir())


def dd_speeds(directory: str, nbytes: int, block_mib: int = 4) -> tuple[float, float]:
    """(write, read) GB/s of ``dd`` with O_DIRECT on a file in ``directory``, in
    blocks of ``block_mib`` MiB (the block size that is faster on this virtual
    disk changes from day to day: 64 MiB gave 1.3 / 1.1 GB/s where 4 MiB gave
    0.99 / 0.66 once, and 4 MiB read faster in another run)."""
    path = os.path.join(directory, "dd-probe")
    count = max(1, nbytes // (block_mib * MiB))
    try:
        write = _dd(["if=/dev/zero", f"of={path}", f"bs={block_mib}M", f"count={count}",
                     "oflag=direct", "conv=fsync"])
        read = _dd([f"if={path}", "of=/dev/null", f"bs={block_mib}M", "iflag=direct"])
    finally:
        if os.path.exists(path):
            os.unlink(path)
    return write, read


def _dd(args: list[str]) -> float:
    out = subprocess.run(["dd", *args], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"dd {' '.join(args)} failed: {out.stderr.strip()[-300:]}")
    # "2147483648 bytes (2.1 GB, 2.0 GiB) copied, 1.71 s, 1.3 GB/s"
    match = re.search(r"^(\d+) bytes .* copied, ([\d.]+) s", out.stderr, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"cannot read dd's output: {out.stderr.strip()[-300:]}")
    return int(match.group(1)) / float(match.group(2)) / 1e9


def start_cluster(system: str, store_bytes: int, spill_dir: str):
    """``system``'s local cluster with a store of ``store_bytes`` spilling to ``spill_dir``."""
    mod = importlib.import_module(system)
    if system == "ray":
        config = {"type": "filesystem", "params": {"directory_path": spill_dir}}
        mod.init(address="local", num_cpus=2, object_store_memory=store_bytes,
                 include_dashboard=False,
                 _system_config={"object_spilling_config": json.dumps(config)})
        return mod
    try:
        mod.init(num_cpus=2, object_store_memory=store_bytes,
                 object_spilling_directory=spill_dir)
    except ValueError as exc:  # a shoal without spilling has no such argument
        if "object_spilling_directory" not in str(exc):
            raise
        print(f"bench: {system} has no object_spilling_directory; default store",
              file=sys.stderr, flush=True)
        mod.init(num_cpus=2, object_store_memory=store_bytes)
    return mod


def _array(base: np.ndarray, index: int) -> np.ndarray:
    """``base`` marked with ``index`` in its first 8 bytes (so every object differs)."""
    base[:8] = np.frombuffer(index.to_bytes(8, "little"), dtype=np.uint8)
    return base


_STORE_LINE = r"{verb} (\d+) MiB, (\d+) objects, avg {direction} throughput (\d+) MiB/s"


def store_rates(system: str) -> tuple[float, float]:
    """(spill write, restore) GB/s as the store itself reports them: bytes over
    the time its writes (reads) were in flight, from the ``memory --stats-only``
    lines both systems print ("Spilled N MiB, M objects, avg write throughput
    X MiB/s"); NaN where a line is missing."""
    if system == "ray":
        import ray
        from ray._private.internal_api import memory_summary
        text = memory_summary(address=ray.get_runtime_context().gcs_address, stats_only=True)
    else:
        text = importlib.import_module(f"{system}.util.memory").memory_summary(stats_only=True)
    rates = []
    for verb, direction in (("Spilled", "write"), ("Restored", "read")):
        match = re.search(_STORE_LINE.format(verb=verb, direction=direction), text)
        rates.append(int(match.group(3)) * MiB / 1e9 if match else float("nan"))
    return rates[0], rates[1]


def put_and_read_back(mod, object_bytes: int, total_bytes: int) -> dict:
    """Put ``total_bytes`` as objects of ``object_bytes``, then get, check, drop each."""
    count = total_bytes // object_bytes
    base = (np.arange(object_bytes, dtype=np.uint64) % 251).astype(np.uint8)
    rest_sum = int(base[8:].view(np.uint8).sum(dtype=np.uint64))
    start = time.perf_counter()
    refs = [mod.put(_array(base, i)) for i in range(count)]
    written = time.perf_counter()
    for i, ref in enumerate(refs):
        value = mod.get(ref, timeout=TIMEOUT)
        first = int.from_bytes(value[:8].tobytes(), "little")
        if first != i or int(value.sum(dtype=np.uint64)) != rest_sum + sum(value[:8].tolist()):
            raise RuntimeError(f"object {i} came back changed")
        del value
        refs[i] = None  # read once: let the store free it
    done = time.perf_counter()
    return {"write_s": written - start, "read_s": done - written, "bytes": count * object_bytes,
            "objects": count}


def _spill_row(label: str, object_bytes: int, objects: int, quick_objects: int):
    name = f"spill {label}"
    metrics = [
        (f"{name}: disk write (dd O_DIRECT)", GBPS),
        (f"{name}: disk read (dd O_DIRECT)", GBPS),
        (f"{name}: write (put)", GBPS),
        (f"{name}: read back (get + checksum)", GBPS),
        (f"{name}: write / disk write", OF_DISK),
        (f"{name}: read back / disk read", OF_DISK),
        (f"{name}: end to end", SEC),
        (f"{name}: store's spill write", GBPS),
        (f"{name}: store's restore", GBPS),
        (f"{name}: store's spill write / disk write", OF_DISK),
        (f"{name}: store's restore / disk read", OF_DISK),
        (f"{name}: disk write (dd O_DIRECT, 64 MiB blocks)", GBPS),
        (f"{name}: disk read (dd O_DIRECT, 64 MiB blocks)", GBPS),
        (f"{name}: store's spill write / disk write (64 MiB)", OF_DISK),
        (f"{name}: store's restore / disk read (64 MiB)", OF_DISK),
    ]

    @row(name, group=f"spill-{object_bytes // MiB}m", metrics=metrics, na=NA, cluster=False,
         max_repeat=3, quick_repeat=1, timeout=1800, quick_timeout=600)
    def spill(api, ctx):
        n = quick_objects if ctx.quick else objects
        total = n * object_bytes
        store = total // 3
        spill_dir = tempfile.mkdtemp(prefix="bench-spill-", dir=spill_root())
        try:
            dd_bytes = min(total, 4 * 2**30)
            disk_write, disk_read = dd_speeds(spill_dir, dd_bytes)
            big_write, big_read = dd_speeds(spill_dir, dd_bytes, 64)
            mod = start_cluster(ctx.system, store, spill_dir)
            try:
                out = put_and_read_back(mod, object_bytes, total)
                spill_rate, restore_rate = store_rates(ctx.system)
            finally:
                mod.shutdown()
        finally:
            shutil.rmtree(spill_dir, ignore_errors=True)
        write = out["bytes"] / out["write_s"] / 1e9
        read = out["bytes"] / out["read_s"] / 1e9
        values = [disk_write, disk_read, write, read, write / disk_write, read / disk_read,
                  out["write_s"] + out["read_s"], spill_rate, restore_rate,
                  spill_rate / disk_write, restore_rate / disk_read, big_write, big_read,
                  spill_rate / big_write, restore_rate / big_read]
        return {m: v for (m, _), v in zip(metrics, values, strict=True)}


# 3x the store: 100 x 100 MiB (store ~3.3 GiB); --quick: 30 x 100 MiB (store 1 GiB)
_spill_row("100 MB objects, 3x the store", 100 * MiB, 100, 30)
# 10,000 x 1 MiB (store ~3.3 GiB); --quick: 3,000 x 1 MiB (store 1 GiB)
_spill_row("1 MB objects, 3x the store", MiB, 10_000, 3_000)
