"""``python -m bench.data``: shoal.data, Ray Data and Dask DataFrame side by side.

For each row, each repeat and each system in turn (shoal, ray, dask, shoal,
...), a fresh subprocess under that system's own interpreter
(bench/data/child.py) starts a 2-CPU local cluster, runs the workload and
stops.  The runner samples the memory of every process under it every 0.2 s:
the sum of their PSS, which counts each shared page once, divided among the
processes mapping it: the object store in /dev/shm is in it (shoal's store
files, Ray's plasma file: ``Pss_Shmem`` of the tree equals their size), and
other tenants' /dev/shm use is not.  The table shows medians; ratios are
other/shoal (above 1: shoal is better).  ``--quick`` runs every size at 1/16.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

import psutil

from bench.data import inputs
from bench.runner import interpreter, kill_tree, set_subreaper, version_of

GB = 10**9
GiB = 2**30
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass(frozen=True)
class Row:
    name: str
    workload: str
    dataset: str  # "wide" (32 B rows) or "groups" (24 B rows)
    rows: int  # full size
    store: str  # "roomy": 1.5x the data (>= 1 GiB); "half": half the data


WIDE_4GB = 125_000_000  # 32-byte rows
ROWS = [
    Row("read_parquet -> map_batches -> write_parquet, 4 GB", "etl", "wide", WIDE_4GB, "roomy"),
    Row("random_shuffle 4 GB", "random_shuffle", "wide", WIDE_4GB, "roomy"),
    Row("sort 4 GB", "sort", "wide", WIDE_4GB, "roomy"),
    Row("random_shuffle 4 GB, store = data / 2", "random_shuffle", "wide", WIDE_4GB, "half"),
    Row("sort 4 GB, store = data / 2", "sort", "wide", WIDE_4GB, "half"),
    Row("groupby(key).mean(), 100M rows, 1k groups", "groupby_1k", "groups", 100_000_000,
        "roomy"),
    Row("groupby(key).mean(), 100M rows, 1M groups", "groupby_1m", "groups", 100_000_000,
        "roomy"),
    Row("iter_batches(4096, local_shuffle_buffer_size=100k), 4 GB", "iter_batches", "wide",
        WIDE_4GB, "roomy"),
]
ROW_BYTES = {"wide": 32, "groups": 24}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.data", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="every size at 1/16")
    p.add_argument("--scale", type=float, default=None, help="every size times this")
    p.add_argument("--systems", default="shoal,ray,dask")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--only", metavar="REGEX", help="rows whose names match")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds per sample (default 600 + 3000 x scale: 3600 at full size)")
    p.add_argument("--json", metavar="PATH")
    return p.parse_args(argv)


class MemorySampler:
    """Peak of the summed PSS of every process under this one, sampled every
    ``interval`` seconds."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _pss(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def sample(self) -> int:
        return sum(self._pss(p.pid) for p in psutil.Process().children(recursive=True))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.sample())
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_sample(python: str, system: str, row: Row, src: str, store: int, timeout: float,
               log) -> dict:
    out_dir = tempfile.mkdtemp(prefix="bench-data-out-")
    spec = {"system": system, "workload": row.workload, "src": src, "out": out_dir,
            "store_bytes": store}
    env = dict(os.environ, PYTHONPATH=ROOT)
    with MemorySampler() as mem:
        proc = subprocess.Popen([python, "-m", "bench.data.child", json.dumps(spec)],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        result: dict = {"error": "no result"}
        timer = threading.Timer(timeout, kill_tree, args=(proc,))
        timer.start()
        try:
            for line in proc.stdout:  # type: ignore[union-attr]
                log.write(line)
                if line.startswith("@@result "):  # stop here: a cluster's processes may
                    result = json.loads(line[len("@@result "):])  # hold the pipe open
                    break
            proc.wait()
        finally:
            timer.cancel()
        deadline = time.monotonic() + 15
        while psutil.Process().children() and time.monotonic() < deadline:
            time.sleep(0.2)  # the cluster's processes end after the driver
    for p in psutil.Process().children(recursive=True):
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    subprocess.run(["rm", "-rf", out_dir], check=False)
    result["peak_bytes"] = mem.peak
    return result


def store_for(row: Row, rows: int) -> int:
    data = rows * ROW_BYTES[row.dataset]
    if row.store == "half":
        return max(128 << 20, data // 2)  # Ray's store needs at least 75 MB
    return max(GiB, int(data * 1.5))


def main(argv=None) -> None:
    args = parse_args(argv)
    set_subreaper()
    scale = args.scale or (1 / 16 if args.quick else 1.0)
    timeout = args.timeout or 600 + 3000 * scale
    rows = [r for r in ROWS if not args.only or re.search(args.only, r.name)]
    systems = [s for s in args.systems.split(",") if s]
    pythons = {s: interpreter(s) for s in systems}
    systems = [s for s in systems if pythons[s]]
    log_path = os.path.join(tempfile.gettempdir(), f"bench-data-{os.getpid()}.log")
    print("systems: " + ", ".join(f"{s} {version_of(pythons[s], s)} ({pythons[s]})"
                                   for s in systems))
    print(f"scale {scale:g}; log: {log_path}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    results: dict = {}
    with open(log_path, "a") as log:
        for row in rows:
            n = max(1000, int(row.rows * scale))
            src = (inputs.wide if row.dataset == "wide" else inputs.groups)(n)
            store = store_for(row, n)
            for rep in range(args.repeat):
                for system in systems:
                    log.write(f"==== {row.name} / {system} / {rep}\n")
                    r = run_sample(pythons[system], system, row, src, store, timeout,
                                   log)
                    r["load"] = os.getloadavg()[0]
                    results.setdefault(row.name, {}).setdefault(system, []).append(r)
                    shown = (f"{r['seconds']:.2f} s" if "seconds" in r else r["error"])
                    print(f"  {row.name} | {system} #{rep}: {shown}, peak "
                          f"{r['peak_bytes'] / GB:.2f} GB", flush=True)
            print(report_row(row.name, n, results[row.name], systems), flush=True)
    print("\n" + table(rows, results, systems, scale))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"scale": scale, "results": results, "systems": systems}, f, indent=1)


def _median(samples: list[dict], key: str) -> float | None:
    values = [s[key] for s in samples if key in s and "error" not in s]
    return statistics.median(values) if values else None


def report_row(name: str, n: int, by_system: dict, systems: list[str]) -> str:
    parts = []
    for s in systems:
        sec = _median(by_system.get(s, []), "seconds")
        mem = _median(by_system.get(s, []), "peak_bytes")
        parts.append(f"{s}: " + ("failed" if sec is None else
                                 f"{sec:.2f} s, {n / sec / 1e6:.2f} M rows/s, "
                                 f"{mem / GB:.2f} GB"))
    return f"{name} ({n:,} rows): " + "; ".join(parts)


def table(rows: list[Row], results: dict, systems: list[str], scale: float) -> str:
    head = "| row | " + " | ".join(f"{s} s (M rows/s, peak GB)" for s in systems)
    others = [s for s in systems if s != "shoal"]
    head += " | " + " | ".join(f"{o}/shoal time, memory" for o in others) + " |"
    lines = [head, "|" + "---|" * (1 + len(systems) + len(others))]
    for row in rows:
        n = max(1000, int(row.rows * scale))
        by = results.get(row.name, {})
        cells, secs, mems = [], {}, {}
        for s in systems:
            secs[s] = _median(by.get(s, []), "seconds")
            mems[s] = _median(by.get(s, []), "peak_bytes")
            cells.append("failed" if secs[s] is None else
                         f"{secs[s]:.2f} ({n / secs[s] / 1e6:.1f}, {mems[s] / GB:.2f})")
        for o in others:
            if secs.get("shoal") and secs.get(o):
                cells.append(f"{secs[o] / secs['shoal']:.2f}x, "
                             f"{mems[o] / max(1, mems['shoal']):.2f}x")
            else:
                cells.append("-")
        lines.append(f"| {row.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
