"""Spill write and restore throughput for docs/design.md ("Object store and spilling").

    python scripts/measure_spilling.py [--store-mb 1024] [--factor 3] [--runs 3]

Measures on this machine, against the disk the session folder is on:
* the disk: ``dd`` with O_DIRECT, 1 GiB sequential write and read (what the
  issue's bar compares against);
* a single-node ``shoal.init`` with an object store of ``--store-mb``: put
  ``--factor`` times its capacity as 100 MiB arrays, then get every one back
  (each get restores a spilled object); then the same with 1 MiB objects.
  The store's own counters give spill write and restore throughput (bytes over
  the wall time during which at least one write, or read, was in flight); end
  to end is bytes over the wall time of the put and the get phases.  Before
  the get phase the spill files are written back and dropped from the page
  cache, so restores read the disk.
* peak memory of the cluster during both phases, sampled every 20 ms: the
  private memory (USS) of the node agent, its fork server and its workers,
  plus the arena's resident pages (tmpfs pages are resident once touched,
  whoever maps them).  Arena pages that only one process maps (the agent's
  restores, read ahead) show in its USS too: they are counted once.
  The driver is left out: it holds the test's own arrays.
Medians over the runs.  Not part of the test suite.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import statistics
import subprocess
import threading
import time

import numpy as np
import psutil

import shoal
from shoal.rpc.messages import Method

MiB = 1 << 20


def dd(folder: str) -> tuple[float, float]:
    path = os.path.join(folder, "dd-test")
    try:
        out = subprocess.run(["dd", "if=/dev/zero", f"of={path}", "bs=16M", "count=64",
                              "oflag=direct"], capture_output=True, text=True).stderr
        write = _dd_rate(out)
        out = subprocess.run(["dd", f"if={path}", "of=/dev/null", "bs=16M", "iflag=direct"],
                             capture_output=True, text=True).stderr
        return write, _dd_rate(out)
    finally:
        os.unlink(path)


def _dd_rate(text: str) -> float:
    match = re.search(r"(\d+) bytes .* copied, ([\d.]+) s", text)
    return int(match.group(1)) / float(match.group(2)) / 1e9


def drop_spill_files_from_cache(folders: list[str]) -> None:
    os.sync()
    for folder in folders:
        for path in glob.glob(os.path.join(folder, "*")):
            fd = os.open(path, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)


class PeakMemory:
    """The largest sum of private memory over a process and its descendants,
    plus the resident pages of the arena file, sampled."""

    def __init__(self, pid: int, arena: str) -> None:
        self.root = psutil.Process(pid)
        self.arena = arena
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            try:
                total = os.stat(self.arena).st_blocks * 512
            except OSError:
                continue
            for proc in [self.root, *self.root.children(recursive=True)]:
                try:
                    total += proc.memory_full_info().uss
                    # arena pages only this process maps count as its private memory
                    # too: they are in the arena's resident pages already
                    total -= sum(m.private_clean + m.private_dirty
                                 for m in proc.memory_maps() if m.path == self.arena)
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def run_once(store: int, factor: int, object_size: int) -> dict:
    shoal.init(num_cpus=1, object_store_memory=store)
    head = shoal.api.session._runtime.head
    memory = PeakMemory(head.proc.pid, head.store_path)
    try:
        worker = shoal.api.session._runtime.worker
        count = factor * store // object_size
        arrays = [np.full(object_size, i % 251, dtype=np.uint8) for i in range(min(count, 8))]
        start = time.perf_counter()
        refs = [shoal.put(arrays[i % len(arrays)]) for i in range(count)]
        put_s = time.perf_counter() - start
        stats = worker.node_call(Method.STORE_STATS)
        drop_spill_files_from_cache(stats["spill_dirs"])
        start = time.perf_counter()
        for i, ref in enumerate(refs):
            value = shoal.get(ref, timeout=120)
            assert value[0] == i % len(arrays) % 251 == value[-1]
            del value
        get_s = time.perf_counter() - start
        after = worker.node_call(Method.STORE_STATS)
        total = count * object_size
        return {
            "put_gbs": total / put_s / 1e9,
            "get_gbs": total / get_s / 1e9,
            "spill_gbs": stats["spilled_bytes_total"] / max(stats["spill_seconds"], 1e-9) / 1e9,
            "restore_gbs": after["restored_bytes_total"] / max(after["restore_seconds"], 1e-9)
            / 1e9,
            "spilled_gb": stats["spilled_bytes_total"] / 1e9,
            "spill_files": stats["spill_files"],
            "peak_mb": memory.stop() / MiB,
        }
    finally:
        memory.stop()
        shoal.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store-mb", type=int, default=1024)
    parser.add_argument("--factor", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from shoal.launch.sessions import session_root

    os.makedirs(session_root(), exist_ok=True)
    disk = [dd(session_root()) for _ in range(args.runs)]
    write = statistics.median(w for w, _ in disk)
    read = statistics.median(r for _, r in disk)
    print(f"disk under {session_root()} (dd O_DIRECT, 1 GiB): write {write:.2f} GB/s, "
          f"read {read:.2f} GB/s")
    for object_size in (100 * MiB, MiB):
        runs = [run_once(args.store_mb * MiB, args.factor, object_size)
                for _ in range(args.runs)]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"{object_size // MiB} MiB objects, {args.factor}x a {args.store_mb} MiB store: "
              f"spill write {med['spill_gbs']:.2f} GB/s ({med['spill_gbs'] / write:.0%} of dd), "
              f"restore {med['restore_gbs']:.2f} GB/s ({med['restore_gbs'] / read:.0%} of dd); "
              f"end to end put {med['put_gbs']:.2f} GB/s, get {med['get_gbs']:.2f} GB/s; "
              f"{med['spilled_gb']:.2f} GB spilled into {med['spill_files']:.0f} files; "
              f"peak memory of the cluster {med['peak_mb']:.0f} MiB "
              f"(store {args.store_mb} MiB + {med['peak_mb'] - args.store_mb:.0f} MiB)")


if __name__ == "__main__":
    main()
