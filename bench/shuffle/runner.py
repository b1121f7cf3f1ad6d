"""``python -m bench.shuffle``: the side-by-side sort, each sample in a fresh
subprocess, interleaved (A, B, C, A, B, C, ...), medians.

For each size, each repeat and each system in turn, one ``bench.shuffle.child``
subprocess under the system's own interpreter starts its cluster, generates the
inputs in tasks, times the sort, validates and stops.  Only one system is alive
at a time; the runner is a child subreaper, so every process of the system is
its descendant: a thread sums their memory (``monitor.py``), and whatever
outlives the driver is killed after 15 s and reported.  A sample that fails,
does not validate or times out is reported for that system and size and not
retried in later repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

import psutil

from bench import runner as bench_runner
from bench.shuffle import report
from bench.shuffle.monitor import TreeMonitor
from bench.shuffle.sample import PREFIX
from bench.shuffle.variants import VARIANTS, expand

REPO = bench_runner.REPO
GiB = 2**30
MIN_AVAILABLE = int(1.5 * GiB)  # abort a sample when the machine has less memory left
SHUTDOWN_GRACE = 120.0  # seconds after the sort's timeout for generate, validate, stop


@dataclass(frozen=True)
class Size:
    label: str
    total_bytes: int
    partitions: int
    store_bytes: int | None = None  # None: each system's default store

    def describe(self) -> str:
        store = f", {self.store_bytes / GiB:g} GiB store" if self.store_bytes else ""
        return f"{self.total_bytes / 1e9:g} GB, {self.partitions}x{self.partitions}{store}"


PRESETS = {
    "256MB": Size("256MB", 256 * 10**6, 8),
    "1GB": Size("1GB", 10**9, 16),
    "4GB": Size("4GB", 4 * 10**9, 64),
    "8GB": Size("8GB", 8 * 10**9, 128, 4 * GiB),  # about twice the store: spills
}
_CUSTOM = re.compile(r"(\d+(?:\.\d+)?)(MB|GB):(\d+)(?::(\d+(?:\.\d+)?)GiB)?")


def parse_size(text: str) -> Size:
    """A preset (``1GB``) or ``TOTAL:PARTITIONS[:STOREGiB]`` (``2GB:32:1GiB``)."""
    if text in PRESETS:
        return PRESETS[text]
    match = _CUSTOM.fullmatch(text)
    if not match:
        raise ValueError(f"not a size: {text!r} (presets {', '.join(PRESETS)}, or like "
                         f"2GB:32 or 2GB:32:1GiB)")
    total = int(float(match.group(1)) * (10**9 if match.group(2) == "GB" else 10**6))
    store = int(float(match.group(4)) * GiB) if match.group(4) else None
    return Size(text, total, int(match.group(3)), store)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.shuffle",
                                description=__doc__.split("\n")[0])
    p.add_argument("--systems", default="shoal,ray,dask,numpy",
                   help="variants or groups, comma-separated (--list shows them)")
    p.add_argument("--sizes", default="1GB,4GB,8GB",
                   help=f"presets ({', '.join(PRESETS)}) or TOTAL:PARTITIONS[:STOREGiB]")
    p.add_argument("--repeat", type=int, default=3, help="samples per system and size")
    p.add_argument("--quick", action="store_true", help="256 MB, one sample each")
    p.add_argument("--json", metavar="PATH", help="write every sample and the medians here")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds per sample (default 240 + 90 per GB)")
    p.add_argument("--list", action="store_true", help="list the systems and sizes and exit")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.repeat = "256MB", 1
    return args


class Runner:
    def __init__(self, args, systems: list[str], sizes: list[Size],
                 pythons: dict[str, str], log_dir: str):
        self.args = args
        self.systems = systems
        self.sizes = sizes
        self.pythons = pythons  # "shoal"/"ray"/"dask" -> interpreter
        self.log_dir = log_dir
        self.samples: list[dict] = []
        self.notes: list[str] = []
        self.given_up: set[tuple[str, str]] = set()  # (size label, system)

    def run(self) -> None:
        for size in self.sizes:
            for rep in range(self.args.repeat):
                for system in self.systems:
                    if (size.label, system) in self.given_up:
                        continue
                    label = f"{size.label} {rep + 1}/{self.args.repeat} {system}"
                    outcome = self.run_sample(system, size, label)
                    self.samples.append(outcome)
                    report.progress(label, outcome)
                    if not outcome["ok"]:
                        self.given_up.add((size.label, system))

    def timeout(self, size: Size) -> float:
        return self.args.timeout or 240.0 + 90.0 * size.total_bytes / 1e9

    def run_sample(self, system: str, size: Size, label: str) -> dict:
        timeout = self.timeout(size)
        spec = json.dumps({"system": system, "total_bytes": size.total_bytes,
                           "partitions": size.partitions, "store_bytes": size.store_bytes,
                           "timeout": timeout, "runner_pid": os.getpid()})
        env = dict(os.environ, PYTHONUNBUFFERED="1", RAY_USAGE_STATS_ENABLED="0",
                   PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])))
        log_path = os.path.join(self.log_dir, re.sub(r"[^\w.-]+", "-", label) + ".log")
        python = self.pythons[VARIANTS[system].python]
        load_before = os.getloadavg()[0]
        with open(log_path, "ab") as log, TreeMonitor() as monitor:
            proc = subprocess.Popen([python, "-m", "bench.shuffle.child", spec], cwd=REPO,
                                    env=env, stdout=subprocess.PIPE, stderr=log,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                events, problem = self.follow(proc, timeout + SHUTDOWN_GRACE,
                                              on_sort_end=monitor.read_now)
            except BaseException:
                bench_runner.kill_tree(proc)
                raise
            leftover = bench_runner.sweep_leftovers(system)
        if leftover:
            self.notes.append(f"[{label}] {leftover}")
        result = events.get("result", {"system": system, "error": problem or
                                       f"no result (exit code {proc.returncode}; log "
                                       f"{log_path})"})
        if problem:
            result["error"] = problem
        window = (events.get("sort_start"), events.get("sort_end"))
        outcome = {"size": size.label, "size_info": size.__dict__, "system": system,
                   "sample": result, "log": log_path, "load_before": load_before,
                   "memory_sample": monitor.peak(),
                   "memory_sort": monitor.peak(*window) if all(window) else None}
        outcome["ok"] = bool(result.get("ok")) and not result.get("error")
        return outcome

    def follow(self, proc: subprocess.Popen, limit: float,
               on_sort_end=lambda: None) -> tuple[dict, str | None]:
        """Events of the child until it exits; (events, why it was killed or None)."""
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
        events: dict = {}
        deadline = time.monotonic() + limit
        while True:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                line = ""
                problem = None
                if time.monotonic() > deadline:
                    problem = f"timeout: no result after {limit:.0f} s"
                elif psutil.virtual_memory().available < MIN_AVAILABLE:
                    problem = (f"aborted: machine memory nearly exhausted "
                               f"({psutil.virtual_memory().available / GiB:.1f} GiB left)")
                if problem:
                    bench_runner.kill_tree(proc)
                    return events, problem
                if proc.poll() is None:
                    continue
            if line is None or (line == "" and proc.poll() is not None):
                proc.wait()
                return events, None
            if line.startswith(PREFIX):
                event = json.loads(line[len(PREFIX):])
                kind = event.pop("event")
                events[kind] = event.get("t", event.get("sample"))
                if kind == "sort_end":
                    on_sort_end()


def _read_lines(stream, lines: queue.Queue) -> None:
    for raw in stream:
        lines.put(raw.decode(errors="replace"))
    lines.put(None)


def main(argv=None) -> None:
    args = parse_args(argv)
    try:
        systems = expand(args.systems)
        sizes = [parse_size(s) for s in args.sizes.split(",") if s]
    except ValueError as exc:
        sys.exit(f"python -m bench.shuffle: {exc}")
    if args.list:
        for name, v in VARIANTS.items():
            print(f"{name:15s} ({v.python:5s}) {v.what}")
        for size in PRESETS.values():
            print(f"size {size.label:6s} {size.describe()}")
        return
    pythons = {p: bench_runner.interpreter(p) for p in {VARIANTS[s].python for s in systems}}
    missing = sorted(p for p, path in pythons.items() if path is None)
    if missing:
        print(f"left out (no interpreter with {', '.join(missing)}): "
              + ", ".join(s for s in systems if VARIANTS[s].python in missing), file=sys.stderr)
        systems = [s for s in systems if VARIANTS[s].python not in missing]
    if not systems:
        sys.exit("python -m bench.shuffle: no system to run")
    bench_runner.set_subreaper()
    signal.signal(signal.SIGTERM, bench_runner._interrupt)
    log_dir = tempfile.mkdtemp(prefix="shoal-shuffle-bench-")
    versions = {p: bench_runner.version_of(path, p) for p, path in pythons.items() if path}
    print(f"bench.shuffle: {', '.join(systems)}; sizes {', '.join(s.describe() for s in sizes)}; "
          f"{args.repeat} samples each; "
          + ", ".join(f"{p} {versions[p]} ({pythons[p]})" for p in versions)
          + f"; logs in {log_dir}", file=sys.stderr, flush=True)
    runner = Runner(args, systems, sizes, pythons, log_dir)
    started = time.time()
    interrupted = False
    try:
        runner.run()
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: reporting what ran", file=sys.stderr)
    finally:
        bench_runner.sweep_leftovers("the interrupted run")
    elapsed = time.time() - started
    summary = report.summarize(runner.samples, sizes, systems)
    report.print_tables(summary, sizes, systems, runner.notes, args, elapsed)
    if args.json:
        report.write_json(args.json, runner.samples, summary, args, elapsed, log_dir,
                          {p: {"python": pythons[p], "version": versions.get(p)}
                           for p in versions})
    if interrupted:
        sys.exit(130)
