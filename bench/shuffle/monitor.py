"""Memory of every process of the system under test, sampled on a thread of the runner.

The runner is a child subreaper and runs one sample at a time, so its
descendants are exactly the system's processes (driver, daemons, workers, and
orphans re-parented to it).  Every ``interval`` seconds it sums over them:

* PSS (proportional set size): each page counted once over all processes, a
  page shared by k processes a k-th in each; includes the pages of the object
  store's shared memory that processes have mapped and touched;
* USS (private pages) and RSS (all resident pages: shared ones counted in every
  process that maps them, so an upper bound);

and reads ``/dev/shm``'s use above what it was when the sample started (object
stores live there; other users of the machine move it too, so it is a hint).
It also keeps each process's CPU time (user + system): the CPU seconds the
system spent in a window barely move when other work shares the machine, where
its wall-clock time does (a process that exits between two readings loses at
most one interval of it).
Reading PSS walks the page tables (``smaps_rollup``): ~1 ms a process here.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class Reading:
    t: float  # time.time()
    pss: int
    uss: int
    rss: int
    shm: int  # /dev/shm bytes used above the baseline
    processes: int
    cpu: dict[int, float]  # pid -> CPU seconds used so far (user + system)


def shm_used() -> int:
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return 0
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def read_tree(root: psutil.Process, shm_baseline: int) -> Reading:
    pss = uss = rss = count = 0
    cpu: dict[int, float] = {}
    for proc in root.children(recursive=True):
        try:
            info = proc.memory_full_info()
            times = proc.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        cpu[proc.pid] = times.user + times.system
        pss += getattr(info, "pss", info.rss)
        uss += getattr(info, "uss", info.rss)
        rss += info.rss
        count += 1
    return Reading(time.time(), pss, uss, rss, max(0, shm_used() - shm_baseline), count, cpu)


class TreeMonitor:
    """``with TreeMonitor() as m: ...``; then ``m.peak(start, end)``."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.readings: list[Reading] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shuffle-bench-monitor",
                                        daemon=True)
        self._root = psutil.Process()
        self._baseline = shm_used()
        self._lock = threading.Lock()

    def __enter__(self) -> TreeMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.read_now()
            self._stop.wait(self.interval)

    def read_now(self) -> None:
        """One reading off the timer: the runner takes one when the timed phase
        ends, so a phase shorter than ``interval`` still has a reading right after it."""
        reading = read_tree(self._root, self._baseline)
        with self._lock:
            self.readings.append(reading)
            self.readings.sort(key=lambda r: r.t)

    def peak(self, start: float | None = None, end: float | None = None) -> dict | None:
        """The largest of each measure over the readings in ``[start, end]``
        (``time.time()``; None: all).  A window no timer reading fell into takes
        the first reading after it (the phase's output is still held then)."""
        chosen = [r for r in self.readings
                  if (start is None or r.t >= start) and (end is None or r.t <= end)]
        if not chosen and end is not None:
            chosen = [r for r in self.readings if r.t > end][:1]
        if not chosen:
            return None
        return {"pss": max(r.pss for r in chosen), "uss": max(r.uss for r in chosen),
                "rss": max(r.rss for r in chosen), "shm": max(r.shm for r in chosen),
                "readings": len(chosen),
                "processes": max(r.processes for r in chosen),
                "cpu_s": self.cpu_seconds(start, end)}

    def cpu_seconds(self, start: float | None, end: float | None) -> float:
        """CPU seconds all processes used in ``[start, end]``: per process, its last
        reading in the window less its last reading before it (0 if it started
        inside the window)."""
        before = [r for r in self.readings if start is not None and r.t < start]
        inside = [r for r in self.readings
                  if (start is None or r.t >= start) and (end is None or r.t <= end)]
        base = before[-1].cpu if before else {}
        last: dict[int, float] = {}
        for r in inside:
            last.update(r.cpu)
        return sum(max(0.0, used - base.get(pid, 0.0)) for pid, used in last.items())
