"""``python -m bench``: run the rows for each system in fresh subprocesses and report.

For each group of rows, each repeat and each system in turn (shoal, ray, dask,
shoal, ray, dask, ...), one ``bench.child`` subprocess starts that system's
cluster, runs the group's rows and stops the cluster; only one system is alive
at a time.  A row that errs or exceeds its timeout is reported for that system
and not retried in later repeats; the suite goes on.  The runner makes itself
a child subreaper, so processes a cluster leaves behind come back to it and
are ended (and reported) after each subprocess.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
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

import psutil

from bench import adapters, report
from bench.child import PREFIX
from bench.registry import QUICK_GROUPS, Row, all_rows

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INIT_TIMEOUT = 180.0  # seconds for a subprocess to start its cluster
SHUTDOWN_TIMEOUT = 60.0  # seconds for it to stop the cluster and exit
LEFTOVER_GRACE = 15.0  # seconds processes may outlive their driver before being killed
MIN_AVAILABLE = 2 * 2**30  # abort a row when the machine has less memory available


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--systems", default=None,
                   help="comma-separated subset of shoal,ray,dask (default: all importable)")
    p.add_argument("--quick", action="store_true",
                   help="short CI smoke run: 3 repeats, short samples, smaller batches")
    p.add_argument("--json", metavar="PATH", help="write every sample and machine info here")
    p.add_argument("--only", metavar="REGEX", help="run rows whose names match (re.search)")
    p.add_argument("--repeat", type=int, default=None,
                   help="samples per row and system (default 5, --quick 3)")
    p.add_argument("--list", action="store_true", help="list the rows and exit")
    return p.parse_args(argv)


def interpreter(system: str) -> str | None:
    """The Python that runs ``system``'s rows: its own virtualenv's (Ray, Dask), else
    this one if the system imports here, else None (the system is left out)."""
    module = adapters.IMPORTS[system]
    peer = adapters.peer_python(system)
    if peer is not None and system != "shoal":
        probe = subprocess.run([peer, "-c", f"import {module}, numpy, psutil"],
                               capture_output=True, timeout=120)
        if probe.returncode == 0:
            return peer
    return sys.executable if importlib.util.find_spec(module) is not None else None


def version_of(python: str, system: str) -> str:
    module = adapters.IMPORTS[system]
    try:
        out = subprocess.run([python, "-c", f"import {module}; print({module}.__version__)"],
                             capture_output=True, text=True, timeout=120)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def select_rows(args) -> list[Row]:
    mode_ok = ("both", "quick") if args.quick else ("both", "full")
    rows = [r for r in all_rows() if r.mode in mode_ok]
    if args.only:
        pattern = re.compile(args.only)
        rows = [r for r in rows
                if pattern.search(r.name) or any(pattern.search(m) for m, _ in r.metrics)]
    return rows


def set_subreaper() -> None:
    try:  # PR_SET_CHILD_SUBREAPER: orphans of our subprocesses are re-parented to us
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def kill_tree(proc: subprocess.Popen) -> None:
    try:
        root = psutil.Process(proc.pid)
        procs = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        procs = []
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)
    proc.wait()


def sweep_leftovers(system: str) -> str | None:
    """End processes that outlived their driver; say which, if any needed killing."""
    procs = psutil.Process().children(recursive=True)
    _, alive = psutil.wait_procs(procs, timeout=LEFTOVER_GRACE)
    if not alive:
        return None
    names = []
    for p in alive:
        try:
            names.append(f"{p.pid} {' '.join(p.cmdline())[:80]}")
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=10)
    return (f"{len(alive)} process(es) of {system} still running {LEFTOVER_GRACE:.0f} s "
            f"after its driver exited, killed: " + "; ".join(names))


class Runner:
    def __init__(self, args, systems: list[str], log_dir: str,
                 pythons: dict[str, str] | None = None):
        self.args = args
        self.systems = systems
        self.pythons = pythons or {}  # system -> interpreter (default: this one)
        self.log_dir = log_dir
        self.results = report.Results()
        self.given_up: set[tuple[str, str]] = set()  # (row, system) that erred or timed out
        self.notes: list[str] = []

    def run(self, rows: list[Row]) -> None:
        groups: dict[str, list[Row]] = {}
        for r in rows:
            groups.setdefault(self.group(r), []).append(r)
        for group, members in groups.items():
            reps = max(self.repeats(r) for r in members)
            for rep in range(reps):
                for system in self.systems:
                    todo = [r for r in members
                            if system not in r.na and rep < self.repeats(r)
                            and (r.name, system) not in self.given_up]
                    if todo:
                        self.run_child(system, todo, f"{group} {rep + 1}/{reps}")

    def group(self, r: Row) -> str:
        return QUICK_GROUPS.get(r.group, r.group) if self.args.quick else r.group

    def repeats(self, r: Row) -> int:
        repeat = self.args.repeat or (3 if self.args.quick else 5)
        cap = r.quick_repeat if self.args.quick else r.max_repeat
        return min(repeat, cap or repeat)

    def record_error(self, r: Row, system: str, message: str, label: str) -> None:
        self.given_up.add((r.name, system))
        self.results.error(r, system, message)
        print(f"[{label}] {system:5s} {r.name}: ERROR {message}", file=sys.stderr, flush=True)

    def run_child(self, system: str, rows: list[Row], label: str) -> None:
        """Run ``rows`` in fresh subprocesses of ``system`` until each has an outcome."""
        pending = list(rows)
        while pending:
            done = self.run_once(system, pending, label)
            leftover = sweep_leftovers(system)
            if leftover:
                self.note(label, leftover)
            pending = [r for r in pending if r.name not in done]

    def run_once(self, system: str, rows: list[Row], label: str) -> set[str]:
        """One subprocess for ``rows``; returns the rows that got an outcome."""
        spec = json.dumps({"system": system, "rows": [r.name for r in rows],
                           "quick": self.args.quick, "runner_pid": os.getpid()})
        env = dict(os.environ, BENCH_SYSTEM=system, PYTHONUNBUFFERED="1",
                   RAY_USAGE_STATS_ENABLED="0",
                   PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])))
        name = re.sub(r"[^\w.-]+", "-", f"{label}-{system}")
        log_path = os.path.join(self.log_dir, f"{name}.log")
        with open(log_path, "ab") as log:
            python = self.pythons.get(system, sys.executable)
            proc = subprocess.Popen([python, "-m", "bench.child", spec], cwd=REPO,
                                    env=env, stdout=subprocess.PIPE, stderr=log,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                return self.follow(proc, system, rows, label, log_path)
            except BaseException:
                kill_tree(proc)
                raise

    def follow(self, proc, system: str, rows: list[Row], label: str, log_path: str) -> set[str]:
        events: queue.Queue = queue.Queue()
        threading.Thread(target=_read_events, args=(proc.stdout, events), daemon=True).start()
        by_name = {r.name: r for r in rows}
        done: set[str] = set()
        current: Row | None = None
        phase, deadline, exited_at = "init", time.monotonic() + INIT_TIMEOUT, None

        def fail(targets, message):
            for r in targets:
                self.record_error(r, system, message, label)
                done.add(r.name)

        while True:
            try:
                ev = events.get(timeout=0.5)
            except queue.Empty:
                if proc.poll() is not None:  # exited; its own children may hold stdout open
                    exited_at = exited_at or time.monotonic()
                    if time.monotonic() - exited_at < 2:
                        continue
                    ev = None
                else:
                    problem = self.check(deadline, phase, current)
                    if problem is None:
                        continue
                    kill_tree(proc)
                    if phase == "shutdown":
                        self.note(label, f"{system}: {problem}")
                    else:
                        fail([current] if current else [r for r in rows if r.name not in done],
                             problem)
                    return done
            if ev is None:
                code = proc.wait()
                if phase == "shutdown":
                    if code:
                        self.note(label, f"{system} exited with code {code} after its rows "
                                         f"({_tail(log_path)})")
                else:
                    fail([current] if current else [r for r in rows if r.name not in done],
                         f"subprocess exited with code {code} ({_tail(log_path)})")
                return done
            kind = ev["event"]
            if kind == "start":
                current, phase = by_name[ev["row"]], "row"
                deadline = time.monotonic() + self.timeout(current)
            elif kind == "result":
                self.results.add(current, system, ev["values"])
                report.progress(label, system, current, ev["values"])
                done.add(current.name)
                current = None
            elif kind == "error":
                fail([current], ev["error"])
                current = None
            elif kind == "init_error":
                fail(rows, "init: " + ev["error"])
            elif kind == "shutdown_error":
                self.note(label, f"{system} shutdown: {ev['error']}")
            if len(done) == len(rows) and phase != "shutdown":
                phase, deadline = "shutdown", time.monotonic() + SHUTDOWN_TIMEOUT

    def timeout(self, r: Row) -> float:
        return r.quick_timeout if self.args.quick else r.timeout

    def note(self, label: str, message: str) -> None:
        self.notes.append(f"[{label}] {message}")
        print(f"[{label}] NOTE {message}", file=sys.stderr, flush=True)

    def check(self, deadline: float, phase: str, current: Row | None) -> str | None:
        if time.monotonic() > deadline:
            if phase == "init":
                return f"cluster start took over {INIT_TIMEOUT:.0f} s"
            if phase == "shutdown":
                return f"did not exit within {SHUTDOWN_TIMEOUT:.0f} s after its last row"
            return f"timeout: no result after {self.timeout(current):.0f} s"
        available = psutil.virtual_memory().available
        if available < MIN_AVAILABLE:
            return f"aborted: machine memory nearly exhausted ({available / 2**30:.1f} GiB left)"
        return None


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _read_events(stream, events: queue.Queue) -> None:
    for raw in stream:
        line = raw.decode(errors="replace")
        if line.startswith(PREFIX):
            events.put(json.loads(line[len(PREFIX):]))
    events.put(None)


def _tail(path: str, n: int = 400) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, os.path.getsize(path) - n))
        text = f.read().decode(errors="replace").strip().replace("\n", " | ")
    return f"log {path}: ...{text}" if text else f"log {path} is empty"


def main(argv=None) -> None:
    args = parse_args(argv)
    rows = select_rows(args)
    if args.list:
        for r in rows:
            print(f"{r.group:14s} {r.name}")
        return
    wanted = args.systems.split(",") if args.systems else ["shoal", "ray", "dask"]
    pythons = {s: interpreter(s) for s in ("shoal", "ray", "dask") if s in wanted}
    systems = [s for s in ("shoal", "ray", "dask") if pythons.get(s)]
    unknown = set(wanted) - {"shoal", "ray", "dask"}
    if unknown or not systems or not rows:
        sys.exit(f"nothing to run (systems {systems}, unknown {sorted(unknown)}, {len(rows)} rows)")
    set_subreaper()
    signal.signal(signal.SIGTERM, _interrupt)  # clean up as on Ctrl-C
    log_dir = tempfile.mkdtemp(prefix="shoal-bench-")
    versions = {s: version_of(pythons[s], s) for s in systems}
    print(f"bench: {len(rows)} rows, systems "
          + ", ".join(f"{s} {versions[s]} ({pythons[s]})" for s in systems)
          + f", {'quick, ' if args.quick else ''}logs in {log_dir}", file=sys.stderr, flush=True)
    runner = Runner(args, systems, log_dir, {s: pythons[s] for s in systems})
    started = time.time()
    interrupted = False
    try:
        runner.run(rows)
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: reporting what ran", file=sys.stderr)
    finally:
        sweep_leftovers("the interrupted run")
    elapsed = time.time() - started
    report.print_table(rows, systems, runner.results, runner.notes, args, elapsed)
    if args.json:
        report.write_json(args.json, rows, systems, runner.results, args, elapsed, log_dir,
                          {s: {"version": versions[s], "python": pythons[s]} for s in systems})
    if interrupted:
        sys.exit(130)
